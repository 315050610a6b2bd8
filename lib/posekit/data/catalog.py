"""Named data sets for the detector families: a registry of lazy loaders, COCO-style json reading, and
annotations -> ``Instances``.

A loader is a zero-argument callable returning one record per image::

    {"file_name": str,    # image path: a file, or "<archive>.zip@<member>" (posekit.data.image_io.read_rgb)
     "image_id": int,     # the json image entry's id
     "height": int, "width": int,
     "annotations": [ann, ...]}

Each ``ann`` is the json annotation dict itself: every original field (``id``, ``bbox`` [x, y, w, h],
``category_id``, ``iscrowd``, ``area``, ``segmentation``, ``keypoints``, ``num_keypoints``, DensePose-COCO's
``dp_x``, ``dp_y``, ``dp_I``, ``dp_U``, ``dp_V``, ``dp_masks``, ...) and nothing added, so keypoint readers
see the file's values. Keypoints are optional (a detector trains on boxes); crowd annotations are kept
in the records and left out by ``annotations_to_instances``. Images come in file order, annotationless ones
included.

Standard names live under the data root ``$POSEKIT_DATASETS`` (default ``data``, read when this module is
imported); each split's images are the folder or, when there is none, the folder's ``.zip``:

* ``coco_2017_{train,val}``: ``coco/annotations/person_keypoints_{train,val}2017.json``,
  ``coco/images/{train,val}2017``
* ``coco_2017_{train,val}_samples``: the same layout under ``samples/coco`` (posekit's bundled samples)
* ``crowdpose_{train,val,test,trainval}``: ``crowdpose/json/crowdpose_<split>.json``, ``crowdpose/images``
* ``densepose_coco_2014_{train,minival,valminusminival}``: ``coco/annotations/densepose_<split>2014.json``
  (official names, densepose.md §5.1) on the COCO 2014 images ``coco/images/train2014`` (train) or
  ``coco/images/val2014``; ``densepose_coco_2014_minival_100`` is minival's first 100 images.
* ``densepose_ultrapose_{train,minival}``: UltraPose (densepose.md §5.2), DensePose-COCO json in KTNv2's file
  names ``ultrapose/annotations/densepose_{train,valminusminival}2014.json`` on ``ultrapose/images/train2014``
  (train) or ``ultrapose/images/val2014`` (minival), the images under ``images/`` as for COCO
* ``densepose_coco_samples``: ``samples/densepose_coco/annotations/densepose_samples.json``,
  ``samples/densepose_coco/images`` (posekit's DensePose samples, tools/make_densepose_samples.py)
"""
import difflib
import functools
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..structures import DensePosePoints, Instances
from ..structures.instances import DENSEPOSE_CHART_COUNT, DENSEPOSE_PART_COUNT
from ..utils.errors import ConfigError, DataError
from .annotations import load_keypoint_file, require_fields

RecordLoader = Callable[[], List[dict]]
DENSEPOSE_FIELDS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V", "dp_masks")
# A json keypoint (an integer pixel index) becomes a continuous coordinate at the pixel's centre (densepose.md
# §5.1 loader rule); the detector-family transforms (x' = W - x) rely on it.
KEYPOINT_PIXEL_CENTRE = 0.5

_LOADERS: Dict[str, RecordLoader] = {}
_METADATA: Dict[str, Dict[str, Any]] = {}


def register_dataset(name: str, loader: RecordLoader, metadata: Optional[Dict[str, Any]] = None) -> None:
    """Register ``loader`` (called only when records are asked for) and optional metadata under ``name``."""
    if name in _LOADERS:
        raise ConfigError(f"data set '{name}' is already registered")
    if not callable(loader):
        raise ConfigError(f"data set '{name}': the loader must be a zero-argument callable")
    _LOADERS[name] = loader
    _METADATA[name] = dict(metadata or {})


def unregister_dataset(name: str) -> None:
    """Forget data set ``name``."""
    _require_registered(name)
    del _LOADERS[name], _METADATA[name]


def registered_datasets() -> List[str]:
    """Names of the registered data sets, sorted."""
    return sorted(_LOADERS)


def _require_registered(name: str) -> None:
    if name in _LOADERS:
        return
    close = difflib.get_close_matches(name, _LOADERS, n=3, cutoff=0.6)
    hint = f"closest registered: {', '.join(close)}" if close else \
        f"registered: {', '.join(registered_datasets()) or 'none'}"
    raise ConfigError(f"unknown data set '{name}'; {hint}")


def get_dataset_records(name: str) -> List[dict]:
    """Run the loader of data set ``name``: its per-image records (module docstring)."""
    _require_registered(name)
    try:
        records = _LOADERS[name]()
    except DataError as err:
        raise DataError(f"data set '{name}': {err}") from err
    if not isinstance(records, list):
        raise DataError(f"data set '{name}': its loader returned {type(records).__name__}, "
                        f"expected a list of per-image records")
    return records


