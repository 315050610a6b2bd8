"""COCO-style keypoint splits: DEKR's training records and mapper (augmentation, targets) and the test images."""
import logging
import os
import random
import zipfile
from collections import Counter
from dataclasses import dataclass, replace
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ...utils.errors import DataError
from ..annotations import KeypointFile, keypoint_array, load_keypoint_file
from ..catalog import image_path
from ..image_io import read_rgb
from ..mapped_dataset import MappedDataset
from ..metadata import KeypointSet, check_json_keypoint_names
from ..targets.dekr import (SMALL_PERSON_SEGMENT_AREA, heatmap_targets, labelled_extent_areas, loss_mask,
                            offset_targets, person_centres)
from ..transforms import RandomAffine, RandomHorizontalFlip, to_chw_tensor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetLayout:
    """Where one split lives on disk and the few rules in which data sets differ.

    Results files take image_id from the json's image entries and category_id from the annotations (never
    from file names); for the official COCO and CrowdPose files these equal the numbers in the file names.
    """

    annotation_file: str
    image_source: str  # a folder, or a zip archive when ``zipped``
    zipped: bool
    masks_from_segments: bool  # COCO: crowd and unlabelled persons' segments leave the heatmap loss
    small_person_rule: bool  # COCO: no centre for persons whose segment area is below 32^2

    def image_path(self, file_name: str) -> str:
        """Path (or ``archive.zip@member``) of one image."""
        return image_path(self.image_source, file_name, self.zipped)

    def with_given_paths(self, annotation_file: str, images: str) -> "DatasetLayout":
        """This layout with the annotation file and image folder (or ``.zip``) given directly, where not ''."""
        source, zipped = (images, images.endswith(".zip")) if images else (self.image_source, self.zipped)
        return replace(self, annotation_file=annotation_file or self.annotation_file, image_source=source,
                       zipped=zipped)

    def check(self) -> None:
        """Raise DataError naming both paths when the annotation file or the image source is missing."""
        json_ok = os.path.isfile(self.annotation_file)
        images_ok = os.path.isfile(self.image_source) if self.zipped else os.path.isdir(self.image_source)
        if json_ok and images_ok:
            return
        missing = " and ".join(what for what, ok in (("annotation file", json_ok), ("image folder", images_ok))
                               if not ok)
        raise DataError(f"{missing} not found: looked for annotations {self.annotation_file} and images "
                        f"{self.image_source} (check DATASET.ROOT and DATASET.DATA_FORMAT, or give the files with "
                        f"DATASET.TRAIN_ANNOTATIONS / TRAIN_IMAGES / TEST_ANNOTATIONS / TEST_IMAGES)")

    def missing_images(self, file_names: Sequence[str]) -> List[str]:
        """The file names (json order) whose image is not in the folder or the archive."""
        if self.zipped:
            with zipfile.ZipFile(self.image_source) as archive:
                members = set(archive.namelist())
            return [name for name in file_names if name not in members]
        return [name for name in file_names if not os.path.isfile(os.path.join(self.image_source, name))]


def image_source(zip_path: str, folder: str, data_format: str) -> Tuple[str, bool]:
    """(source, zipped): the zip when DATA_FORMAT is zip and it exists, else the folder (``check`` looks for it)."""
    if data_format == "zip" and os.path.isfile(zip_path):
        return zip_path, True
    return folder, False


def _annotation_fields(layout: DatasetLayout) -> Tuple[str, ...]:
    return ("area",) if layout.small_person_rule else ()


# Missing images named in the error line.
MISSING_SHOWN = 3


def present_images(layout: DatasetLayout, images: List[dict], skip_missing: bool) -> List[dict]:
    """The json's image entries whose files exist; a missing one is an error naming the first few, or with
    ``skip_missing`` one warning line, before any long job starts."""
    missing = set(layout.missing_images([image["file_name"] for image in images]))
    if not missing:
        return images
    shown = ", ".join(sorted(missing)[:MISSING_SHOWN]) + (", ..." if len(missing) > MISSING_SHOWN else "")
    message = (f"{layout.annotation_file}: {len(missing)} of {len(images)} listed images are missing from "
               f"{layout.image_source}: {shown}")
    if not skip_missing:
        raise DataError(f"{message} (set DATASET.SKIP_MISSING_IMAGES True or pass --skip-missing to leave them out)")
    logger.warning("%s; leaving them out", message)
    return [image for image in images if image["file_name"] not in missing]


