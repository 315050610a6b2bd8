"""Writes that never leave a half-written file behind: write to a temporary name, then rename."""
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Union

import numpy as np

from .errors import OutputError

PathLike = Union[str, os.PathLike]


def require_writable_dir(path: PathLike, what: str) -> Path:
    """Check, creating nothing, that folder ``path`` exists or can be created and written in; OutputError naming
    ``what`` (e.g. 'OUTPUT_DIR', '--outputDir') and the path otherwise."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        reason = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is read-only or not yours"
    else:
        return path
    raise OutputError(f"{what}: cannot write to {path} ({reason}); choose a writable folder")


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` only when it succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates owner-only files; give the result the mode an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    atomic_write(path, write)


def atomic_write_json(path: PathLike, obj: Any, **kwargs) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, **kwargs))


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
    atomic_write(path, write)


def atomic_write_npz(path: PathLike, arrays: Mapping[str, Any]) -> None:
    """Write named arrays as an uncompressed npz to exactly ``path`` (np.savez given a name would append ".npz"),
    atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    atomic_write(path, write)
