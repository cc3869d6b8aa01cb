"""Stable Diffusion UNet features for harness, by (diffusion time step, UNet block)."""
