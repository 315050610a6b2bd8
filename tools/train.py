"""Train any posekit model: ``python tools/train.py --cfg FILE [KEY VALUE ...]``.

Several processes (GPUs, nodes, or CPU workers with gloo) are started by torchrun, never by this script:
``torchrun --nproc_per_node N tools/train.py --cfg FILE``. Writes ``checkpoint.pth.tar`` (DEKR: with
``model_best.pth.tar``, every epoch) and ``final_state.pth.tar`` at the end into
``<OUTPUT_DIR>/<dataset>/<model>/<cfg name>/``; AUTO_RESUME continues from the checkpoint found there.
"""
from typing import List, Optional

from posekit.apis.cli import config_parser, load_cfg_from_args, run_tool
from posekit.apis.training import run_training


def main(argv: Optional[List[str]] = None) -> int:
    """Train the model of ``--cfg`` and return the exit code."""
    args = config_parser("Train a posekit model (DEKR with the official recipe)").parse_args(argv)
    run_training(load_cfg_from_args(args), args.cfg)
    return 0


if __name__ == "__main__":
    run_tool(main)
