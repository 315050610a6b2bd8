"""Seeding and capturing the Python, NumPy and torch random generators.

Captured states hold only tensors and primitives so a checkpoint loads with ``torch.load(weights_only=True)``.
"""
import random
from typing import Dict

import numpy as np
import torch

RngState = Dict[str, object]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and every GPU) global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng_state() -> RngState:
    """The global generators' states as tensors and primitives."""
    version, python_keys, python_gauss = random.getstate()
    name, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
    state: RngState = {
        "python_version": version,
        "python": torch.tensor(python_keys, dtype=torch.int64),
        "python_gauss": python_gauss,
        "numpy_name": name,
        "numpy": torch.from_numpy(numpy_keys.astype(np.int64)),
        "numpy_pos": int(numpy_pos),
        "numpy_has_gauss": int(numpy_has_gauss),
        "numpy_gauss": float(numpy_gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: RngState) -> None:
    """Put the global generators back into a state returned by ``capture_rng_state``."""
    random.setstate((state["python_version"], tuple(state["python"].tolist()), state["python_gauss"]))
    np.random.set_state((state["numpy_name"], state["numpy"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    torch.set_rng_state(state["torch"])
    # A checkpoint from a machine with a different GPU count restores the generators it can.
    if "cuda" in state and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
