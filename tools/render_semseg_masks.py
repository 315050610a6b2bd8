"""Render the person masks AMANet's semantic branch trains on (SEMSEG_ON, densepose.md 4.6).

    python tools/render_semseg_masks.py --dataset densepose_coco_2014_train [--dataset ...] --out DIR
    python tools/render_semseg_masks.py --cfg experiments/densepose_coco/densepose_SemSegAMA_R_50_FPN_s1x.yaml

The release reads pre-rendered PNGs (datasets/coco2014/dp_seg_images) that were never distributed; this writes
one <image file stem>.png (0 / 255) per image of the named catalog data sets: the union of its person
annotations' segmentations, or of their DensePose part masks where an annotation has no segmentation. With
--cfg the data sets are DATASETS.TRAIN and the folder DENSEPOSE_DATA.SEMSEG_MASK_DIR, where training reads them.
"""
import argparse
from typing import List, Optional

from posekit.apis.cli import run_tool
from posekit.config import load_cfg
from posekit.data.catalog import get_dataset_records
from posekit.data.semantic_masks import write_person_masks
from posekit.utils.errors import ConfigError


def main(argv: Optional[List[str]] = None) -> int:
    """Write the masks of the chosen data sets; print where."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", default=[], help="catalog data set name (repeatable)")
    parser.add_argument("--out", help="folder to write the PNGs to")
    parser.add_argument("--cfg", help="an AMANet config: its DATASETS.TRAIN and DENSEPOSE_DATA.SEMSEG_MASK_DIR")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides (KEY VALUE ...) with --cfg")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input (also POSEKIT_DEBUG=1)")
    args = parser.parse_args(argv)
    datasets, out = list(args.dataset), args.out
    if args.cfg:
        cfg = load_cfg(args.cfg, args.opts)
        datasets = datasets or list(cfg.DATASETS.TRAIN)
        out = out or cfg.DENSEPOSE_DATA.SEMSEG_MASK_DIR
    if not datasets or not out:
        raise ConfigError("name the data sets (--dataset) and the folder (--out), or give an AMANet config (--cfg)")
    count = sum(len(write_person_masks(get_dataset_records(name), out)) for name in datasets)
    print(f"wrote {count} person masks to {out}")
    return 0


if __name__ == "__main__":
    run_tool(main)
