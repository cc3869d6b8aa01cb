"""Segment Anything image encoders (ViT-B/L/H) for harness."""
