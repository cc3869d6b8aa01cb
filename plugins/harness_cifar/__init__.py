"""CIFAR-10 ResNets (He et al. 2016, option-A shortcuts) as harness backbones."""
