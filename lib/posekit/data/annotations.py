"""Reading COCO-style keypoint files with checks that name the file, the record and the field at fault."""
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field as dataclass_field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..utils.errors import DataError

logger = logging.getLogger(__name__)


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
    num_joints: Optional[int] = None  # K of the file's keypoints; None when no annotation carries any
    categories: List[dict] = dataclass_field(default_factory=list)  # the file's 'categories' (empty when absent)
    derived: bool = False  # whether some annotation got a derived iscrowd / num_keypoints / bbox / area


ANNOTATION_FIELDS = ("id", "image_id", "keypoints", "iscrowd", "num_keypoints")
OPTIONAL_KEYPOINT_FIELDS = ("id", "image_id")


def _check_keypoints(ann: dict, where: str, num_joints: Optional[int]) -> None:
    """``keypoints`` must be x, y, v triples: 3 * num_joints numbers, or any positive multiple of 3 when None."""
    keypoints = ann["keypoints"]
    if num_joints is None:
        if not isinstance(keypoints, list) or not keypoints or len(keypoints) % 3:
            raise DataError(f"{where}: field 'keypoints' must be a non-empty list of x, y, v triples")
    elif not isinstance(keypoints, list) or len(keypoints) != 3 * num_joints:
        raise DataError(f"{where}: field 'keypoints' must be a list of {3 * num_joints} numbers "
                        f"({num_joints} x, y, v triples)")


# Fields other projects' COCO-style files often leave out, derived as COCO defines them (README "Your own data").
DERIVED_FIELDS = {
    "iscrowd": "0",
    "num_keypoints": "the count of keypoints with v > 0",
    # Derived only for scoring (``for_scoring``): COCO's evaluation reads every ground-truth box, area and
    # category (that of a json with one category; with several, a missing one is an error).
    "bbox": "the labelled keypoints' extent",
    "area": "the box's width x height",
    "category_id": "the json's only category",
}
SCORING_FIELDS = ("bbox", "category_id")


def _only_category_id(categories: Any) -> Optional[int]:
    """The id of a json's single category (None when it lists none or several)."""
    ids = [c["id"] for c in categories if isinstance(c, dict) and "id" in c] if isinstance(categories, list) else []
    return ids[0] if len(ids) == 1 else None


def _derive_missing_fields(ann: Any, wanted: Sequence[str], derived: Counter, category_id: Optional[int]) -> None:
    """Fill ``ann``'s missing iscrowd / num_keypoints / bbox / area / category_id (those in ``wanted``; the last
    when ``category_id`` is given), counting each in ``derived``."""
    if not isinstance(ann, dict):
        return
    if "iscrowd" in wanted and "iscrowd" not in ann:
        ann["iscrowd"] = 0
        derived["iscrowd"] += 1
    keypoints = ann.get("keypoints")
    if "num_keypoints" in wanted and "num_keypoints" not in ann and isinstance(keypoints, list) \
            and len(keypoints) % 3 == 0:
        ann["num_keypoints"] = sum(1 for v in keypoints[2::3] if v > 0)
        derived["num_keypoints"] += 1
    if "bbox" in wanted and "bbox" not in ann and isinstance(keypoints, list) and len(keypoints) % 3 == 0:
        ann["bbox"] = labelled_extent(keypoints)
        derived["bbox"] += 1
    bbox = ann.get("bbox")
    if "area" in wanted and "area" not in ann and isinstance(bbox, list) and len(bbox) == 4:
        ann["area"] = float(bbox[2]) * float(bbox[3])
        derived["area"] += 1
    if "category_id" in wanted and "category_id" not in ann and category_id is not None:
        ann["category_id"] = category_id
        derived["category_id"] += 1


def labelled_extent(keypoints: Sequence[float]) -> List[float]:
    """[x, y, width, height] around the keypoints with v > 0 (all zero when none is labelled)."""
    labelled = [(x, y) for x, y, v in zip(keypoints[0::3], keypoints[1::3], keypoints[2::3]) if v > 0]
    if not labelled:
        return [0.0, 0.0, 0.0, 0.0]
    xs, ys = zip(*labelled)
    return [float(min(xs)), float(min(ys)), float(max(xs) - min(xs)), float(max(ys) - min(ys))]


def _warn_derived(path: str, derived: Counter) -> None:
    for name, count in derived.items():
        logger.warning("%s: %d annotation(s) without '%s': using %s", path, count, name, DERIVED_FIELDS[name])


def _check_annotation(ann: Any, path: str, num_joints: Optional[int], extra_fields: Sequence[str],
                      masks_from_segments: bool, keypoints_required: bool) -> None:
    where = f"{path}: annotation {ann.get('id', '?') if isinstance(ann, dict) else '?'}"
    required = ANNOTATION_FIELDS if keypoints_required else OPTIONAL_KEYPOINT_FIELDS
    require_fields(ann, required + tuple(extra_fields), where)
    if "keypoints" in ann:
        _check_keypoints(ann, where, num_joints)
    if masks_from_segments and (ann.get("iscrowd", 0) or ann.get("num_keypoints", 0) == 0):
        require_fields(ann, ["segmentation"], where)


def load_keypoint_file(path: str, num_joints: Optional[int], extra_fields: Sequence[str] = (),
                       masks_from_segments: bool = False, for_scoring: bool = False) -> KeypointFile:
    """Load and check a keypoint file; ``extra_fields`` are further per-annotation fields a reader needs.

    With an int ``num_joints`` every annotation carries ``keypoints`` of that many joints plus ``iscrowd`` and
    ``num_keypoints`` (derived when absent, as ``area`` is from the box: one warning line per field); a ground
    truth ``for_scoring`` needs ``bbox`` and ``category_id`` too (derived when possible, DERIVED_FIELDS). With
    None keypoints are optional (detector files), but those present must all have the same joint count. With
    ``masks_from_segments``, crowd and unlabelled annotations must carry a segmentation (COCO loss mask).
    """
    data = load_json(path)
    images = require_list(data, "images", path)
    for index, image in enumerate(images):
        require_fields(image, ["id", "file_name"], f"{path}: images[{index}]")
    by_image: Dict[int, List[dict]] = defaultdict(list)
    has_annotations = "annotations" in data
    file_joints = num_joints
    derivable = tuple(name for name in DERIVED_FIELDS if name not in SCORING_FIELDS or for_scoring) \
        if num_joints is not None else ()
    required = tuple(extra_fields) + (SCORING_FIELDS if for_scoring else ())
    categories = data.get("categories")
    only_category = _only_category_id(categories)
    derived: Counter = Counter()
    for ann in require_list(data, "annotations", path) if has_annotations else []:
        _derive_missing_fields(ann, derivable, derived, only_category)
        _check_annotation(ann, path, file_joints, required, masks_from_segments,
                          keypoints_required=num_joints is not None)
        if file_joints is None and "keypoints" in ann:
            # The first annotation with keypoints fixes K for the rest of the file.
            file_joints = len(ann["keypoints"]) // 3
        by_image[ann["image_id"]].append(ann)
    _warn_derived(path, derived)
    return KeypointFile(path, images, dict(by_image), has_annotations, file_joints,
                        categories if isinstance(categories, list) else [], bool(derived))


def keypoint_array(ann: dict, num_joints: int) -> np.ndarray:
    """(K, 3) float array of an annotation's x, y, v triples."""
    return np.asarray(ann["keypoints"], np.float64).reshape(num_joints, 3)
