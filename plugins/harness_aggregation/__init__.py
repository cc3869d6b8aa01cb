"""Learned stage aggregation (Gaziv, Algonauts 2019): masks over a backbone's stages trained on RDMs."""
