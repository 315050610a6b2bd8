"""Test a model on its test split: write the results file, evaluate it and print the metrics.

Usage: python tools/valid.py --cfg experiments/coco/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml \
    TEST.MODEL_FILE model/pose_coco/pose_dekr_hrnetw32_coco.pth [TEST.SCALE_FACTOR 0.5,1,2] [TEST.MATCH_HMP True]
DEKR: TEST.MODEL_FILE empty uses the run's model_best.pth.tar. TEST.EXPECTED_RESULTS
[[metric, value, tolerance], ...] makes the exit status 1 when a metric is missing, not finite or off.
Every image the json lists is checked to exist first (--skip-missing leaves missing ones out). The run
folder's config.yaml (the training config) is left alone; the merged config goes to the log file.
"""
import sys
from typing import List, Optional

from posekit.apis import family_tools
from posekit.apis.cli import add_data_arguments, config_parser, load_cfg_from_args, run_tool
from posekit.engine.run_dirs import setup_run
from posekit.evaluation.expected import check_expected_results, parse_expected_results


def main(argv: Optional[List[str]] = None) -> int:
    """Run the validation described by ``--cfg FILE [KEY VALUE ...]``; 1 when an expected metric fails."""
    parser = config_parser(__doc__.splitlines()[0])
    add_data_arguments(parser)
    args = parser.parse_args(argv)
    cfg = load_cfg_from_args(args)
    tools = family_tools(cfg)
    expected = parse_expected_results(tools.expected_results(cfg))
    run = setup_run(cfg, args.cfg, "valid")
    metrics = tools.validate(cfg, run.output)
    failures = check_expected_results(metrics, expected)
    for failure in failures:
        print(f"error: TEST.EXPECTED_RESULTS: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    run_tool(main)
