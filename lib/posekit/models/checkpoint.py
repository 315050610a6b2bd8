"""Load weights safely: official DEKR files, ``module.``-prefixed (DDP) state dicts, training checkpoints,
detectron2 files and the MSRA / FAIR ImageNet ``.pkl`` files.

``.pth`` files go through ``torch.load(weights_only=True)`` and ``.pkl`` files through a restricted
unpickler (``safe_pickle``), so a downloaded model file cannot run code.
"""
import os
from typing import Dict, List, Mapping, Sequence

import torch
from torch import nn

from ..utils.errors import CheckpointError
from .detectron_weights import read_detectron_weights


# Entries of a training checkpoint that may hold the weights, in order of preference. The official
# checkpoint.pth.tar keeps them under 'state_dict' (its 'model' entry is the model name, a string).
WEIGHTS_ENTRIES = ("state_dict", "model")
DDP_PREFIX = "module."
PICKLE_SUFFIX = ".pkl"  # NumPy pickles: detectron2 model-zoo files and Caffe2 ImageNet blobs
KEYS_SHOWN = 5

StateDict = Dict[str, torch.Tensor]


def read_state_dict(path: str) -> StateDict:
    """The state dict stored in ``path``: plain or in a training checkpoint, without a ``module.`` prefix."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.endswith(PICKLE_SUFFIX):
        return _strip_prefix(read_detectron_weights(path))
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types (UnpicklingError, RuntimeError, EOFError...)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable weights-only checkpoint ({reason}); posekit loads "
                              f"with torch.load(weights_only=True) and refuses files that need code to "
                              f"unpickle") from None
    return _strip_prefix(_find_state_dict(stored, path))


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _find_state_dict(stored: object, path: str) -> StateDict:
    if _is_state_dict(stored):
        return dict(stored)
    if isinstance(stored, Mapping):
        for entry in WEIGHTS_ENTRIES:
            if _is_state_dict(stored.get(entry)):
                return dict(stored[entry])
        found = ", ".join(map(str, list(stored)[:KEYS_SHOWN]))
        raise CheckpointError(f"{path}: no weights found; expected a dict of tensors or one under "
                              f"{' or '.join(repr(e) for e in WEIGHTS_ENTRIES)}, found keys: {found}")
    raise CheckpointError(f"{path}: expected a dict of tensors, got {type(stored).__name__}")


def _strip_prefix(state_dict: StateDict) -> StateDict:
    """Remove the ``module.`` prefix DataParallel/DistributedDataParallel put on every key."""
    if all(key.startswith(DDP_PREFIX) for key in state_dict):
        return {key[len(DDP_PREFIX):]: value for key, value in state_dict.items()}
    return state_dict


def _unwrap(model: nn.Module) -> nn.Module:
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    return model.module if isinstance(model, wrappers) else model


def _examples(keys: Sequence[str]) -> str:
    more = f", ... ({len(keys)} in all)" if len(keys) > KEYS_SHOWN else ""
    return ", ".join(keys[:KEYS_SHOWN]) + more


def _check_fit(path: str, model_state: Mapping[str, torch.Tensor], state_dict: StateDict, strict: bool) -> None:
    """Raise CheckpointError naming the first missing, unexpected and mis-shaped keys."""
    missing = [k for k in model_state if k not in state_dict] if strict else []
    unexpected = [k for k in state_dict if k not in model_state] if strict else []
    misshaped = [f"{k} {tuple(v.shape)} (model {tuple(model_state[k].shape)})" for k, v in state_dict.items()
                 if k in model_state and v.shape != model_state[k].shape]
    problems = [f"{len(keys)} {what}: {_examples(keys)}"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("mis-shaped keys", misshaped)) if keys]
    if problems:
        raise CheckpointError(f"{path} does not fit the model ({'; '.join(problems)}); check that the config "
                              f"(MODEL.SPEC, DATASET.NUM_JOINTS) is the one the checkpoint was trained with")


def convert_state_dict(model: nn.Module, state_dict: StateDict) -> StateDict:
    """Official key names -> the model's, by the model's ``convert_official_state_dict`` when it has one.

    The one place where checkpoints written by the original projects are renamed.
    """
    convert = getattr(model, "convert_official_state_dict", None)
    return convert(state_dict) if convert is not None else state_dict


def load_weights(model: nn.Module, path: str, strict: bool = True) -> List[str]:
    """Load ``path`` into ``model`` (or the model a DDP wrapper holds); return the model keys left missing.

    With ``strict=False`` missing and unexpected keys are allowed, mis-shaped ones never are.
    """
    model = _unwrap(model)
    state_dict = convert_state_dict(model, read_state_dict(path))
    _check_fit(path, model.state_dict(), state_dict, strict)
    result = model.load_state_dict(state_dict, strict=strict)
    return list(result.missing_keys)


def load_pretrained(model: nn.Module, path: str, layers: Sequence[str]) -> List[str]:
    """Load the entries of ``path`` whose top-level name in the file is in ``layers`` and that the model has.

    Names are matched as the file has them (official names, e.g. 'stage2'), then converted to the model's;
    ``layers == ['*']`` selects every entry (dekr.md 3.4 step 3). Returns the loaded model keys.
    """
    model = _unwrap(model)
    take_all = len(layers) > 0 and layers[0] == "*"
    chosen = {name: value for name, value in read_state_dict(path).items()
              if take_all or name.split(".")[0] in layers}
    own_names = set(model.state_dict())
    selected = {name: value for name, value in convert_state_dict(model, chosen).items() if name in own_names}
    _check_fit(path, model.state_dict(), selected, strict=False)
    model.load_state_dict(selected, strict=False)
    return sorted(selected)