def keypoint_records(layout: DatasetLayout, keypoint_set: KeypointSet, skip_missing: bool = False) -> List[dict]:
    """Catalog-style records (file_name, image_id, annotations) of the layout's images that have annotations.

    Official DEKR trains on every image with at least one annotation, crowd or not. The json's keypoint
    names must be the set's; no annotated image is an error naming the file.
    """
    keypoint_file = load_keypoint_file(layout.annotation_file, keypoint_set.num_joints, _annotation_fields(layout),
                                       layout.masks_from_segments)
    check_json_keypoint_names(keypoint_set, keypoint_file.categories, layout.annotation_file)
    by_image = keypoint_file.annotations_by_image
    annotated = [image for image in keypoint_file.images if by_image.get(image["id"])]
    if not annotated:
        raise DataError(f"{layout.annotation_file}: no image has an annotation: nothing to train on")
    return [{"file_name": layout.image_path(image["file_name"]), "image_id": image["id"],
             "annotations": by_image[image["id"]]}
            for image in present_images(layout, annotated, skip_missing)]


class DekrMapper:
    """A record -> DEKR's training item: dicts of "image" (3xSxS uint8 RGB), "heatmap", "mask" ((K+1)xRxR),
    "offset" and "offset_weight" (2KxRxR), with the official augmentation drawn from the item's seeds."""

    def __init__(self, layout: DatasetLayout, keypoint_set: KeypointSet, dataset_cfg) -> None:
        self.layout = layout
        self.num_joints = keypoint_set.num_joints
        self.affine = RandomAffine(dataset_cfg.INPUT_SIZE, dataset_cfg.OUTPUT_SIZE, dataset_cfg.MAX_ROTATION,
                                   dataset_cfg.MIN_SCALE, dataset_cfg.MAX_SCALE, dataset_cfg.SCALE_TYPE,
                                   dataset_cfg.MAX_TRANSLATE)
        self.flip = RandomHorizontalFlip(keypoint_set.flip_index_with_center, dataset_cfg.OUTPUT_SIZE,
                                         dataset_cfg.FLIP)
        self.output_size = dataset_cfg.OUTPUT_SIZE
        self.sigma = dataset_cfg.SIGMA
        self.center_sigma = dataset_cfg.CENTER_SIGMA
        self.bg_weight = dataset_cfg.BG_WEIGHT
        self.offset_radius = dataset_cfg.OFFSET_RADIUS

    @staticmethod
    def generators(seed_sequence: np.random.SeedSequence) -> Tuple[np.random.RandomState, random.Random]:
        """The NumPy (affine) and Python (flip) generators of one item."""
        numpy_seed, python_seed = seed_sequence.generate_state(2)
        return np.random.RandomState(numpy_seed), random.Random(int(python_seed))

    def persons(self, annotations: List[dict]) -> Tuple[np.ndarray, np.ndarray]:
        """(P, K+1, 3) joints with centre rows and (P,) areas of the annotations that train (dekr.md 6.2)."""
        kept = [ann for ann in annotations if not ann["iscrowd"] or ann["num_keypoints"] > 0]
        keypoints = np.stack([keypoint_array(ann, self.num_joints) for ann in kept]) if kept else \
            np.zeros((0, self.num_joints, 3))
        centre_allowed = np.array([not (self.layout.small_person_rule and ann["area"] < SMALL_PERSON_SEGMENT_AREA)
                                   for ann in kept], bool)
        joints = np.concatenate([keypoints, person_centres(keypoints, centre_allowed)[:, None]], axis=1)
        return joints, labelled_extent_areas(keypoints)

    def __call__(self, record: dict, seed_sequence: np.random.SeedSequence) -> Dict[str, torch.Tensor]:
        annotations = record["annotations"]
        image = read_rgb(record["file_name"])
        height, width = image.shape[:2]
        if self.layout.masks_from_segments:
            mask = loss_mask(annotations, height, width, self.layout.annotation_file)
        else:
            mask = np.ones((height, width), bool)
        joints, areas = self.persons(annotations)
        numpy_rng, python_rng = self.generators(seed_sequence)
        image, mask, joints, areas = self.affine(image, mask, joints, areas, numpy_rng)
        image, mask, joints = self.flip(image, mask, joints, python_rng)
        heatmap, heatmap_weight = heatmap_targets(joints, self.output_size, self.sigma, self.center_sigma,
                                                  self.bg_weight)
        offset, offset_weight = offset_targets(joints, areas, self.output_size, self.offset_radius)
        return {"image": to_chw_tensor(image), "heatmap": torch.from_numpy(heatmap),
                "mask": torch.from_numpy(heatmap_weight * mask[None].astype(np.float32)),
                "offset": torch.from_numpy(offset), "offset_weight": torch.from_numpy(offset_weight)}


