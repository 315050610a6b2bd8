"""LCR-Net / LCR-Net++ (docs/models/lcrnet.md): pose codec, anchor poses, pose proposals integration."""
