"""RPN anchors: a few cell anchors per feature level, tiled over that level's grid (densepose.md 1.2,
lcrnet.md 3.3).

Anchors of a level come in detectron2's order, (H, W, A) from slowest to fastest, which is also Detectron's;
the RPN head's A (and 4A) output channels follow the order of the cell anchors.
"""
import math
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

PerLevel = Union[Sequence[float], Sequence[Sequence[float]]]


def broadcast_per_level(values: PerLevel, levels: int, name: str) -> List[List[float]]:
    """One list per level: a flat list, or a list holding a single list, serves every level (detectron2's rule)."""
    if len(values) == 0:
        raise ValueError(f"anchor {name} must not be empty")
    if not isinstance(values[0], (list, tuple)):
        return [list(values)] * levels
    if len(values) == 1:
        return [list(values[0])] * levels
    if len(values) != levels:
        raise ValueError(f"anchor {name} has {len(values)} lists for {levels} feature levels")
    return [list(v) for v in values]


def cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """detectron2's cell anchors (len(sizes) * len(aspect_ratios), 4), centred on (0, 0), size-major.

    An anchor of size s and aspect ratio a (height / width) has area s^2: w = sqrt(s^2 / a), h = a w.
    """
    rows = []
    for size in sizes:
        for ratio in aspect_ratios:
            width = math.sqrt(size * size / ratio)
            height = ratio * width
            rows.append([-width / 2, -height / 2, width / 2, height / 2])
    return torch.tensor(rows, dtype=torch.float32)


def legacy_cell_anchors(stride: int, sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
    """Detectron v1's cell anchors (``generate_anchors``), aspect-ratio-major, in the "+1" convention.

    The reference window is pixels 0..stride-1, centred on (stride - 1) / 2. For each aspect ratio a its
    area is reshaped to w = round(sqrt(stride^2 / a)), h = round(w a) (rounding half to even, as NumPy),
    then for each size s both sides are multiplied by s / stride around the same centre.
    """
    centre = (stride - 1) / 2
    rows = []
    for ratio in aspect_ratios:
        ratio_width = round(math.sqrt(stride * stride / ratio))
        ratio_height = round(ratio_width * ratio)
        for size in sizes:
            half_w = (ratio_width * (size / stride) - 1) / 2
            half_h = (ratio_height * (size / stride) - 1) / 2
            rows.append([centre - half_w, centre - half_h, centre + half_w, centre + half_h])
    return torch.tensor(rows, dtype=torch.float32)


def grid_anchors(cells: Tensor, grid_size: Tuple[int, int], stride: int, offset: float) -> Tensor:
    """The cell anchors shifted to every grid location (stride * (x + offset), stride * (y + offset)), (H*W*A, 4)."""
    height, width = grid_size
    xs = (torch.arange(width, dtype=torch.float32, device=cells.device) + offset) * stride
    ys = (torch.arange(height, dtype=torch.float32, device=cells.device) + offset) * stride
    shift_y, shift_x = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], dim=-1).reshape(-1, 1, 4)
    return (shifts + cells[None]).reshape(-1, 4)


class AnchorGenerator(nn.Module):
    """Anchors for a list of feature maps, one list of sizes and of aspect ratios per level.

    ``legacy_plus_one`` takes Detectron v1's cell anchors (centred on (stride - 1) / 2 already, so use
    ``offset`` 0 with it); otherwise detectron2's, centred on stride * (x + offset).
    """

    def __init__(self, sizes: PerLevel, aspect_ratios: PerLevel, strides: Sequence[int], offset: float = 0.0,
                 legacy_plus_one: bool = False):
        super().__init__()
        if not 0.0 <= offset < 1.0:
            raise ValueError(f"anchor offset must be in [0, 1), got {offset}")
        self.strides = [int(s) for s in strides]
        self.offset = float(offset)
        sizes = broadcast_per_level(sizes, len(self.strides), "sizes")
        aspect_ratios = broadcast_per_level(aspect_ratios, len(self.strides), "aspect_ratios")
        for level, (stride, level_sizes, ratios) in enumerate(zip(self.strides, sizes, aspect_ratios)):
            cells = legacy_cell_anchors(stride, level_sizes, ratios) if legacy_plus_one else cell_anchors(
                level_sizes, ratios)
            # Not persistent: anchors are a function of the config, not weights to save.
            self.register_buffer(f"cell_anchors_{level}", cells, persistent=False)

    def cell_anchors(self) -> List[Tensor]:
        """The cell anchors (A_i, 4) of each level."""
        return [getattr(self, f"cell_anchors_{level}") for level in range(len(self.strides))]

    @property
    def num_anchors(self) -> List[int]:
        """Cell anchors per location on each level."""
        return [len(cells) for cells in self.cell_anchors()]

    def forward(self, features: List[Tensor]) -> List[Tensor]:
        """Anchors (H_i * W_i * A_i, 4) of each feature map (N, C, H_i, W_i), in input-image pixels."""
        if len(features) != len(self.strides):
            raise ValueError(f"AnchorGenerator has {len(self.strides)} levels, got {len(features)} feature maps")
        return [grid_anchors(cells, tuple(feature.shape[-2:]), stride, self.offset)
                for cells, feature, stride in zip(self.cell_anchors(), features, self.strides)]
