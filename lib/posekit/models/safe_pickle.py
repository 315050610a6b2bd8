"""Read pickles that hold only plain containers and NumPy arrays, without running code a file names.

``pickle.load`` calls whatever function a file names (``os.system``, ``eval``...), so a downloaded ``.pkl``
could run code; this unpickler resolves only the few globals NumPy arrays and ordered dicts need.
"""
import codecs
import collections
import os
import pickle
import zipfile
from typing import Any, Callable, Dict, Tuple

import numpy as np

from ..utils.errors import CheckpointError


def _numpy_core_modules() -> Tuple[Any, Any]:
    """NumPy's ``multiarray`` and ``numeric`` modules: ``numpy._core`` since NumPy 2, ``numpy.core`` before."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:
        from numpy.core import multiarray, numeric
    return multiarray, numeric


def _allowed_globals() -> Dict[Tuple[str, str], Callable]:
    """(module, name) a weights pickle may reference -> the object it stands for."""
    multiarray, numeric = _numpy_core_modules()
    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        # Python 3 writes bytes at protocols 0-2 as _codecs.encode(text, 'latin1'): array data and dtype codes.
        ("_codecs", "encode"): codecs.encode,
    }
    # Files written by NumPy 1.x (and Python 2) name numpy.core, by NumPy 2 numpy._core. Both resolve to
    # the installed module here, so that old files load without NumPy's numpy.core deprecation shim.
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct  # arrays, protocols 0-4
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar  # NumPy scalars such as np.float32(1)
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer  # arrays, protocol 5
    return allowed


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of ``_allowed_globals`` and refuses every other one."""

    def __init__(self, file: Any, path: str) -> None:
        # latin1 turns Python 2 byte strings (blob names, array data) into str without failing on bytes >= 0x80;
        # NumPy reads array data given as such a str back byte for byte.
        super().__init__(file, encoding="latin1")
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Callable:
        """The allowed object ``module.name``; CheckpointError for any other global."""
        found = self._allowed.get((module, name))
        if found is None:
            raise CheckpointError(f"{self._path}: posekit refuses to load {module}.{name}; a weights .pkl may hold "
                                  f"only plain containers, numbers, strings and NumPy arrays, and other "
                                  f"globals could run code")
        return found


def load_safe_pickle(path: str) -> Any:
    """The object pickled in ``path``, refusing any global but NumPy's array types and OrderedDict."""
    if not os.path.isfile(path):
        raise CheckpointError(f"weights file not found: {path}")
    if zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: a zip archive (as torch.save writes), not a pickle; expected a .pkl of "
                              f"NumPy arrays (a torch.save file loads under a .pth name)")
    try:
        with open(path, "rb") as file:
            return _ArraysOnlyUnpickler(file, path).load()
    except CheckpointError:
        raise
    except Exception as err:  # not a pickle: UnpicklingError, EOFError, ValueError, KeyError, ... by the first bytes
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable pickle of NumPy arrays ({reason})") from None
