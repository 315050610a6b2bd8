"""Write CrowdPose ``crowdpose_trainval.json``: train's categories, then train's and val's images and annotations.

    python tools/crowdpose_concat_train_val.py [--data_dir data/crowdpose/json]
    python tools/crowdpose_concat_train_val.py --train T.json --val V.json --out TV.json

Ids are kept as they are (official); an image or annotation id present in both files is refused.
"""
import argparse
import os
from collections import Counter
from typing import List, Optional

from posekit.data.annotations import load_json, require_fields, require_list
from posekit.apis.cli import run_tool
from posekit.utils.errors import DataError
from posekit.utils.io import atomic_write_json

SECTIONS = ("categories", "images", "annotations")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments; explicit --train/--val/--out override the files under --data_dir."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="data/crowdpose/json",
                        help="folder holding crowdpose_train.json and crowdpose_val.json")
    parser.add_argument("--train", help="train json (default <data_dir>/crowdpose_train.json)")
    parser.add_argument("--val", help="val json (default <data_dir>/crowdpose_val.json)")
    parser.add_argument("--out", help="output json (default <data_dir>/crowdpose_trainval.json)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    args = parser.parse_args(argv)
    args.train = args.train or os.path.join(args.data_dir, "crowdpose_train.json")
    args.val = args.val or os.path.join(args.data_dir, "crowdpose_val.json")
    args.out = args.out or os.path.join(args.data_dir, "crowdpose_trainval.json")
    return args


def read_split(path: str) -> dict:
    """Load one CrowdPose file and check the sections and ids the concatenation relies on."""
    data = load_json(path)
    for section in SECTIONS:
        for index, record in enumerate(require_list(data, section, path)):
            require_fields(record, ["id"], f"{path}: {section}[{index}]")
    return data


def refuse_duplicate_ids(train: dict, val: dict, section: str, train_path: str, val_path: str) -> None:
    """Raise DataError when an id of ``section`` occurs in both files (or twice in one)."""
    counts = Counter(record["id"] for record in train[section] + val[section])
    repeated = sorted(record_id for record_id, count in counts.items() if count > 1)
    if repeated:
        raise DataError(f"{train_path} + {val_path}: {section} ids occur more than once: {repeated[:10]}")


def concatenate(train: dict, val: dict) -> dict:
    """Train's categories; train's then val's images and annotations."""
    return {"categories": train["categories"], "images": train["images"] + val["images"],
            "annotations": train["annotations"] + val["annotations"]}


def main(argv: Optional[List[str]] = None) -> int:
    """Concatenate the two files and write the result atomically."""
    args = parse_args(argv)
    train, val = read_split(args.train), read_split(args.val)
    for section in ("images", "annotations"):
        refuse_duplicate_ids(train, val, section, args.train, args.val)
    merged = concatenate(train, val)
    atomic_write_json(args.out, merged)
    print(f"wrote {args.out}: {len(merged['images'])} images, {len(merged['annotations'])} annotations")
    return 0


if __name__ == "__main__":
    run_tool(main)
