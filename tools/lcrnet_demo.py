"""LCR-Net on an image, every image of a folder, or a video: the release's two-panel figure (2D skeletons over
the image, 3D poses below) per image or frame, and the people (score, box, 2D pixels, 3D metres) in a json file
(the seed's demo.py / demo2.py: --csv adds every person to the pseudo-ground-truth CSV that tools/csv2coco.py
turns into training data).

Usage: python tools/lcrnet_demo.py --cfg experiments/lcrnet/InTheWild-ResNet50.yaml --input IMAGE|FOLDER|VIDEO \
    [--output output/lcrnet_demo] [--csv data/new_set/train.csv] [KEY VALUE ...]
    (e.g. MODEL.WEIGHTS model/lcrnet/InTheWild-ResNet50_model.pth)
A folder's files that are not images are skipped, each named in a warning.
"""
from typing import List, Optional

from posekit.apis.cli import config_parser, load_cfg_from_args, run_tool
from posekit.apis.lcrnet import lcrnet_demo


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo the command line describes and say where its outputs are."""
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="an image, a folder of images, or a video")
    parser.add_argument("--output", default="output/lcrnet_demo", help="output folder (default output/lcrnet_demo)")
    parser.add_argument("--inferenceFps", type=float, default=10, help="video frames per second to process")
    parser.add_argument("--csv", help="also add each person to this pseudo-ground-truth CSV (the seed's demo2.py "
                                      "rows, read by tools/csv2coco.py)")
    args = parser.parse_args(argv)
    print(lcrnet_demo(load_cfg_from_args(args), args.input, args.output, args.inferenceFps, args.csv).summary())
    return 0


if __name__ == "__main__":
    run_tool(main)
