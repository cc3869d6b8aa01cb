"""open_clip backbones for harness: every (architecture, pretrained tag) pair open_clip lists, read at every block."""
