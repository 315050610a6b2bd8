"""What a backbone promises about each feature map it returns."""
from typing import NamedTuple


class ShapeSpec(NamedTuple):
    """Channels and stride (input pixels per feature-map cell) of one named feature map."""

    channels: int
    stride: int
