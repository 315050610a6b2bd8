"""Estimate poses in a video or in images; every output is named after its input and replaced atomically.

Video: <video>_pose.avi, <video>_pose/pose_%08d.jpg, <video>_pose.csv and <video>_pose.json.
Images (--image FILE, --imageDir FOLDER or a glob, e.g. 'shots/**/*.jpg'): <name>_pose.jpg, .csv and .json, <name>
being the image's path relative to the inputs' common folder; unreadable images are skipped with a warning and
counted (--strict: an error instead).
Usage: python tools/inference_demo.py --cfg experiments/coco/inference_demo_coco.yaml --videoFile V.mp4 \
    --outputDir output --visthre 0.3 TEST.MODEL_FILE model/pose_coco/pose_dekr_hrnetw32_coco.pth
"""
from typing import List, Optional

from posekit.apis import family_tools
from posekit.apis.cli import config_parser, load_cfg_from_args, run_tool
from posekit.apis.family import FRAMES_PER_BATCH
from posekit.apis.images import input_images
from posekit.utils.errors import ConfigError


def main(argv: Optional[List[str]] = None) -> int:
    """Run the video or image demo described by the command line."""
    parser = config_parser(__doc__.splitlines()[0])
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--videoFile", help="input video")
    inputs.add_argument("--image", help="one input image")
    inputs.add_argument("--imageDir", help="a folder of images, or a glob (quote it)")
    parser.add_argument("--outputDir", default="output", help="where the outputs go (default: output)")
    parser.add_argument("--inferenceFps", type=float, default=10,
                        help="frames per second to process (default 10; at most the video's rate is used)")
    parser.add_argument("--visthre", type=float, default=0.0,
                        help="people scoring at most this are dropped, joints scoring below it are hidden")
    parser.add_argument("--batchSize", type=int, default=FRAMES_PER_BATCH,
                        help=f"frames or images run through the network together (default {FRAMES_PER_BATCH}; "
                             f"1 for the official frame-by-frame behaviour)")
    parser.add_argument("--strict", action="store_true", help="an unreadable image is an error, not skipped")
    args = parser.parse_args(argv)
    cfg = load_cfg_from_args(args)
    tools = family_tools(cfg)
    if args.videoFile is None:
        if tools.image_demo is None:
            raise ConfigError(f"{args.cfg}: the '{tools.name}' family has no image demo yet")
        args.images = input_images(args.image or args.imageDir)  # before the model loads
        print(tools.image_demo(cfg, args))
        return 0
    if tools.video_demo is None:
        raise ConfigError(f"{args.cfg}: the '{tools.name}' family has no video demo yet")
    print(tools.video_demo(cfg, args))
    return 0


if __name__ == "__main__":
    run_tool(main)
