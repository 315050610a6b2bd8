"""Estimate poses in a video and write <video>_pose.avi, pose/pose_%08d.jpg, pose-data.csv and pose-data.json.

Usage: python tools/inference_demo.py --cfg experiments/coco/inference_demo_coco.yaml --videoFile V.mp4 \
    --outputDir output --visthre 0.3 TEST.MODEL_FILE model/pose_coco/pose_dekr_hrnetw32_coco.pth
"""
from typing import List, Optional

from posekit.apis import family_tools
from posekit.apis.cli import config_parser, load_cfg_from_args, run_tool
from posekit.apis.family import FRAMES_PER_BATCH
from posekit.utils.errors import ConfigError


def main(argv: Optional[List[str]] = None) -> int:
    """Run the video demo described by the command line."""
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--videoFile", required=True, help="input video")
    parser.add_argument("--outputDir", default="output", help="where the outputs go (default: output)")
    parser.add_argument("--inferenceFps", type=float, default=10,
                        help="frames per second to process (default 10; at most the video's rate is used)")
    parser.add_argument("--visthre", type=float, default=0.0,
                        help="people scoring at most this are dropped, joints scoring below it are hidden")
    parser.add_argument("--batchSize", type=int, default=FRAMES_PER_BATCH,
                        help=f"frames run through the network together (default {FRAMES_PER_BATCH}; "
                             f"1 for the official frame-by-frame behaviour)")
    args = parser.parse_args(argv)
    cfg = load_cfg_from_args(args)
    tools = family_tools(cfg)
    if tools.video_demo is None:
        raise ConfigError(f"{args.cfg}: the '{tools.name}' family has no video demo yet")
    print(tools.video_demo(cfg, args))
    return 0


if __name__ == "__main__":
    run_tool(main)
