"""DEKR's adaptive convolution: a 3x3 deformable conv whose sampling grid is a per-pixel affine map."""
from typing import Optional

import torch
from torch import nn

from ...ops import DeformConv2d
from ..backbones.hrnet import batch_norm

# Column k is the (row, column) position of tap k of a 3x3 kernel, taps in row-major order.
REGULAR_GRID = ((-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0),
                (-1.0, 0.0, 1.0, -1.0, 0.0, 1.0, -1.0, 0.0, 1.0))


def affine_offsets(transform: torch.Tensor, translation: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Deformable-conv offsets (N, 2T, H, W) moving tap r_k to A r_k + u (dekr.md 3.3).

    ``transform`` (N, 4, H, W) holds A row-major, ``translation`` (N, 2, H, W) holds u, ``grid`` (2, T)
    the regular tap positions. Channel 2k is the row offset of tap k and 2k+1 its column offset, which
    is the torchvision ``deform_conv2d`` layout.
    """
    n, _, h, w = transform.shape
    matrix = transform.reshape(n, 2, 2, h, w)
    moved = torch.einsum("nijhw,jk->nkihw", matrix, grid)
    offsets = moved - grid.t()[None, :, :, None, None] + translation[:, None]
    return offsets.reshape(n, -1, h, w)


class AdaptBlock(nn.Module):
    """Residual block around an adaptive 3x3 convolution (official name and key layout)."""

    expansion = 1
    CONV_NORM_PAIRS = (("adapt_conv", "bn"),)

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, dilation: int = 1) -> None:
        super().__init__()
        self.register_buffer("regular_matrix", torch.tensor(REGULAR_GRID))
        self.downsample = downsample
        self.transform_matrix_conv = nn.Conv2d(inplanes, 4, 3, 1, 1, bias=True)
        self.translation_conv = nn.Conv2d(inplanes, 2, 3, 1, 1, bias=True)
        self.adapt_conv = DeformConv2d(inplanes, planes, kernel_size=3, stride=stride, padding=dilation,
                                       dilation=dilation, bias=False)
        self.bn = batch_norm(planes)
        self.relu = nn.ReLU(inplace=True)

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """The sampling offsets the block uses for input ``x``."""
        return affine_offsets(self.transform_matrix_conv(x), self.translation_conv(x), self.regular_matrix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.bn(self.adapt_conv(x, self.offsets(x)))
        out += shortcut
        return self.relu(out)
