"""Build the DensePose-COCO sample set from the one real annotated person of demo_dp_single_ann.npz.

    python tools/make_densepose_samples.py [--source data/samples/densepose/demo_dp_single_ann.npz]
                                           [--out data/samples/densepose_coco]

Writes ``annotations/densepose_samples.json`` and ``images/*.jpg`` under --out (a data-set root for the catalog
name ``densepose_coco_samples``), each file atomically, and copies the source's licence next to them.

Every image pastes the person's crop (resized by a scene's scale) onto a grey canvas; the pasted crop is the
person's box. The 125 points go into the box frame (densepose.md §5.1) as dp = crop pixel * 256 / crop side;
dp_I, dp_U, dp_V are copied. dp_masks are made up from the points, since the npz has none: coarse part k's
mask is the convex hull of the points whose chart belongs to part k, filled on the 256 x 256 box canvas (the
pixels whose centres lie inside, cv2.fillConvexPoly at 1/16 pixel), plus the pixels the points fall in, so
every point lies on its part, then grown by a disc of MASK_MARGIN canvas pixels so thin limbs stay learnable
(``[]`` for a part with fewer than 3 points); neighbouring masks may overlap, unlike real masks.
One pasted copy carries no DensePose fields: a person whose box trains the detector only (§5.1).
No flipped copy: flipping U, V needs UV_symmetry_transforms.mat, which is not in the repository (§5.3).
"""
import argparse
import os
import shutil
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_utils

from posekit.apis.cli import run_tool
from posekit.utils.errors import DataError
from posekit.utils.io import atomic_write, atomic_write_json

DEFAULT_SOURCE = "data/samples/densepose/demo_dp_single_ann.npz"
DEFAULT_OUT = "data/samples/densepose_coco"
JSON_NAME = os.path.join("annotations", "densepose_samples.json")
LICENCE_NAME = "LICENSE.densepose"
NPZ_FIELDS = ("image_crop", "x", "y", "I", "U", "V")
FRAME = 256  # the box spans 256 x 256 in dp_x, dp_y and dp_masks
# Fine chart 1..24 -> coarse part 1..14 in dp_masks order (torso, R hand, L hand, L foot, R foot, upper leg R,
# upper leg L, lower leg R, lower leg L, upper arm L, upper arm R, lower arm L, lower arm R, head); index 0 unused.
PART_OF_CHART = (0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14)
PART_COUNT = 14
BACKGROUND = 114
JPEG_QUALITY = 90
HULL_SHIFT = 4  # cv2 fixed-point bits: polygon vertices at 1/16 pixel
# Hulls of a limb's few points are often a few canvas pixels wide, thinner than one cell of the S output: grow
# them by a disc of this radius so S can learn them (real masks cover the whole limb).
MASK_MARGIN = 8


@dataclass(frozen=True)
class Placement:
    """One pasted copy of the person: top-left corner, scale of the crop, whether it carries DensePose."""

    x0: int
    y0: int
    scale: float
    densepose: bool = True


@dataclass(frozen=True)
class Scene:
    """One sample image: file name, canvas (height, width), the pasted copies."""

    file_name: str
    canvas: Tuple[int, int]
    placements: Tuple[Placement, ...]


SCENES = (
    Scene("densepose_sample_1.jpg", (400, 400), (Placement(30, 20, 1.0),)),
    Scene("densepose_sample_2.jpg", (240, 420), (Placement(20, 30, 0.5), Placement(230, 40, 0.5, densepose=False))),
    Scene("densepose_sample_3.jpg", (320, 300), (Placement(24, 16, 0.75),)),
)
CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"}]


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="the npz of one DensePose-COCO person")
    parser.add_argument("--out", default=DEFAULT_OUT, help="root of the sample set to write")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    return parser.parse_args(argv)


def load_person(path: str) -> Dict[str, np.ndarray]:
    """The npz's crop and points, checked (data/samples/densepose/README.md)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    with np.load(path, allow_pickle=False) as data:
        missing = [field for field in NPZ_FIELDS if field not in data]
        if missing:
            raise DataError(f"{path}: missing field(s) {', '.join(missing)}")
        person = {field: data[field] for field in NPZ_FIELDS}
    crop = person["image_crop"]
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise DataError(f"{path}: field 'image_crop' must be RGB uint8 (H, W, 3), got {crop.dtype} {crop.shape}")
    if len({person[field].shape for field in NPZ_FIELDS[1:]}) != 1:
        raise DataError(f"{path}: fields x, y, I, U, V must have one length")
    return person


def part_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The filled convex hull of box-frame points and their own pixels on the 256 x 256 canvas, grown by MASK_MARGIN."""
    vertices = np.round((np.stack([x, y], axis=1) - 0.5) * (1 << HULL_SHIFT)).astype(np.int32)
    canvas = np.zeros((FRAME, FRAME), np.uint8)
    cv2.fillConvexPoly(canvas, cv2.convexHull(vertices), 1, lineType=cv2.LINE_8, shift=HULL_SHIFT)
    # A hull vertex's pixel may have its centre outside the hull: set the points' own pixels too.
    canvas[np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)] = 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MASK_MARGIN + 1, 2 * MASK_MARGIN + 1))
    return cv2.dilate(canvas, disc)


