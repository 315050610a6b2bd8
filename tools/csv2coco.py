"""Turn the pseudo-ground-truth CSV of LCR-Net's demo (one row per detected person) into train/val LCR-Net json
files, as the seed's tools/csv2coco.py does (lcrnet.md 5.4).

    python tools/csv2coco.py [--csv data/new_set/train.csv] [--images data/new_set/images]
                             [--out data/lcrnet_pseudo] [--joints 13]

Rows (no header): image path, box x1 y1 x2 y2, 5J pose numbers, 'person' (71 columns for 13 joints); a row of
another width is an error naming the file and row. Rows are grouped by image basename; the images are split
80/20 as the seed splits them (NumPy RandomState(41) permutation, first ceil(20 %) to val). Each split is written
to --out/annotations/instances_{train,val}2017.json (image and annotation ids from 0 in each file, bbox
[x1, y1, x2 - x1, y2 - y1], area (w + 1)(h + 1), an 8-point polygon, the pose) and its images copied to
--out/images/{train,val}2017/. The catalog names lcrnet_pseudo_{train,val} read data/lcrnet_pseudo.
"""
import argparse
import os
import shutil
from typing import List, Optional

from posekit.apis.cli import run_tool
from posekit.data.lcrnet_annotations import (csv_people_to_json, image_size_of, read_pseudo_gt_csv, split_images,
                                             write_lcrnet_json)
from posekit.utils.errors import DataError
from posekit.utils.io import atomic_write


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", default="data/new_set/train.csv", help="the demo's CSV of detected people")
    parser.add_argument("--images", default="data/new_set/images", help="folder holding the CSV's images by basename")
    parser.add_argument("--out", default="data/lcrnet_pseudo", help="data-set root to write")
    parser.add_argument("--joints", type=int, default=13, help="joints per pose (the CSV has 5J pose columns)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def convert(csv_path: str, image_folder: str, out: str, joints: int) -> dict:
    """Write both splits under ``out``; {split: number of images}."""
    people = read_pseudo_gt_csv(csv_path, joints)
    sizes = {}
    for name in people:
        size = image_size_of(os.path.join(image_folder, name))
        if size is None:
            raise DataError(f"{csv_path}: image '{name}' is not a readable image in {image_folder}")
        sizes[name] = size
    counts = {}
    for split, names in zip(("train", "val"), split_images(list(people))):
        images, annotations = csv_people_to_json(people, names, sizes)
        write_lcrnet_json(os.path.join(out, "annotations", f"instances_{split}2017.json"), images, annotations,
                          info=f"pseudo ground truth from {os.path.basename(csv_path)} (tools/csv2coco.py)")
        for name in names:
            source = os.path.join(image_folder, name)
            atomic_write(os.path.join(out, "images", f"{split}2017", name),
                         lambda tmp, source=source: shutil.copyfile(source, tmp))
        counts[split] = len(names)
    return counts


def main(argv: Optional[List[str]] = None) -> int:
    """Convert and say what was written."""
    args = parse_args(argv)
    counts = convert(args.csv, args.images, args.out, args.joints)
    print(f"wrote {args.out}: {counts['train']} train and {counts['val']} val images")
    return 0


if __name__ == "__main__":
    run_tool(main)
