"""Export a DEKR network to ONNX, the deformable convolutions as the standard DeformConv operator (opset 19).

The graph takes ``image`` (N, 3, H, W; ImageNet-normalised RGB, H and W multiples of 32, all three
dynamic) and returns ``heatmap`` (N, K+1, H/4, W/4) and ``offset`` (N, 2K, H/4, W/4).
Usage: python tools/export_onnx.py --cfg experiments/coco/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml
       --out dekr_w32.onnx TEST.MODEL_FILE model/pose_coco/pose_dekr_hrnetw32_coco.pth
"""
import argparse
import os
import sys
from typing import List, Optional

from posekit.models.checkpoint import load_weights
from posekit.export import export_dekr
from posekit.models import build_model
from posekit.apis.cli import config_parser, load_cfg_from_args, run_tool
from posekit.utils.io import require_writable_dir


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """``--cfg FILE --out FILE [KEY VALUE ...]``."""
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="ONNX file to write")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Build the config's network, load TEST.MODEL_FILE when given, export it and print a summary."""
    args = parse_args(argv)
    cfg = load_cfg_from_args(args)
    require_writable_dir(os.path.dirname(os.path.abspath(args.out)), "--out")
    network = build_model(cfg)
    if cfg.TEST.MODEL_FILE:
        load_weights(network, cfg.TEST.MODEL_FILE)
    else:
        print("warning: TEST.MODEL_FILE is empty: exporting randomly initialised weights", file=sys.stderr)
    model = export_dekr(network, args.out, cfg.DATASET.INPUT_SIZE)
    deform_convs = sum(node.op_type == "DeformConv" for node in model.graph.node)
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    print(f"wrote {args.out}: opset {opset}, IR {model.ir_version}, "
          f"{len(model.graph.node)} nodes ({deform_convs} DeformConv)")
    return 0


if __name__ == "__main__":
    run_tool(main)
