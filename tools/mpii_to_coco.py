"""Convert MPII's json (the HRNet / MMPose ``mpii_{train,val}.json``) to COCO-style keypoints for ``custom`` sets.

    python tools/mpii_to_coco.py --input data/mpii/annot/mpii_train.json --output data/mpii/annotations/train.json

Each MPII entry (``image``, ``joints`` [[x, y] x 16], ``joints_vis``, ``center``, ``scale``) becomes one annotation
of its image (images numbered 1, 2, ... in order of first appearance): keypoints in 0-based pixels (MPII's are
1-based, as HRNet subtracts 1), v 2 when visible-labelled else 0 (x = y = 0), ``num_keypoints``, ``iscrowd`` 0 and
a square box of side 200 x scale around the centre (MPII's person scale). The category lists MPII's joints with
left_/right_ names, so the set can be built from the json or taken from experiments/keypoint_sets/mpii.yaml.
"""
import argparse
from typing import Dict, List, Optional

from posekit.apis.cli import run_tool
from posekit.data.annotations import load_json, require_fields
from posekit.utils.errors import DataError
from posekit.utils.io import atomic_write_json

MPII_JOINTS = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
               "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
               "left_elbow", "left_wrist")
# 1-based, as COCO json skeletons: legs, pelvis-thorax-neck-head, arms.
MPII_SKELETON = [[1, 2], [2, 3], [3, 7], [4, 7], [4, 5], [5, 6], [7, 8], [8, 9], [9, 10], [11, 12], [12, 13],
                 [13, 8], [14, 8], [14, 15], [15, 16]]
MPII_PERSON_SCALE = 200.0


def person_annotation(entry: dict, ann_id: int, image_id: int, where: str) -> dict:
    """One MPII entry as a COCO-style annotation."""
    require_fields(entry, ["image", "joints", "joints_vis", "center", "scale"], where)
    joints, visible = entry["joints"], entry["joints_vis"]
    if len(joints) != len(MPII_JOINTS) or len(visible) != len(MPII_JOINTS):
        raise DataError(f"{where}: expected {len(MPII_JOINTS)} joints and joints_vis, got {len(joints)} and "
                        f"{len(visible)}")
    keypoints: List[float] = []
    for (x, y), seen in zip(joints, visible):
        keypoints += [float(x) - 1, float(y) - 1, 2] if seen else [0.0, 0.0, 0]
    side = MPII_PERSON_SCALE * float(entry["scale"])
    centre_x, centre_y = (float(v) - 1 for v in entry["center"])
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": keypoints,
            "num_keypoints": sum(1 for seen in visible if seen), "iscrowd": 0,
            "bbox": [centre_x - side / 2, centre_y - side / 2, side, side], "area": side * side}


def convert(entries: list, path: str) -> dict:
    """COCO-style images, annotations and the MPII person category from MPII's entries."""
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected MPII's list of person entries")
    image_ids: Dict[str, int] = {}
    annotations = []
    for index, entry in enumerate(entries):
        where = f"{path}: entry {index}"
        require_fields(entry, ["image"], where)
        image_id = image_ids.setdefault(entry["image"], len(image_ids) + 1)
        annotations.append(person_annotation(entry, index + 1, image_id, where))
    return {"images": [{"id": image_id, "file_name": name} for name, image_id in image_ids.items()],
            "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(MPII_JOINTS), "skeleton": MPII_SKELETON}]}


def main(argv: Optional[List[str]] = None) -> int:
    """Convert ``--input`` into ``--output``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="MPII json (a list of person entries)")
    parser.add_argument("--output", required=True, help="COCO-style json to write")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    args = parser.parse_args(argv)
    converted = convert(load_json(args.input), args.input)
    atomic_write_json(args.output, converted)
    print(f"wrote {args.output}: {len(converted['images'])} images, {len(converted['annotations'])} people")
    return 0


if __name__ == "__main__":
    run_tool(main)
