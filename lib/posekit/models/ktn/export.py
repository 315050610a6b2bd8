"""Keypoint pre-training -> KTM v1 (densepose.md 3.7): the final keypoint transposed conv of a keypoint-pretrained
KTN checkpoint written as the classifier file MODEL.ROI_DENSEPOSE_HEAD.KPT_CLASSIFIER_WEIGHT_DIR names (an npz
with ``kpt_weight`` (C, K, 4, 4) and ``kpt_bias`` (K,), float32; KTN wrote the same arrays as a pickle)."""
from pathlib import Path
from typing import Dict

import numpy as np

from ...utils.errors import CheckpointError
from ...utils.io import PathLike, atomic_write_npz
from ..checkpoint import read_state_dict

# Where the classifier lives: posekit's pre-training model, KTN's (keypoint_predictor), KTNv2's k_lowres.
CLASSIFIER_PREFIXES = ("roi_heads.densepose_predictor.predictor.0.", "roi_heads.keypoint_predictor.predictor.0.",
                       "roi_heads.densepose_predictor.k_lowres.")


def keypoint_classifier(state_dict: Dict[str, object], source: str) -> Dict[str, np.ndarray]:
    """{"kpt_weight", "kpt_bias"} float32 arrays of the keypoint classifier in ``state_dict`` (read from
    ``source``, named in the error when there is none)."""
    for prefix in CLASSIFIER_PREFIXES:
        if prefix + "weight" in state_dict and prefix + "bias" in state_dict:
            return {"kpt_weight": state_dict[prefix + "weight"].detach().cpu().float().numpy(),
                    "kpt_bias": state_dict[prefix + "bias"].detach().cpu().float().numpy()}
    raise CheckpointError(f"{source}: no keypoint classifier (expected one of "
                          f"{', '.join(p + 'weight' for p in CLASSIFIER_PREFIXES)})")


def export_keypoint_classifier(checkpoint: PathLike, output: PathLike) -> Path:
    """Write the keypoint classifier of ``checkpoint`` (a keypoint-pretrained KTN model) to the npz ``output``."""
    atomic_write_npz(output, keypoint_classifier(read_state_dict(str(checkpoint)), str(checkpoint)))
    return Path(output)
