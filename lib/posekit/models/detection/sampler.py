"""Random sampling of positive and negative training examples (anchors, proposals), as detectron2."""
from typing import Tuple

import torch
from torch import Tensor


def subsample_labels(labels: Tensor, num_samples: int, positive_fraction: float,
                     bg_label: int) -> Tuple[Tensor, Tensor]:
    """Indices of at most ``num_samples`` examples: (positive indices, negative indices).

    ``labels`` holds -1 (ignore), ``bg_label`` (negative) or any other value (positive). At most
    int(num_samples * positive_fraction) positives are drawn; negatives fill the rest as far as there are any.
    Draws use torch.randperm on the labels' device, so the global generator decides which are kept.
    """
    positive = torch.nonzero((labels != -1) & (labels != bg_label), as_tuple=True)[0]
    negative = torch.nonzero(labels == bg_label, as_tuple=True)[0]
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    pos_idx = positive[torch.randperm(positive.numel(), device=positive.device)[:num_pos]]
    neg_idx = negative[torch.randperm(negative.numel(), device=negative.device)[:num_neg]]
    return pos_idx, neg_idx