def dataset_metadata(name: str) -> Dict[str, Any]:
    """A copy of the metadata of data set ``name``.

    Standard sets carry json_file, image_root (folder), image_archive (its zip), keypoint_set (a
    ``posekit.data.metadata`` name) and evaluator ('coco', 'crowdpose' or 'densepose').
    """
    _require_registered(name)
    return dict(_METADATA[name])


def _check_box(ann: dict, where: str) -> None:
    bbox = ann["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise DataError(f"{where}: field 'bbox' must be a list of 4 numbers (x, y, width, height)")


def has_densepose(ann: dict) -> bool:
    """Whether ``ann`` is DensePose-annotated: it carries all six dp fields (otherwise it has none, §5.1)."""
    return all(field in ann for field in DENSEPOSE_FIELDS)


def check_densepose_fields(ann: dict, where: str) -> None:
    """dp_x/y/I/U/V: lists of one length, charts 1..24; dp_masks: 14 entries, each [] or an RLE dict."""
    lengths = {field: len(ann[field]) if isinstance(ann[field], list) else None for field in DENSEPOSE_FIELDS[:5]}
    if None in lengths.values() or len(set(lengths.values())) != 1:
        raise DataError(f"{where}: fields dp_x, dp_y, dp_I, dp_U, dp_V must be lists of one length, got "
                        + ", ".join(f"{field}: {length if length is not None else 'not a list'}"
                                    for field, length in lengths.items()))
    charts = np.asarray(ann["dp_I"], np.float64)
    if charts.size and (charts.min() < 1 or charts.max() > DENSEPOSE_CHART_COUNT):
        raise DataError(f"{where}: field 'dp_I' must hold charts 1..{DENSEPOSE_CHART_COUNT}, "
                        f"found {charts.min():g}..{charts.max():g}")
    masks = ann["dp_masks"]
    if not isinstance(masks, list) or len(masks) != DENSEPOSE_PART_COUNT or \
            not all(mask == [] or isinstance(mask, dict) for mask in masks):
        raise DataError(f"{where}: field 'dp_masks' must be a list of {DENSEPOSE_PART_COUNT} entries, "
                        f"each [] or a COCO RLE dict")


def image_path(image_root: str, file_name: str, zipped: bool) -> str:
    """Path of an image in a folder, or ``<archive>.zip@<member>`` when ``zipped``."""
    return f"{image_root}@{file_name}" if zipped else os.path.join(image_root, file_name)


def load_coco_json(json_file: str, image_root: str, zipped: bool = False,
                   num_joints: Optional[int] = None) -> List[dict]:
    """Per-image records of a COCO-style json (keypoints, CrowdPose, DensePose-COCO), checked field by field.

    ``num_joints`` None: keypoints optional, those present of one joint count; an int: every annotation
    carries that many keypoints plus iscrowd and num_keypoints (``load_keypoint_file`` rules).
    """
    if zipped and not image_root.endswith(".zip"):
        raise ConfigError(f"zipped images need a '.zip' archive as image root, got '{image_root}'")
    keypoint_file = load_keypoint_file(json_file, num_joints, extra_fields=("bbox", "category_id"))
    for annotations in keypoint_file.annotations_by_image.values():
        for ann in annotations:
            where = f"{json_file}: annotation {ann['id']}"
            _check_box(ann, where)
            if has_densepose(ann):
                check_densepose_fields(ann, where)
    records = []
    for index, image in enumerate(keypoint_file.images):
        require_fields(image, ["height", "width"], f"{json_file}: images[{index}]")
        records.append({"file_name": image_path(image_root, image["file_name"], zipped), "image_id": image["id"],
                        "height": image["height"], "width": image["width"],
                        "annotations": keypoint_file.annotations_by_image.get(image["id"], [])})
    return records


def _keypoint_rows(annotations: Sequence[dict], num_joints: Optional[int]) -> Optional[torch.Tensor]:
    """(N, K, 3) continuous-coordinate keypoints; zero rows (v = 0) for annotations without keypoints."""
    with_keypoints = [ann for ann in annotations if "keypoints" in ann]
    if num_joints is None:
        if not with_keypoints:
            return None
        num_joints = len(with_keypoints[0]["keypoints"]) // 3
    rows = np.zeros((len(annotations), num_joints, 3), np.float32)
    for row, ann in zip(rows, annotations):
        if "keypoints" not in ann:
            continue
        if len(ann["keypoints"]) != 3 * num_joints:
            raise DataError(f"annotation {ann.get('id', '?')}: field 'keypoints' must be a list of "
                            f"{3 * num_joints} numbers ({num_joints} x, y, v triples)")
        row[:] = np.asarray(ann["keypoints"], np.float32).reshape(num_joints, 3)
        row[:, :2] += KEYPOINT_PIXEL_CENTRE
    return torch.from_numpy(rows)


def _mask_entry(ann: dict) -> Any:
    """The annotation's segmentation: RLE as given, polygons with at least 3 points (§5.1), None if absent."""
    segmentation = ann.get("segmentation")
    if segmentation is None or isinstance(segmentation, dict):
        return segmentation
    polygons = [polygon for polygon in segmentation if len(polygon) >= 6 and len(polygon) % 2 == 0]
    return polygons or None


def _densepose_entry(ann: dict) -> Optional[DensePosePoints]:
    if not has_densepose(ann):
        return None
    check_densepose_fields(ann, f"annotation {ann.get('id', '?')}")
    return DensePosePoints.from_lists(ann["dp_x"], ann["dp_y"], ann["dp_I"], ann["dp_U"], ann["dp_V"],
                                      ann["dp_masks"])


def annotations_to_instances(annotations: Sequence[dict], image_size: Tuple[int, int],
                             num_joints: Optional[int] = None) -> Instances:
    """Non-crowd annotations of one image as Instances (field conventions in ``posekit.structures.instances``).

    Boxes XYWH -> XYXY, category_id -> gt_classes. gt_keypoints (json x, y + 0.5) when some annotation has
    keypoints, or always when ``num_joints`` is given; gt_masks / gt_densepose when some annotation has a
    segmentation / all six dp fields, with None entries for those without.
    """
    kept = [ann for ann in annotations if not ann.get("iscrowd", 0)]
    for ann in kept:
        where = f"annotation {ann.get('id', '?')}"
        require_fields(ann, ["bbox", "category_id"], where)
        _check_box(ann, where)
    boxes = torch.tensor([ann["bbox"] for ann in kept], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    instances = Instances(image_size, gt_boxes=boxes,
                          gt_classes=torch.tensor([ann["category_id"] for ann in kept], dtype=torch.int64))
    keypoints = _keypoint_rows(kept, num_joints)
    if keypoints is not None:
        instances.gt_keypoints = keypoints
    if any("segmentation" in ann for ann in kept):
        instances.gt_masks = [_mask_entry(ann) for ann in kept]
    if any(has_densepose(ann) for ann in kept):
        instances.gt_densepose = [_densepose_entry(ann) for ann in kept]
    return instances


def _load_split(json_file: str, image_folder: str, max_images: Optional[int] = None) -> List[dict]:
    """Records of one standard split; images from the folder, else from the folder's zip."""
    if not os.path.isfile(json_file):
        raise DataError(f"{json_file}: file not found")
    archive = image_folder + ".zip"
    if os.path.isdir(image_folder):
        records = load_coco_json(json_file, image_folder)
    elif os.path.isfile(archive):
        records = load_coco_json(json_file, archive, zipped=True)
    else:
        raise DataError(f"image folder not found: {image_folder} (nor {archive})")
    return records[:max_images]


# name -> (json file, image folder, keypoint set, evaluator), relative to the data root.
STANDARD_SPLITS: Dict[str, Tuple[str, str, str, str]] = {
    **{f"coco_2017_{split}": (f"coco/annotations/person_keypoints_{split}2017.json", f"coco/images/{split}2017",
                              "coco", "coco") for split in ("train", "val")},
    # The bundled samples (data/samples/coco), for the sample configs, the demo and tests.
    **{f"coco_2017_{split}_samples": (f"samples/coco/annotations/person_keypoints_{split}2017.json",
                                      f"samples/coco/images/{split}2017", "coco", "coco") for split in ("train", "val")},
    **{f"crowdpose_{split}": (f"crowdpose/json/crowdpose_{split}.json", "crowdpose/images", "crowdpose",
                              "crowdpose") for split in ("train", "val", "test", "trainval")},
    **{f"densepose_coco_2014_{split}": (f"coco/annotations/densepose_{split}2014.json", f"coco/images/{images}",
                                        "coco", "densepose")
       for split, images in (("train", "train2014"), ("minival", "val2014"), ("valminusminival", "val2014"))},
    **{f"densepose_ultrapose_{split}": (f"ultrapose/annotations/densepose_{json_split}2014.json",
                                        f"ultrapose/images/{images}", "coco", "densepose")
       for split, json_split, images in (("train", "train", "train2014"), ("minival", "valminusminival", "val2014"))},
    "densepose_coco_samples": ("samples/densepose_coco/annotations/densepose_samples.json",
                               "samples/densepose_coco/images", "coco", "densepose"),
}


def register_standard_datasets(root: str) -> None:
    """Register the standard names (module docstring) with their files under ``root``."""
    for name, (json_name, image_name, keypoint_set, evaluator) in STANDARD_SPLITS.items():
        json_file, image_folder = os.path.join(root, json_name), os.path.join(root, image_name)
        metadata = {"json_file": json_file, "image_root": image_folder, "image_archive": image_folder + ".zip",
                    "keypoint_set": keypoint_set, "evaluator": evaluator}
        register_dataset(name, functools.partial(_load_split, json_file, image_folder), metadata)
        if name == "densepose_coco_2014_minival":
            # The official smoke-test subset.
            register_dataset(f"{name}_100", functools.partial(_load_split, json_file, image_folder, 100), metadata)


register_standard_datasets(os.environ.get("POSEKIT_DATASETS", "data"))