def dekr_train_dataset(layout: DatasetLayout, keypoint_set: KeypointSet, dataset_cfg, seed: int) -> MappedDataset:
    """DEKR's training set of one split: its records through ``DekrMapper``, seeded by ``seed``."""
    records = keypoint_records(layout, keypoint_set, dataset_cfg.SKIP_MISSING_IMAGES)
    return MappedDataset(records, DekrMapper(layout, keypoint_set, dataset_cfg), seed)


# The category of images whose json names no keypoint category (COCO's person).
DEFAULT_CATEGORY_ID = 1


def image_categories(keypoint_file: KeypointFile) -> Dict[int, int]:
    """image_id -> the category_id its predictions take: its annotations' most common one, else the json's
    only keypoint category, else 1."""
    keypoint_categories = [c["id"] for c in keypoint_file.categories if isinstance(c, dict) and "id" in c
                           and "keypoints" in c]
    fallback = keypoint_categories[0] if len(keypoint_categories) == 1 else DEFAULT_CATEGORY_ID
    categories = {}
    for image in keypoint_file.images:
        annotations = keypoint_file.annotations_by_image.get(image["id"], [])
        counts = Counter(ann.get("category_id", fallback) for ann in annotations)
        categories[image["id"]] = counts.most_common(1)[0][0] if counts else fallback
    return categories


class KeypointTestDataset(Dataset):
    """Test images in file order as ``(image_id, RGB uint8 HxWx3)`` with the json's image ids; ``category_id``
    gives each image's category for results files. ``images`` leaves out missing files when ``skip_missing``
    (``complete`` tells whether it holds every image of the json)."""

    def __init__(self, layout: DatasetLayout, keypoint_set: KeypointSet, skip_missing: bool = False) -> None:
        self.layout = layout
        keypoint_file = load_keypoint_file(layout.annotation_file, keypoint_set.num_joints,
                                           _annotation_fields(layout), for_scoring=True)
        check_json_keypoint_names(keypoint_set, keypoint_file.categories, layout.annotation_file)
        if not keypoint_file.images:
            raise DataError(f"{layout.annotation_file}: the json lists no images: nothing to test on")
        self.keypoint_file = keypoint_file
        self.images = present_images(layout, keypoint_file.images, skip_missing)
        self.complete = len(self.images) == len(keypoint_file.images)
        self.has_annotations = keypoint_file.has_annotations
        if self.has_annotations and not keypoint_file.annotations_by_image:
            raise DataError(f"{layout.annotation_file}: 'annotations' is empty: nothing to score against (leave the "
                            f"key out of an image-information file to only write the results)")
        self.categories = image_categories(keypoint_file)

    def category_id(self, index: int) -> int:
        """The category_id of the ``index``-th image's predictions."""
        return self.categories[self.images[index]["id"]]

    @property
    def gt_json(self) -> str:
        """The ground-truth (or image-info) json file of this split."""
        return self.layout.annotation_file

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tuple[int, np.ndarray]:
        image = self.images[index]
        return image["id"], read_rgb(self.layout.image_path(image["file_name"]))
