"""torchvision backbones for harness (MobileNetV2 with real ImageNet weights from ../shared)."""
