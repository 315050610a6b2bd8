"""AMANet's image-level person masks (densepose.md 4.6): rendered from the annotations, read back for training.

The release trains its semantic branch on pre-rendered PNGs (``dp_seg_images``) that are not distributed.
``render_person_mask`` rebuilds such a mask from a catalog record: the union of the non-crowd person annotations'
``segmentation`` (COCO polygons or RLE) and, for annotations without one, of their 14 DensePose part masks
(``dp_masks``, a 256 x 256 canvas over the box) resized onto the box. Values are 0 / 255, as in the release.
``write_person_masks`` writes them (tools/render_semseg_masks.py); ``mask_path`` names a record's mask in a folder (``<image file stem>.png``) and ``read_person_mask`` reads it
back as a float mask in [0, 1], failing clearly when the file is missing or has the wrong size;
``PersonMaskMapper`` adds it to DensePose training items as ``sem_seg``.
"""
import os
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_utils

from yacs.config import CfgNode

from ..utils.errors import DataError
from ..utils.io import atomic_write_bytes
from .densepose_mapper import DensePoseMapper
from .detection_mapper import PERSON_CATEGORY_ID
from .instance_transforms import _decode as decode_rle

MASK_VALUE = 255
MASK_SUFFIX = ".png"


def _segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygon list or RLE) as a (height, width) bool mask."""
    if isinstance(segmentation, list):
        polygons = [polygon for polygon in segmentation if len(polygon) >= 6]
        if not polygons:
            return np.zeros((height, width), bool)
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))).astype(bool)
    return decode_rle(segmentation).astype(bool)


def _part_masks_on_box(part_masks: Any, bbox: Any, height: int, width: int) -> np.ndarray:
    """The union of the 14 part masks (256 x 256 over the xywh box) placed on the image, nearest-neighbour."""
    canvas = np.zeros((256, 256), bool)
    for rle in part_masks:
        if rle:
            canvas |= decode_rle(rle).astype(bool)
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    x1, y1 = min(int(np.ceil(x + w)), width), min(int(np.ceil(y + h)), height)
    mask = np.zeros((height, width), bool)
    if x1 <= max(x0, 0) or y1 <= max(y0, 0):
        return mask
    # Pixel centres of the box's cells, mapped into the canvas frame.
    cols = ((np.arange(x0, x1) + 0.5 - x) * 256 / max(w, 1e-6)).astype(int)
    rows = ((np.arange(y0, y1) + 0.5 - y) * 256 / max(h, 1e-6)).astype(int)
    inside_cols, inside_rows = (cols >= 0) & (cols < 256), (rows >= 0) & (rows < 256)
    sub = canvas[np.clip(rows, 0, 255)][:, np.clip(cols, 0, 255)] & inside_rows[:, None] & inside_cols[None, :]
    top, left = max(y0, 0), max(x0, 0)
    mask[top:y1, left:x1] = sub[top - y0:, left - x0:]
    return mask


def render_person_mask(record: Dict[str, Any]) -> np.ndarray:
    """The (height, width) uint8 0 / 255 person mask of a catalog record (module docstring)."""
    height, width = int(record["height"]), int(record["width"])
    mask = np.zeros((height, width), bool)
    for ann in record.get("annotations", []):
        if ann.get("iscrowd", 0) or ann.get("category_id", PERSON_CATEGORY_ID) != PERSON_CATEGORY_ID:
            continue
        if ann.get("segmentation"):
            mask |= _segmentation_mask(ann["segmentation"], height, width)
        elif ann.get("dp_masks"):
            mask |= _part_masks_on_box(ann["dp_masks"], ann["bbox"], height, width)
    return mask.astype(np.uint8) * MASK_VALUE


def mask_path(folder: str, image_file: str) -> str:
    """Where the person mask of ``image_file`` lives in ``folder``."""
    return os.path.join(folder, os.path.splitext(os.path.basename(image_file))[0] + MASK_SUFFIX)


def read_person_mask(folder: str, record: Dict[str, Any]) -> np.ndarray:
    """The record's rendered mask as float32 (height, width) in [0, 1]."""
    path = mask_path(folder, record["file_name"])
    if not os.path.isfile(path):
        raise DataError(f"{path}: no person mask for {record['file_name']}; render the masks with "
                        f"tools/render_semseg_masks.py or set DENSEPOSE_DATA.SEMSEG_MASK_DIR")
    mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DataError(f"{path}: not a readable PNG mask")
    expected = (int(record["height"]), int(record["width"]))
    if mask.shape != expected:
        raise DataError(f"{path}: mask is {mask.shape[0]}x{mask.shape[1]} but its image is "
                        f"{expected[0]}x{expected[1]} (height x width)")
    return mask.astype(np.float32) / MASK_VALUE


class PersonMaskMapper(DensePoseMapper):
    """The DensePose mapper whose items also carry ``sem_seg``: the record's person mask (float32 (H, W) in
    [0, 1]) resized and flipped with the image (the same random draws, replayed on the mask)."""

    def __init__(self, *args: Any, mask_dir: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mask_dir = mask_dir

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool) -> "PersonMaskMapper":
        """DensePoseMapper.from_config with the masks of DENSEPOSE_DATA.SEMSEG_MASK_DIR."""
        mapper = super().from_config(cfg, is_train)
        mapper.mask_dir = cfg.DENSEPOSE_DATA.SEMSEG_MASK_DIR
        return mapper

    def __call__(self, record: dict, seed_sequence: Optional[np.random.SeedSequence]) -> Dict[str, Any]:
        """The DensePose item plus ``sem_seg``."""
        mask = read_person_mask(self.mask_dir, record)  # first: a missing mask fails before any decoding
        item = super().__call__(record, seed_sequence)
        pixels = np.repeat(np.round(mask * MASK_VALUE).astype(np.uint8)[:, :, None], 3, axis=2)
        moved = self.map_image(pixels, {"file_name": record["file_name"], "height": record["height"],
                                        "width": record["width"]}, seed_sequence)["image"][0]
        item["sem_seg"] = moved.float() / MASK_VALUE
        return item


def write_person_masks(records: Sequence[Dict[str, Any]], folder: str) -> List[str]:
    """Render every record's person mask into ``folder`` (``mask_path`` names), each PNG written atomically."""
    written = []
    for record in records:
        path = mask_path(folder, record["file_name"])
        ok, encoded = cv2.imencode(MASK_SUFFIX, render_person_mask(record))
        if not ok:
            raise DataError(f"{path}: could not encode the mask as PNG")
        atomic_write_bytes(path, encoded.tobytes())
        written.append(path)
    return written
