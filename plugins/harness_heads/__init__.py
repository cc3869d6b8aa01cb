"""First-party mapping heads: per-layer ridge for voxels, layer-wise RSA for RDMs."""
