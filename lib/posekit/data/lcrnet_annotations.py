"""LCR-Net training data (lcrnet.md 5): the COCO + ``pose`` json (reader and writer, 5.3), the pseudo-ground-truth
CSV of the seed's demo2.py and its conversion to that json (5.4), and Human3.6M (mmpose npz) people in LCR
form (5.5).

Records are the catalog's (``posekit.data.catalog``): one per image, the json annotation dicts unchanged. A
``pose`` is 5J numbers (the layout of ``posekit.models.lcrnet.codec``, which this layer cannot import: the
tools flatten joints with ``codec.join_poses``): 2D in pixels, 3D in metres in the LCR frame, torso-centred.
"""
import csv
import functools
import logging
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..utils.errors import DataError
from ..utils.io import atomic_write_json
from .catalog import load_coco_json, register_dataset

logger = logging.getLogger(__name__)

COORDINATES = 5
PERSON_CATEGORY = {"id": 1, "name": "person", "supercategory": "person"}
CSV_LABEL = "person"
# The seed's csv2coco split: sklearn's train_test_split(test_size=0.2) under NumPy's global seed 41.
VAL_FRACTION, SPLIT_SEED = 0.2, 41
# Human3.6M (mmpose order) -> LCR joints (lcrnet.md 5.5); the 17-joint set adds pelvis, spine, thorax, neck.
H36M_TO_LCR = {13: (3, 6, 2, 5, 1, 4, 16, 13, 15, 12, 14, 11, 10),
               17: (3, 6, 2, 5, 1, 4, 16, 13, 15, 12, 14, 11, 10, 0, 7, 8, 9)}
# The LCR 3D origin, hips and shoulders (codec.TORSO_JOINTS; data cannot import models).
_TORSO = (4, 5, 10, 11)
BOX_MARGIN = 0.1  # fraction of the joints' extent added per side [our choice, lcrnet.md 5.5]


# --- the COCO + pose json (lcrnet.md 5.3) ---

def check_pose(ann: dict, num_joints: int, where: str) -> None:
    """``ann['pose']`` must be a list of 5J finite numbers; DataError naming ``where`` otherwise."""
    pose = ann.get("pose")
    size = COORDINATES * num_joints
    ok = isinstance(pose, list) and len(pose) == size and all(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) for value in pose)
    if not ok:
        got = f"{len(pose)} entries" if isinstance(pose, list) else type(pose).__name__
        raise DataError(f"{where}: field 'pose' must be a list of {size} finite numbers (x, y, X, Y, Z of "
                        f"{num_joints} joints, coordinate-major), got {got}")


def _usable(ann: dict, height: int, width: int) -> bool:
    """The seed's loader rules (Detectron's): positive area, not ``ignore``, and a box x1, y1, x1 + max(0, w - 1),
    y1 + max(0, h - 1) clipped to the pixels [0, W - 1] x [0, H - 1] with x2 > x1 and y2 > y1."""
    x, y, w, h = (float(value) for value in ann["bbox"])
    x1, x2 = np.clip([x, x + max(0.0, w - 1)], 0, width - 1)
    y1, y2 = np.clip([y, y + max(0.0, h - 1)], 0, height - 1)
    return ann.get("area", 1) > 0 and not ann.get("ignore", 0) and x2 > x1 and y2 > y1


def load_lcrnet_json(json_file: str, image_root: str, num_joints: int = 13) -> List[dict]:
    """Per-image records of an LCR-Net json; every person must carry a 5J ``pose`` (else DataError naming the
    file and annotation). People with zero area, a box empty inside the image or ``ignore`` are left out."""
    records = load_coco_json(json_file, image_root)
    dropped = 0
    for record in records:
        kept = []
        for ann in record["annotations"]:
            if not _usable(ann, record["height"], record["width"]):
                dropped += 1
                continue
            if not ann.get("iscrowd", 0):
                check_pose(ann, num_joints, f"{json_file}: annotation {ann['id']}")
            kept.append(ann)
        record["annotations"] = kept
    if dropped:
        logger.warning("%s: left out %d annotation(s) with zero area, an empty box or ignore=1", json_file, dropped)
    return records


