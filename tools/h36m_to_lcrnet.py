"""Convert mmpose-style Human3.6M files to an LCR-Net json (lcrnet.md 5.3, 5.5).

    python tools/h36m_to_lcrnet.py [--npz data/samples/h36m/test_h36m_body3d.npz] [--image-root data/samples/h36m]
                                   [--out data/samples/h36m/h36m_lcrnet_samples.json] [--joints 13] [--margin 0.1]

Each npz row (``imgname``, ``part`` 2D pixels, ``S`` camera-frame metres) becomes one person: LCR joints, 2D as
annotated, 3D as (-x, -y, z) centred on the torso (mean of hips and shoulders), box = the 2D joints' bounds
enlarged by --margin of their extent (+ --margin-px) per side. Images get ids 1.. in order of first appearance,
their sizes from the image files under --image-root; annotation ids run 1.. in row order. Written atomically.
"""
import argparse
import os
from typing import List, Optional

import torch

from posekit.apis.cli import run_tool
from posekit.data.lcrnet_annotations import (BOX_MARGIN, image_size_of, lcrnet_annotation, read_h36m_people,
                                             write_lcrnet_json)
from posekit.models.lcrnet.codec import join_poses
from posekit.utils.errors import DataError

DEFAULT_NPZ = "data/samples/h36m/test_h36m_body3d.npz"
DEFAULT_OUT = "data/samples/h36m/h36m_lcrnet_samples.json"


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--npz", default=DEFAULT_NPZ, help="mmpose H36M npz with imgname, part and S")
    parser.add_argument("--image-root", default=None, help="folder the npz's imgname paths are relative to "
                                                           "(default: the npz's folder)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="LCR-Net json to write")
    parser.add_argument("--joints", type=int, default=13, choices=(13, 17), help="LCR joint set")
    parser.add_argument("--margin", type=float, default=BOX_MARGIN, help="box margin, fraction of the joints' extent")
    parser.add_argument("--margin-px", type=float, default=0.0, help="box margin added in pixels")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def convert(npz: str, image_root: str, out: str, joints: int, margin: float, margin_px: float) -> dict:
    """Write the json; its images and annotations."""
    images, annotations, image_ids = [], [], {}
    for person in read_h36m_people(npz, joints, margin, margin_px):
        if person.image not in image_ids:
            size = image_size_of(os.path.join(image_root, person.image))
            if size is None:
                raise DataError(f"{npz}: image '{person.image}' is not a readable image under {image_root}")
            image_ids[person.image] = len(images) + 1
            images.append({"id": image_ids[person.image], "file_name": person.image, "height": size[0],
                           "width": size[1]})
        pose = join_poses(torch.from_numpy(person.joints2d), torch.from_numpy(person.joints3d))
        annotations.append(lcrnet_annotation(len(annotations) + 1, image_ids[person.image], person.box.tolist(),
                                             pose.tolist()))
    write_lcrnet_json(out, images, annotations, info=f"Human3.6M people from {os.path.basename(npz)}, "
                                                     f"LCR-{joints} joints (tools/h36m_to_lcrnet.py)")
    return {"images": images, "annotations": annotations}


def main(argv: Optional[List[str]] = None) -> int:
    """Convert and say what was written."""
    args = parse_args(argv)
    image_root = args.image_root or os.path.dirname(args.npz)
    data = convert(args.npz, image_root, args.out, args.joints, args.margin, args.margin_px)
    print(f"wrote {args.out}: {len(data['images'])} images, {len(data['annotations'])} people")
    return 0


if __name__ == "__main__":
    run_tool(main)
