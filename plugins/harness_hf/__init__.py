"""Hugging Face transformers backbones for harness: DINOv2 (± registers), MAE, ViT, CLIP vision tower."""