def lcrnet_annotation(ann_id: int, image_id: int, box: Sequence[float], pose: Sequence[float]) -> dict:
    """One person as the seed's csv2coco writes it: box x1, y1, x2, y2 -> ``bbox`` [x, y, w, h], ``area``
    (w + 1)(h + 1), an 8-point polygon around the box, ``pose`` as given."""
    x1, y1, x2, y2 = (float(value) for value in box)
    w, h = x2 - x1, y2 - y1
    polygon = [x1, y1, x1, y1 + 0.5 * h, x1, y2, x1 + 0.5 * w, y2, x2, y2, x2, y2 - 0.5 * h, x2, y1, x2 - 0.5 * w, y1]
    return {"id": ann_id, "image_id": image_id, "category_id": PERSON_CATEGORY["id"], "segmentation": [polygon],
            "bbox": [x1, y1, w, h], "pose": [float(value) for value in pose], "iscrowd": 0,
            "area": (w + 1) * (h + 1)}


def write_lcrnet_json(path: str, images: List[dict], annotations: List[dict], info: str = "posekit") -> None:
    """Write an LCR-Net json (images with id, file_name, height, width; ``lcrnet_annotation`` dicts) atomically."""
    atomic_write_json(path, {"info": info, "images": images, "annotations": annotations,
                             "categories": [PERSON_CATEGORY]}, indent=1)


# --- pseudo-ground-truth CSV (lcrnet.md 5.4) ---

@dataclass
class CsvPerson:
    """One CSV row: the image path as written, the box x1, y1, x2, y2 and the 5J pose."""

    image: str
    box: List[float]
    pose: List[float]


