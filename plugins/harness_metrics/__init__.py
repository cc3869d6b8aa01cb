"""First-party metrics: voxel-wise Pearson r and the Algonauts 2019 RSA score."""
