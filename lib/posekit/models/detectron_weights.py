"""Weights in detectron2's ``.pkl`` formats: model-zoo files and Caffe2 ImageNet ResNets (MSRA / FAIR).

A model-zoo file is ``{"model": {name: array}, "__author__": ...}`` with detectron2's names. A Caffe2 ImageNet
file is ``{"blobs": {blob: array}}`` or the blob dict itself, with Caffe2 names (``res2_0_branch2a_w``) that
are renamed here, by an explicit rule, to the names of detectron2's ResNet (``res2.0.conv1.weight``).
"""
import re
from typing import Dict, List, Mapping, Optional, Tuple, TypeVar

import numpy as np
import torch

from ..utils.errors import CheckpointError
from .safe_pickle import load_safe_pickle

StateDict = Dict[str, torch.Tensor]
Value = TypeVar("Value")

# The 1000-way ImageNet classifier (a detector has none) and the SGD momentum Caffe2 saved with each weight.
CLASSIFIER_BLOBS = ("fc1000_w", "fc1000_b")
MOMENTUM_SUFFIX = "_momentum"
NAMES_SHOWN = 5

STEM_BLOBS = {"conv1_w": "w", "res_conv1_bn_s": "bn_s", "res_conv1_bn_b": "bn_b"}
BLOCK_BLOB = re.compile(r"res(?P<stage>[2-5])_(?P<block>\d+)_branch(?P<branch>1|2a|2b|2c)_(?P<kind>w|bn_s|bn_b)")
BRANCH_CONVS = {"1": "shortcut", "2a": "conv1", "2b": "conv2", "2c": "conv3"}
EXPECTED_BLOBS = ("conv1_w, res_conv1_bn_{s,b}, res<2-5>_<block>_branch{1,2a,2b,2c}_{w,bn_s,bn_b} "
                  "(fc1000_{w,b} and *_momentum are dropped)")


def with_prefix(state_dict: Mapping[str, Value], prefix: str) -> Dict[str, Value]:
    """``state_dict`` with ``prefix`` (e.g. 'backbone.bottom_up' or 'backbone.bottom_up.') before every name."""
    head = prefix.rstrip(".") + "." if prefix else ""
    return {head + name: value for name, value in state_dict.items()}


def _parse_blob(blob: str) -> Optional[Tuple[str, str]]:
    """(detectron2 conv module, Caffe2 parameter kind) of a ResNet blob; None for a blob of anything else."""
    if blob in STEM_BLOBS:
        return "stem.conv1", STEM_BLOBS[blob]
    match = BLOCK_BLOB.fullmatch(blob)
    if match is None:
        return None
    return f"res{match['stage']}.{match['block']}.{BRANCH_CONVS[match['branch']]}", match["kind"]


def _renamed(conv: str, kind: str, value: np.ndarray) -> Dict[str, np.ndarray]:
    """The detectron2 entries of one blob; the scale of a frozen BN also brings its running statistics."""
    if kind == "w":
        return {f"{conv}.weight": value}
    if kind == "bn_b":
        return {f"{conv}.norm.bias": value}
    # Caffe2's AffineChannel already folds the statistics into scale and bias; detectron2 loads such files
    # with FrozenBatchNorm2d's statistics set to mean 0 and variance exactly 1 (not its initial 1 - eps).
    return {f"{conv}.norm.weight": value, f"{conv}.norm.running_mean": np.zeros_like(value),
            f"{conv}.norm.running_var": np.ones_like(value)}


def _name_list(names: List[str]) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > NAMES_SHOWN else ""
    return ", ".join(names[:NAMES_SHOWN]) + more


def caffe2_resnet_names(blobs: Mapping[str, np.ndarray], source: str = "Caffe2 weights") -> Dict[str, np.ndarray]:
    """Caffe2 ImageNet ResNet blobs -> detectron2 ResNet names; CheckpointError (naming ``source``) for others."""
    kept = {str(blob): value for blob, value in blobs.items()
            if str(blob) not in CLASSIFIER_BLOBS and not str(blob).endswith(MOMENTUM_SUFFIX)}
    parsed = {blob: _parse_blob(blob) for blob in kept}
    unknown = sorted(blob for blob, found in parsed.items() if found is None)
    if unknown:
        raise CheckpointError(f"{source}: {len(unknown)} blobs are not ResNet ImageNet blobs: {_name_list(unknown)}; "
                              f"expected {EXPECTED_BLOBS}")
    renamed: Dict[str, np.ndarray] = {}
    for blob, (conv, kind) in parsed.items():
        renamed.update(_renamed(conv, kind, kept[blob]))
    return renamed


def _as_tensor(name: str, value: object, path: str) -> torch.Tensor:
    """A copy of the NumPy array ``value`` as a tensor in native byte order."""
    if not isinstance(value, (np.ndarray, np.generic)):
        raise CheckpointError(f"{path}: entry {name} is a {type(value).__name__}, expected a NumPy array")
    try:
        # A copy: arrays read from protocol-5 pickles may be read-only views of the file's bytes.
        return torch.from_numpy(np.array(value, dtype=value.dtype.newbyteorder("=")))
    except TypeError:
        raise CheckpointError(f"{path}: entry {name} has dtype {value.dtype}, which is not a tensor type") from None


def _stored_arrays(stored: object, path: str) -> Mapping[str, object]:
    """The named arrays of a detectron2 .pkl: the zoo file's 'model' entry, else the renamed Caffe2 blobs."""
    if not isinstance(stored, Mapping):
        raise CheckpointError(f"{path}: expected a dict of NumPy arrays, got {type(stored).__name__}")
    # detectron2 writes its own files as {"model": ..., "__author__": ...}; Caffe2 files have no 'model' entry.
    if "model" in stored or "__author__" in stored:
        if not isinstance(stored.get("model"), Mapping):
            raise CheckpointError(f"{path}: a detectron2 file (__author__ {stored.get('__author__')!r}) needs a "
                                  f"'model' entry holding a dict of arrays")
        return stored["model"]
    blobs = stored.get("blobs", stored)  # Detectron detection files keep them under 'blobs', ImageNet ones don't
    if not isinstance(blobs, Mapping):
        raise CheckpointError(f"{path}: 'blobs' should be a dict of NumPy arrays, got {type(blobs).__name__}")
    return caffe2_resnet_names(blobs, source=path)


def read_detectron_weights(path: str) -> StateDict:
    """Tensors of a detectron2 zoo ``.pkl`` (names as stored) or a Caffe2 ImageNet ResNet ``.pkl`` (renamed)."""
    arrays = _stored_arrays(load_safe_pickle(path), path)
    if not arrays:
        raise CheckpointError(f"{path}: holds no weights")
    return {str(name): _as_tensor(str(name), value, path) for name, value in arrays.items()}
