"""FactorTopy (Yang, Gee & Shi, CVPR 2024) and its ablations as harness heads."""
