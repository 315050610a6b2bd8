"""Build LCR-Net anchor poses from the people of an LCR-Net json (lcrnet.md 2.2) and save them as npz + json.

    python tools/build_lcrnet_anchors.py --json data/h36m/annotations/lcrnet_train.json --full-body 10 \
        --out data/lcrnet/h36m_K10x2_anchors.npz [--ppi-from data/lcrnet/InTheWild-ResNet50_anchors.npz]
        [--no-upper-body] [--max-poses 200000] [--seed 0] [--joints 13]

K-means (k-means++, fixed seed) on the poses normalised in their boxes gives --full-body anchors, followed by
their upper-body twins unless --no-upper-body; J comes from the json's poses. The PPI parameters are copied from
--ppi-from (an anchor file) or are the release's function defaults. --max-poses keeps a random subset (same seed).
"""
import argparse
import os
from typing import List, Optional

import numpy as np

from posekit.apis.cli import run_tool
from posekit.data.lcrnet_annotations import load_lcrnet_json
from posekit.models.lcrnet.anchors import DEFAULT_PPI_PARAMS, build_anchors, load_anchors, save_anchors
from posekit.utils.errors import DataError


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", required=True, help="LCR-Net json of training people (lcrnet.md 5.3)")
    parser.add_argument("--full-body", type=int, required=True, help="K_full, the number of full-body anchors")
    parser.add_argument("--out", required=True, help="anchor npz to write (its json sidecar goes next to it)")
    parser.add_argument("--ppi-from", default=None, help="anchor file whose ppi_params to copy")
    parser.add_argument("--no-upper-body", action="store_true", help="no upper-body twins (K = K_full)")
    parser.add_argument("--max-poses", type=int, default=0, help="cluster a random subset of this many people")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset and of K-means")
    parser.add_argument("--joints", type=int, default=13, help="joints per pose in the json")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def training_people(json_file: str, joints: int) -> tuple:
    """(N, 5J) poses and (N, 4) x1, y1, x2, y2 boxes of the json's non-crowd people."""
    people = [ann for record in load_lcrnet_json(json_file, os.path.dirname(json_file), joints)
              for ann in record["annotations"] if not ann.get("iscrowd", 0)]
    if not people:
        raise DataError(f"{json_file}: no people to cluster")
    boxes = np.array([ann["bbox"] for ann in people], np.float64)
    boxes[:, 2:] += boxes[:, :2]
    return np.array([ann["pose"] for ann in people], np.float64), boxes


def main(argv: Optional[List[str]] = None) -> int:
    """Build, save and say what was written."""
    args = parse_args(argv)
    poses, boxes = training_people(args.json, args.joints)
    if 0 < args.max_poses < len(poses):
        keep = np.random.default_rng(args.seed).choice(len(poses), args.max_poses, replace=False)
        poses, boxes = poses[keep], boxes[keep]
    ppi_params = load_anchors(args.ppi_from).ppi_params if args.ppi_from else dict(DEFAULT_PPI_PARAMS)
    anchors = build_anchors(poses, boxes, args.full_body, upper_body=not args.no_upper_body, seed=args.seed,
                            ppi_params=ppi_params)
    save_anchors(anchors, args.out, provenance=f"tools/build_lcrnet_anchors.py on {args.json} "
                                               f"({len(poses)} people, seed {args.seed})")
    print(f"wrote {args.out}: K = {anchors.num_classes} ({anchors.num_full_body} full-body), J = {anchors.num_joints}")
    return 0


if __name__ == "__main__":
    run_tool(main)
