"""Image inputs of the tools (a file, a folder or a glob) and the output name each one writes under."""
import glob
import os
from pathlib import Path
from typing import List, Sequence, Tuple

from ..utils.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def input_images(spec: str) -> List[str]:
    """The images named by ``spec``: a file, the images of a folder, or a glob's matches, sorted."""
    if os.path.isfile(spec):
        return [spec]
    if os.path.isdir(spec):
        candidates = [os.path.join(spec, name) for name in os.listdir(spec)]
    else:
        candidates = glob.glob(spec, recursive=True)
    images = sorted(path for path in candidates
                    if os.path.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise DataError(f"{spec}: no image found (expected an image file, a folder of images or a glob)")
    return images


def output_stems(paths: Sequence[str]) -> List[Tuple[str, Path]]:
    """(image path, output stem): the path relative to the inputs' common folder without its extension, so
    images of one name in different folders keep apart (``a/000000.jpg`` -> ``a/000000``)."""
    folders = [os.path.dirname(os.path.abspath(path)) for path in paths]
    base = os.path.commonpath(folders) if folders else ""
    return [(path, Path(os.path.relpath(os.path.splitext(os.path.abspath(path))[0], base))) for path in paths]
