"""Matching predictions (anchors, proposals) to ground truth by a quality matrix such as IoU (detectron2's rules)."""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

IGNORE, NEGATIVE, POSITIVE = -1, 0, 1


class Matcher:
    """Give each prediction its best ground truth and a label from the band its best quality falls in.

    With thresholds [t1, ..., tk] and labels [l0, ..., lk], a best quality q gets l0 when q < t1, l_i when
    t_i <= q < t_(i+1), and lk when q >= tk. With ``allow_low_quality_matches`` every prediction that
    reaches some ground truth's highest quality (ties included) is labelled positive, keeping its own
    best match (Faster R-CNN's RPN rule (i)).
    """

    def __init__(self, thresholds: Sequence[float], labels: Sequence[int], allow_low_quality_matches: bool = False):
        thresholds = [float(t) for t in thresholds]
        if not thresholds or thresholds[0] <= 0:
            raise ValueError(f"Matcher thresholds must start above 0, got {thresholds}")
        if any(low > high for low, high in zip(thresholds[:-1], thresholds[1:])):
            raise ValueError(f"Matcher thresholds must be non-decreasing, got {thresholds}")
        if len(labels) != len(thresholds) + 1 or any(label not in (IGNORE, NEGATIVE, POSITIVE) for label in labels):
            raise ValueError(f"Matcher needs {len(thresholds) + 1} labels from -1, 0, 1 for thresholds {thresholds}, "
                             f"got {list(labels)}")
        self.bounds: List[float] = [-float("inf")] + thresholds + [float("inf")]
        self.labels = [int(label) for label in labels]
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, quality: Tensor) -> Tuple[Tensor, Tensor]:
        """Match a (M ground truth, N predictions) quality matrix: (matched gt index (N,) int64, label (N,) int8).

        Without ground truth every prediction has quality 0: index 0 and the lowest band's label.
        """
        if quality.dim() != 2:
            raise ValueError(f"Matcher expects a (M, N) quality matrix, got shape {tuple(quality.shape)}")
        count = quality.shape[1]
        if quality.shape[0] == 0:
            return (torch.zeros(count, dtype=torch.int64, device=quality.device),
                    torch.full((count,), self.labels[0], dtype=torch.int8, device=quality.device))
        best, matches = quality.max(dim=0)
        match_labels = torch.full((count,), POSITIVE, dtype=torch.int8, device=quality.device)
        for label, low, high in zip(self.labels, self.bounds[:-1], self.bounds[1:]):
            match_labels[(best >= low) & (best < high)] = label
        if self.allow_low_quality_matches:
            # Every ground truth gets the predictions it overlaps best, however poorly; a prediction keeps its
            # own best ground truth as its match, as in Detectron.
            highest_per_gt = quality.max(dim=1, keepdim=True).values
            match_labels[(quality == highest_per_gt).any(dim=0)] = POSITIVE
        return matches, match_labels
