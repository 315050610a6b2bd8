"""One network pass with the official flip test (dekr.md 7.2): heatmaps and pose maps, flip-averaged."""
from typing import Callable, Optional, Sequence, Tuple

import torch

Model = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]

# Output column v of the flipped pass sees input column 4v + 3 of the flipped image; shifting the flipped
# input left by this much makes it the mirror of output column w - 1 - v of the plain pass.
FLIP_SHIFT = 3


def offset_to_pose(offset: torch.Tensor, flip_index: Optional[Sequence[int]] = None) -> torch.Tensor:
    """(N, 2K, h, w) offsets -> (N, 2K, h, w) poses ``pixel - offset``; with ``flip_index``, mirrored to the plain frame."""
    batch, channels, height, width = offset.shape
    offset = offset.reshape(batch, channels // 2, 2, height, width)
    xs = torch.arange(width, dtype=offset.dtype, device=offset.device).view(1, width)
    ys = torch.arange(height, dtype=offset.dtype, device=offset.device).view(height, 1)
    pose_x = xs - offset[:, :, 0]
    pose_y = ys - offset[:, :, 1]
    if flip_index is not None:
        pose_x = (width - pose_x[:, flip_index]) - 1
        pose_y = pose_y[:, flip_index]
    return torch.stack((pose_x, pose_y), dim=2).reshape(batch, channels, height, width)


def flip_shifted(image: torch.Tensor) -> torch.Tensor:
    """Flip an NCHW batch horizontally and shift it left by FLIP_SHIFT columns (last columns keep their values)."""
    flipped = torch.flip(image, [3])
    shifted = flipped.clone()
    shifted[..., :-FLIP_SHIFT] = flipped[..., FLIP_SHIFT:]
    return shifted


def forward_with_flip(model: Model, image: torch.Tensor, flip_index: Sequence[int],
                      flip_index_with_center: Sequence[int],
                      flip_test: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` on an (N, 3, H, W) batch (and its shifted mirror); return (heatmap, posemap) at output size."""
    heatmap, offset = model(image)
    posemap = offset_to_pose(offset)
    if not flip_test:
        return heatmap, posemap
    heatmap_flip, offset_flip = model(flip_shifted(image))
    heatmap_flip = torch.flip(heatmap_flip, [3])[:, list(flip_index_with_center)]
    posemap_flip = torch.flip(offset_to_pose(offset_flip, list(flip_index)), [3])
    return (heatmap + heatmap_flip) / 2.0, (posemap + posemap_flip) / 2.0
