"""First-party metrics: brain score (voxel Pearson r), the Algonauts 2019 RSA score, and layer-selector
summaries (hierarchy slope, selector confidence) with noise ceilings and bootstrap CIs."""