def part_masks(dp_x: np.ndarray, dp_y: np.ndarray, charts: np.ndarray) -> List[object]:
    """dp_masks: per coarse part the RLE of its points' hull, [] below 3 points."""
    parts = np.asarray(PART_OF_CHART)[charts.astype(np.int64)]
    masks: List[object] = []
    for part in range(1, PART_COUNT + 1):
        chosen = parts == part
        if chosen.sum() < 3:
            masks.append([])
            continue
        rle = mask_utils.encode(np.asfortranarray(part_mask(dp_x[chosen], dp_y[chosen])))
        masks.append({"size": [FRAME, FRAME], "counts": rle["counts"].decode("ascii")})
    return masks


def densepose_fields(person: Dict[str, np.ndarray]) -> dict:
    """The six dp_* fields of the person in its crop's box frame."""
    height, width = person["image_crop"].shape[:2]
    dp_x, dp_y = person["x"] * FRAME / width, person["y"] * FRAME / height
    return {"dp_x": dp_x.tolist(), "dp_y": dp_y.tolist(), "dp_I": person["I"].tolist(), "dp_U": person["U"].tolist(),
            "dp_V": person["V"].tolist(), "dp_masks": part_masks(dp_x, dp_y, person["I"])}


def paste(canvas: np.ndarray, crop: np.ndarray, placement: Placement) -> List[float]:
    """Paste the crop scaled by ``placement.scale`` at its corner; its box [x, y, w, h]."""
    height, width = (int(side * placement.scale + 0.5) for side in crop.shape[:2])
    scaled = crop if placement.scale == 1 else cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    if placement.y0 + height > canvas.shape[0] or placement.x0 + width > canvas.shape[1]:
        raise DataError(f"a {width}x{height} copy at ({placement.x0}, {placement.y0}) does not fit the "
                        f"{canvas.shape[1]}x{canvas.shape[0]} canvas")
    canvas[placement.y0:placement.y0 + height, placement.x0:placement.x0 + width] = scaled
    return [float(placement.x0), float(placement.y0), float(width), float(height)]


def build_scene(scene: Scene, image_id: int, first_ann_id: int, person: Dict[str, np.ndarray],
                fields: dict) -> Tuple[np.ndarray, dict, List[dict]]:
    """The scene's RGB image, its json image entry and its annotations."""
    canvas = np.full((*scene.canvas, 3), BACKGROUND, np.uint8)
    annotations = []
    for offset, placement in enumerate(scene.placements):
        box = paste(canvas, person["image_crop"], placement)
        ann = {"id": first_ann_id + offset, "image_id": image_id, "category_id": 1, "iscrowd": 0, "bbox": box,
               "area": box[2] * box[3]}
        annotations.append({**ann, **fields} if placement.densepose else ann)
    entry = {"id": image_id, "file_name": scene.file_name, "height": scene.canvas[0], "width": scene.canvas[1]}
    return canvas, entry, annotations


def write_jpeg(path: str, image: np.ndarray) -> None:
    """Write an RGB image as JPEG atomically."""
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise DataError(f"{path}: JPEG encoding failed")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data.tobytes())
    atomic_write(path, write)


def make_samples(source: str, out: str) -> dict:
    """Write the sample set under ``out``; its json content."""
    person = load_person(source)
    fields = densepose_fields(person)
    data = {"images": [], "annotations": [], "categories": CATEGORIES}
    for index, scene in enumerate(SCENES):
        image, entry, annotations = build_scene(scene, index + 1, len(data["annotations"]) + 1, person, fields)
        write_jpeg(os.path.join(out, "images", scene.file_name), image)
        data["images"].append(entry)
        data["annotations"].extend(annotations)
    atomic_write_json(os.path.join(out, JSON_NAME), data)
    licence = os.path.join(os.path.dirname(source), LICENCE_NAME)
    if os.path.isfile(licence):
        atomic_write(os.path.join(out, LICENCE_NAME), lambda tmp: shutil.copyfile(licence, tmp))
    return data


def main(argv: Optional[List[str]] = None) -> int:
    """Build the sample set and say what was written."""
    args = parse_args(argv)
    data = make_samples(args.source, args.out)
    print(f"wrote {args.out}: {len(data['images'])} images, {len(data['annotations'])} annotations")
    return 0


if __name__ == "__main__":
    run_tool(main)
