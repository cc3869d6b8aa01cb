"""Dataset plugins for harness: Algonauts 2019 fMRI RDMs and a synthetic voxel brain."""
