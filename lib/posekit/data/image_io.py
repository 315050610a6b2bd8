"""Image decoding from plain files or zip archives (``<archive>.zip@<member>``, the official zip format)."""
import os
import zipfile
from typing import Dict, Tuple

import cv2
import numpy as np

from ..utils.errors import DataError

ZIP_SEPARATOR = ".zip@"
# One open handle per (process, archive): DataLoader workers are forked and must not share file offsets.
_ZIP_HANDLES: Dict[Tuple[int, str], zipfile.ZipFile] = {}


def _zip_handle(archive: str) -> zipfile.ZipFile:
    key = (os.getpid(), archive)
    if key not in _ZIP_HANDLES:
        try:
            _ZIP_HANDLES[key] = zipfile.ZipFile(archive)
        except (OSError, zipfile.BadZipFile) as err:
            raise DataError(f"{archive}: cannot open the image archive ({err})") from err
    return _ZIP_HANDLES[key]


def read_bytes(path: str) -> bytes:
    """Return the raw bytes of a file or of a ``<archive>.zip@<member>`` entry."""
    if ZIP_SEPARATOR in path:
        archive, member = path.split("@", 1)
        try:
            return _zip_handle(archive).read(member)
        except KeyError as err:
            raise DataError(f"{archive}: no image '{member}' in the archive") from err
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise DataError(f"{path}: cannot read the image ({err.strerror})") from err


def read_rgb(path: str) -> np.ndarray:
    """Decode an image to RGB uint8 (H, W, 3), ignoring EXIF orientation as the official readers do."""
    data = np.frombuffer(read_bytes(path), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DataError(f"{path}: not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
