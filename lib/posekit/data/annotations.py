"""Reading COCO-style keypoint files with checks that name the file, the record and the field at fault."""
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import numpy as np

from ..utils.errors import DataError


def load_json(path: str) -> Any:
    """Parse a JSON file; a missing or malformed file raises DataError naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err


def require_fields(record: Any, fields: Sequence[str], where: str) -> None:
    """Raise DataError unless ``record`` is a dict holding every one of ``fields``."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object, got {type(record).__name__}")
    for field in fields:
        if field not in record:
            raise DataError(f"{where}: missing field '{field}'")


def require_list(container: dict, field: str, where: str) -> list:
    """Return ``container[field]``, which must be a list."""
    require_fields(container, [field], where)
    if not isinstance(container[field], list):
        raise DataError(f"{where}: field '{field}' must be a list")
    return container[field]


@dataclass
class KeypointFile:
    """A COCO-style keypoint file: image entries in file order and annotations grouped by image id."""

    path: str
    images: List[dict]
    annotations_by_image: Dict[int, List[dict]]
    has_annotations: bool


ANNOTATION_FIELDS = ("id", "image_id", "keypoints", "iscrowd", "num_keypoints")


def _check_annotation(ann: Any, path: str, num_joints: int, extra_fields: Sequence[str],
                      masks_from_segments: bool) -> None:
    where = f"{path}: annotation {ann.get('id', '?') if isinstance(ann, dict) else '?'}"
    require_fields(ann, ANNOTATION_FIELDS + tuple(extra_fields), where)
    keypoints = ann["keypoints"]
    if not isinstance(keypoints, list) or len(keypoints) != 3 * num_joints:
        raise DataError(f"{where}: field 'keypoints' must be a list of {3 * num_joints} numbers "
                        f"({num_joints} x, y, v triples)")
    if masks_from_segments and (ann["iscrowd"] or ann["num_keypoints"] == 0):
        require_fields(ann, ["segmentation"], where)


def load_keypoint_file(path: str, num_joints: int, extra_fields: Sequence[str] = (),
                       masks_from_segments: bool = False) -> KeypointFile:
    """Load and check a keypoint file; ``extra_fields`` are further per-annotation fields a reader needs.

    With ``masks_from_segments``, crowd and unlabelled annotations must carry a segmentation (COCO loss mask).
    """
    data = load_json(path)
    images = require_list(data, "images", path)
    for index, image in enumerate(images):
        require_fields(image, ["id", "file_name"], f"{path}: images[{index}]")
    by_image: Dict[int, List[dict]] = defaultdict(list)
    has_annotations = "annotations" in data
    for ann in require_list(data, "annotations", path) if has_annotations else []:
        _check_annotation(ann, path, num_joints, extra_fields, masks_from_segments)
        by_image[ann["image_id"]].append(ann)
    return KeypointFile(path, images, dict(by_image), has_annotations)


def keypoint_array(ann: dict, num_joints: int) -> np.ndarray:
    """(K, 3) float array of an annotation's x, y, v triples."""
    return np.asarray(ann["keypoints"], np.float64).reshape(num_joints, 3)
