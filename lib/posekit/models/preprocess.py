"""Pixel normalisation inside the model: callers pass raw pixel values in the model's channel order.

Keeping mean, std and channel order in the model means an ONNX file, a CUDA graph or a user's own loop
feeds plain images and cannot get the normalisation wrong. The buffers are not persistent, so official
checkpoints (which have no such entries) load strictly.
"""
from typing import Sequence

import torch
from torch import nn


class PixelNormalizer(nn.Module):
    """``(image / pixel_scale - mean) / std`` per channel, computed in float32 from any input dtype (e.g. uint8)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], pixel_scale: float, input_format: str) -> None:
        super().__init__()
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"input_format must be 'RGB' or 'BGR', got {input_format!r}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.pixel_scale = pixel_scale
        self.input_format = input_format

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised float32 (N, C, H, W) image."""
        # The same three operations, in the same order, as the official data pipelines' ToTensor + Normalize.
        image = image.float()
        if self.pixel_scale != 1:
            image = image / self.pixel_scale
        return (image - self.mean) / self.std
