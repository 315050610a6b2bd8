"""Image decoding from plain files or zip archives (``<archive>.zip@<member>``, the official zip format)."""
import os
import zipfile
from typing import Dict, Tuple, Union

import cv2
import numpy as np

from ..utils.errors import DataError

ZIP_SEPARATOR = ".zip@"
# What the estimators accept as an image: an RGB uint8 (H, W, 3) array or a path to read.
Image = Union[np.ndarray, str, os.PathLike]
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


def load_rgb_image(image: Image) -> np.ndarray:
    """The RGB uint8 (H, W, 3) array given, or read from the image path given (DataError otherwise)."""
    if isinstance(image, (str, os.PathLike)):
        image = read_rgb(os.fspath(image))
    return check_rgb_image(image)


def check_rgb_image(image: np.ndarray) -> np.ndarray:
    """``image`` itself when it is a uint8 (H, W, 3) array, else a DataError saying what was expected."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise DataError(f"expected an RGB image as a uint8 array of shape (H, W, 3) or an image path, got {got}")
    return image
