"""Apply DensePose R-CNN to images: dump the results as npz files with a json index, or draw them as PNGs.

Usage: python tools/apply_net.py dump CONFIG MODEL INPUT [--output results.json] [--min_score 0.8]
       python tools/apply_net.py show CONFIG MODEL INPUT [dp_contour,bbox] [--output outputres.png]
INPUT is an image, a folder of images or a glob; --opts KEY VALUE ... overrides config keys (last argument).
Visualisations: bbox, dp_segm, dp_u, dp_v, dp_contour (comma-separated, drawn in that order).
"""
import argparse
import os
from typing import List, Optional

from posekit.apis.cli import run_tool
from posekit.apis.densepose.apply_net import DEFAULT_MIN_SCORE, apply_net_cfg, dump, show, visualizer_names
from posekit.apis.images import input_images
from posekit.utils.io import require_writable_dir
from posekit.apis.densepose.estimator import DensePoseEstimator

DEFAULT_VISUALIZATIONS = "dp_contour,bbox"


def add_common_arguments(parser: argparse.ArgumentParser, default_output: str) -> None:
    """CONFIG MODEL INPUT and the options both actions share."""
    parser.add_argument("config", help="experiment yaml file")
    parser.add_argument("model", help="model weights (.pth, or a converted detectron2 checkpoint)")
    parser.add_argument("input", help="an image, a folder of images or a glob")
    parser.add_argument("--output", default=default_output, help=f"output file (default {default_output})")
    parser.add_argument("--min_score", type=float, default=DEFAULT_MIN_SCORE,
                        help=f"detections scoring below this are dropped (default {DEFAULT_MIN_SCORE})")
    parser.add_argument("--nms_thresh", type=float, default=None, help="box NMS IoU threshold (default: config's)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input (also POSEKIT_DEBUG=1)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")


def build_parser() -> argparse.ArgumentParser:
    """The dump / show command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True)
    add_common_arguments(actions.add_parser("dump", help="write npz results and a json index"), "results.json")
    show_parser = actions.add_parser("show", help="draw the results over the greyed images")
    add_common_arguments(show_parser, "outputres.png")
    show_parser.add_argument("visualizations_positional", nargs="?", default=None, metavar="VISUALIZATIONS",
                             help="as --visualizations")
    show_parser.add_argument("--visualizations", default=None,
                             help=f"comma-separated, from bbox, dp_segm, dp_u, dp_v, dp_contour "
                                  f"(default {DEFAULT_VISUALIZATIONS})")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the action the command line names."""
    args = build_parser().parse_args(argv)
    images = input_images(args.input)  # before the model loads, so a wrong input fails at once
    require_writable_dir(os.path.dirname(os.path.abspath(args.output)), "--output")
    if args.action == "show":
        names = visualizer_names(args.visualizations or args.visualizations_positional or DEFAULT_VISUALIZATIONS)
    estimator = DensePoseEstimator(apply_net_cfg(args.config, args.model, args.min_score, args.nms_thresh, args.opts))
    if args.action == "dump":
        written = dump(estimator, images, args.output)
    else:
        written = show(estimator, images, args.output, names)
    print(f"{args.action}: {len(images)} image(s) -> {len(written)} file(s), e.g. {written[-1]}")
    return 0


if __name__ == "__main__":
    run_tool(main)
