"""Print a config's model size and cost: parameters and GFLOPs as the official DEKR README counts them.

GFLOPs = conv (incl. deformable) and linear multiply-adds for one DATASET.INPUT_SIZE square image.
Usage: python tools/model_stats.py --cfg experiments/coco/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml
"""
from typing import List, Optional

from posekit.models.dekr import build_rescore_net
from posekit.models.complexity import count_parameters, model_complexity
from posekit.apis.cli import config_parser, load_cfg_from_args, run_tool


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``--cfg FILE [KEY VALUE ...]`` and print the model's parameters and GFLOPs."""
    args = config_parser(__doc__.splitlines()[0]).parse_args(argv)
    cfg = load_cfg_from_args(args)
    params, macs = model_complexity(cfg)
    size = cfg.DATASET.INPUT_SIZE
    print(f"model: {cfg.MODEL.NAME}, {cfg.DATASET.NUM_JOINTS} keypoints, input {size}x{size} ({args.cfg})")
    print(f"parameters: {params:,} ({params / 1e6:.2f} M)")
    print(f"GFLOPs (conv + linear multiply-adds, one image): {macs / 1e9:.2f} ({macs:,})")
    if cfg.RESCORE.VALID:
        print(f"rescore net parameters: {count_parameters(build_rescore_net(cfg)):,}")
    return 0


if __name__ == "__main__":
    run_tool(main)
