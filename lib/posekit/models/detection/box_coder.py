"""R-CNN box regression: deltas (dx, dy, dw, dh) between a source box and a target box (densepose.md 1.2)."""
import math
from typing import Sequence, Tuple

import torch
from torch import Tensor

from ...structures.boxes import box_sides

# dw, dh are clamped so that a 16-pixel box grows to at most 1000 pixels (detectron2 and Detectron alike).
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class Box2BoxTransform:
    """Box coding of R-CNN with per-coordinate weights (wx, wy, ww, wh).

    dx = wx (cx_t - cx_s) / w_s, dy likewise, dw = ww log(w_t / w_s), dh likewise, with centres
    cx = x1 + 0.5 w. Under Detectron's "+1" convention widths are x2 - x1 + 1 and a decoded box ends at
    cx + 0.5 w - 1, so that decoding inverts encoding in both conventions.
    """

    def __init__(self, weights: Sequence[float], scale_clamp: float = DEFAULT_SCALE_CLAMP,
                 legacy_plus_one: bool = False):
        if len(weights) != 4:
            raise ValueError(f"Box2BoxTransform weights must be 4 numbers (wx, wy, ww, wh), got {weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp
        self.legacy_plus_one = legacy_plus_one

    def _centres_and_sides(self, boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Centres (x, y) and sides (w, h) in the transform's convention."""
        widths, heights = box_sides(boxes, self.legacy_plus_one)
        return boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights, widths, heights

    def get_deltas(self, src_boxes: Tensor, target_boxes: Tensor) -> Tensor:
        """Deltas (N, 4) that turn each source box into its target box."""
        src_x, src_y, src_w, src_h = self._centres_and_sides(src_boxes)
        tgt_x, tgt_y, tgt_w, tgt_h = self._centres_and_sides(target_boxes)
        wx, wy, ww, wh = self.weights
        return torch.stack([wx * (tgt_x - src_x) / src_w, wy * (tgt_y - src_y) / src_h,
                            ww * torch.log(tgt_w / src_w), wh * torch.log(tgt_h / src_h)], dim=1)

    def apply_deltas(self, deltas: Tensor, boxes: Tensor) -> Tensor:
        """Decode deltas (N, 4k) (k class-specific transforms per box) against boxes (N, 4) into (N, 4k) boxes."""
        # Decoding in at least float32: half-precision deltas lose whole pixels on large boxes.
        dtype = torch.promote_types(deltas.dtype, torch.float32)
        deltas, boxes = deltas.to(dtype), boxes.to(dtype)
        ctr_x, ctr_y, widths, heights = (v[:, None] for v in self._centres_and_sides(boxes))
        wx, wy, ww, wh = self.weights
        dx, dy = deltas[:, 0::4] / wx, deltas[:, 1::4] / wy
        # Clamping keeps exp() finite for wild early-training predictions.
        dw = (deltas[:, 2::4] / ww).clamp(max=self.scale_clamp)
        dh = (deltas[:, 3::4] / wh).clamp(max=self.scale_clamp)
        pred_x, pred_y = dx * widths + ctr_x, dy * heights + ctr_y
        half_w, half_h = 0.5 * torch.exp(dw) * widths, 0.5 * torch.exp(dh) * heights
        extra = 1.0 if self.legacy_plus_one else 0.0
        decoded = torch.stack([pred_x - half_w, pred_y - half_h, pred_x + half_w - extra, pred_y + half_h - extra],
                              dim=-1)
        return decoded.reshape(deltas.shape)