def read_pseudo_gt_csv(path: str, num_joints: int = 13) -> Dict[str, List[CsvPerson]]:
    """Rows of demo2.py's CSV (no header; path, 4 box numbers, 5J pose numbers, 'person') grouped by image
    basename in order of first appearance; a row of another width or with a non-number is a DataError."""
    width = 1 + 4 + COORDINATES * num_joints + 1
    people: Dict[str, List[CsvPerson]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as err:
        raise DataError(f"{path}: cannot read the CSV ({err.strerror})") from err
    for line, row in enumerate(rows, start=1):
        if not row:
            continue
        if len(row) != width or row[-1] != CSV_LABEL:
            raise DataError(f"{path}: row {line} has {len(row)} columns ending '{row[-1]}'; expected {width} "
                            f"(image, x1, y1, x2, y2, {COORDINATES * num_joints} pose numbers, '{CSV_LABEL}')")
        try:
            numbers = [float(value) for value in row[1:-1]]
        except ValueError as err:
            raise DataError(f"{path}: row {line}: {err}") from None
        people.setdefault(os.path.basename(row[0]), []).append(CsvPerson(row[0], numbers[:4], numbers[4:]))
    if not people:
        raise DataError(f"{path}: no rows")
    return people


def split_images(names: Sequence[str], val_fraction: float = VAL_FRACTION,
                 seed: int = SPLIT_SEED) -> Tuple[List[str], List[str]]:
    """Train and val names as the seed's csv2coco splits them: a permutation of NumPy's RandomState(seed), the
    first ceil(fraction * n) to val, the rest to train (sklearn's train_test_split)."""
    count = len(names)
    val_count = math.ceil(val_fraction * count)
    if count - val_count < 1 or val_count < 1:
        raise DataError(f"splitting {count} image(s) {1 - val_fraction:.0%}/{val_fraction:.0%} leaves a split empty; "
                        f"at least 2 images are needed")
    order = np.random.RandomState(seed).permutation(count)
    return [names[i] for i in order[val_count:]], [names[i] for i in order[:val_count]]


def csv_people_to_json(people: Dict[str, List[CsvPerson]], names: Sequence[str],
                       image_sizes: Dict[str, Tuple[int, int]]) -> Tuple[List[dict], List[dict]]:
    """Images and annotations of one split (ids from 0, in ``names`` order, as csv2coco); sizes (height, width)."""
    images, annotations = [], []
    for image_id, name in enumerate(names):
        height, width = image_sizes[name]
        images.append({"id": image_id, "file_name": name, "height": height, "width": width})
        for person in people[name]:
            annotations.append(lcrnet_annotation(len(annotations), image_id, person.box, person.pose))
    return images, annotations


# --- Human3.6M, mmpose layout (lcrnet.md 5.5, 8.1) ---

def camera_to_lcr(joints: np.ndarray) -> np.ndarray:
    """Camera-frame joints (..., J, 3) in LCR-Net joint order (x right, y down, z forward, metres) -> the LCR
    frame (X = -x, Y = -y, Z = z) centred on the torso (mean of both hips and shoulders)."""
    lcr = joints * np.array([-1.0, -1.0, 1.0])
    return lcr - lcr[..., list(_TORSO), :].mean(axis=-2, keepdims=True)


def joint_box(joints2d: np.ndarray, margin: float = BOX_MARGIN, margin_px: float = 0.0) -> np.ndarray:
    """x1, y1, x2, y2: the joints' bounds enlarged by ``margin`` of their extent plus ``margin_px`` per side."""
    low, high = joints2d.min(axis=0), joints2d.max(axis=0)
    pad = margin * (high - low) + margin_px
    return np.concatenate([low - pad, high + pad])


@dataclass
class H36MPerson:
    """One converted person: image path relative to the sample root, LCR 2D pixels (J, 2), 3D (J, 3), box."""

    image: str
    joints2d: np.ndarray
    joints3d: np.ndarray
    box: np.ndarray


def read_h36m_people(npz_path: str, num_joints: int = 13, margin: float = BOX_MARGIN,
                     margin_px: float = 0.0) -> List[H36MPerson]:
    """People of an mmpose-style H36M npz (``imgname``, ``part`` (N, 17, 3) pixels, ``S`` (N, 17, 4) camera metres)
    as LCR joints: 2D as annotated (distorted projection), 3D by ``camera_to_lcr``, box by ``joint_box``."""
    if num_joints not in H36M_TO_LCR:
        raise DataError(f"Human3.6M converts to 13 or 17 LCR joints, not {num_joints}")
    index = list(H36M_TO_LCR[num_joints])
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            names, part, camera = npz["imgname"], npz["part"], npz["S"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{npz_path}: not an mmpose H36M npz with imgname, part and S ({err})") from None
    if part.shape[1:] != (17, 3) or camera.shape[1:] != (17, 4) or not len(part) == len(camera) == len(names):
        raise DataError(f"{npz_path}: expected part (N, 17, 3) and S (N, 17, 4) for N images, got "
                        f"{part.shape} and {camera.shape} for {len(names)}")
    people = []
    for name, joints2d, joints3d in zip(names, part[:, index, :2], camera[:, index, :3]):
        people.append(H36MPerson(str(name), joints2d.astype(np.float64), camera_to_lcr(joints3d.astype(np.float64)),
                                 joint_box(joints2d, margin, margin_px)))
    return people


# --- data sets ---

# name -> (json file, image folder) under the data root.
LCRNET_SPLITS = {
    "h36m_lcrnet_samples": ("samples/h36m/h36m_lcrnet_samples.json", "samples/h36m"),
    **{f"h36m_lcrnet_{split}": (f"h36m/annotations/lcrnet_{split}.json", "h36m/images") for split in ("train", "val")},
    **{f"lcrnet_pseudo_{split}": (f"lcrnet_pseudo/annotations/instances_{split}2017.json",
                                  f"lcrnet_pseudo/images/{split}2017") for split in ("train", "val")},
}


def register_lcrnet_datasets(root: str) -> None:
    """Register ``LCRNET_SPLITS`` under ``root``: Human3.6M converted by tools/h36m_to_lcrnet.py (the bundled
    samples and a full train/val layout) and tools/csv2coco.py's pseudo-ground truth."""
    for name, (json_name, image_name) in LCRNET_SPLITS.items():
        json_file, image_root = os.path.join(root, json_name), os.path.join(root, image_name)
        register_dataset(name, functools.partial(load_lcrnet_json, json_file, image_root),
                         {"json_file": json_file, "image_root": image_root, "keypoint_set": "lcrnet_13",
                          "evaluator": "pose3d"})


register_lcrnet_datasets(os.environ.get("POSEKIT_DATASETS", "data"))


def image_size_of(path: str) -> Optional[Tuple[int, int]]:
    """(height, width) of an image file without decoding it, None when it is no readable image."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, UnidentifiedImageError):
        return None
