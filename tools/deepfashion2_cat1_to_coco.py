"""Convert DeepFashion2 category 1 (short sleeve top, 25 landmarks) to COCO keypoint files for DEKR.

    python tools/deepfashion2_cat1_to_coco.py [--input-root data/deepfashion2]
                                              [--output-dir data/deepfashion2_cat1/annotations]

Reads ``<input-root>/{train,validation}/annos/NNNNNN.json`` (each split folder that exists) (items ``item1..itemN``) and the matching
``image/NNNNNN.jpg`` (for width and height); writes ``person_keypoints_{train,val}2017.json`` holding the
images with at least one category-1 item. Training then reads the images from
``data/deepfashion2_cat1/images/{train,val}2017`` (link them to ``<input-root>/<split>/image``).
"""
import argparse
import os
from typing import List, Optional, Tuple

import cv2
import numpy as np

from posekit.data.annotations import load_json, require_fields
from posekit.data.image_io import read_bytes
from posekit.data.metadata import DEEPFASHION2_CAT1
from posekit.apis.cli import run_tool
from posekit.utils.errors import DataError
from posekit.utils.io import atomic_write_json

# DeepFashion2 split folder -> COCO-style split name the DEKR readers expect.
SPLITS = (("train", "train2017"), ("validation", "val2017"))
CATEGORY_ID = 1
NUM_LANDMARKS = DEEPFASHION2_CAT1.num_joints


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-root", default="data/deepfashion2",
                        help="DeepFashion2 root holding train/ and validation/")
    parser.add_argument("--output-dir", default="data/deepfashion2_cat1/annotations",
                        help="where person_keypoints_{train,val}2017.json are written")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    return parser.parse_args(argv)


def category():
    """The COCO category entry: DeepFashion2's name for category 1, landmark names, 1-based skeleton."""
    return {"id": CATEGORY_ID, "name": "short_sleeved_shirt", "supercategory": "clothes",
            "keypoints": list(DEEPFASHION2_CAT1.joint_names),
            "skeleton": [[a + 1, b + 1] for a, b in DEEPFASHION2_CAT1.skeleton]}


def _numbers(item: dict, field: str, count: int, where: str) -> List[float]:
    values = item[field]
    if not (isinstance(values, list) and len(values) == count
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
        raise DataError(f"{where}: field '{field}' must be a list of {count} numbers")
    return values


def item_annotation(item: dict, where: str) -> dict:
    """COCO fields of one category-1 item (without ids): bbox xywh, its area, keypoints, segmentation."""
    require_fields(item, ["landmarks", "bounding_box", "segmentation"], where)
    landmarks = _numbers(item, "landmarks", 3 * NUM_LANDMARKS, where)
    x1, y1, x2, y2 = _numbers(item, "bounding_box", 4, where)
    if not isinstance(item["segmentation"], list):
        raise DataError(f"{where}: field 'segmentation' must be a list of polygons")
    width, height = x2 - x1, y2 - y1
    # DeepFashion2's own COCO conversion uses the box area as the annotation area.
    return {"category_id": CATEGORY_ID, "iscrowd": 0, "bbox": [x1, y1, width, height],
            "area": width * height, "segmentation": item["segmentation"],
            "num_keypoints": int(np.count_nonzero(np.asarray(landmarks[2::3]) > 0)), "keypoints": landmarks}


def category1_items(path: str) -> List[dict]:
    """COCO annotation fields of every category-1 item of one DeepFashion2 annotation file, in item order."""
    data = load_json(path)
    require_fields(data, [], path)
    items = sorted((key for key in data if key.startswith("item") and key[4:].isdigit()), key=lambda key: int(key[4:]))
    annotations = []
    for key in items:
        where = f"{path}: {key}"
        require_fields(data[key], ["category_id"], where)
        if data[key]["category_id"] == CATEGORY_ID:
            annotations.append(item_annotation(data[key], where))
    return annotations


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) of an image file."""
    image = cv2.imdecode(np.frombuffer(read_bytes(path), np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{path}: not a decodable image")
    return image.shape[1], image.shape[0]


def convert_split(split_dir: str) -> dict:
    """The COCO keypoint file of one DeepFashion2 split folder (images with category-1 items only)."""
    annos_dir = os.path.join(split_dir, "annos")
    if not os.path.isdir(annos_dir):
        raise DataError(f"{annos_dir}: annotation folder not found (expected <input-root>/<split>/annos)")
    coco = {"info": {"description": "DeepFashion2 category 1 (short sleeve top)"}, "licenses": [],
            "categories": [category()], "images": [], "annotations": []}
    for name in sorted(n for n in os.listdir(annos_dir) if n.endswith(".json")):
        stem = os.path.splitext(name)[0]
        if not stem.isdigit():
            raise DataError(f"{os.path.join(annos_dir, name)}: file name must be the image number (NNNNNN.json)")
        annotations = category1_items(os.path.join(annos_dir, name))
        if not annotations:
            continue
        file_name = f"{stem}.jpg"
        width, height = image_size(os.path.join(split_dir, "image", file_name))
        image_id = int(stem)
        coco["images"].append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for annotation in annotations:
            annotation.update(id=len(coco["annotations"]) + 1, image_id=image_id)
            coco["annotations"].append(annotation)
    return coco


def main(argv: Optional[List[str]] = None) -> int:
    """Convert the splits present, then write them atomically (nothing is written when one is malformed)."""
    args = parse_args(argv)
    present = [(split, coco_split) for split, coco_split in SPLITS if os.path.isdir(os.path.join(args.input_root, split))]
    if not present:
        raise DataError(f"{args.input_root}: neither train/ nor validation/ found (check --input-root)")
    converted = [(coco_split, convert_split(os.path.join(args.input_root, split))) for split, coco_split in present]
    for coco_split, coco in converted:
        out = os.path.join(args.output_dir, f"person_keypoints_{coco_split}.json")
        atomic_write_json(out, coco)
        print(f"wrote {out}: {len(coco['images'])} images, {len(coco['annotations'])} short sleeve tops")
    return 0


if __name__ == "__main__":
    run_tool(main)
