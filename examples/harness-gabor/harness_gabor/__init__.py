"""A Gabor-energy V1 model packaged as a third-party harness plugin."""
