"""Train any posekit model: ``python tools/train.py --cfg FILE [KEY VALUE ...]``.

Several processes (GPUs, nodes, or CPU workers with gloo) are started by torchrun, never by this script:
``torchrun --nproc_per_node N tools/train.py --cfg FILE``. Writes ``checkpoint.pth.tar`` (DEKR: with
``model_best.pth.tar``, every epoch) and ``final_state.pth.tar`` at the end into
``<OUTPUT_DIR>/<dataset>/<model>/<cfg name>/``; AUTO_RESUME continues from the checkpoint found there.
SIGTERM or Ctrl-C saves the checkpoint mid-epoch and exits with 128 + the signal number; the rerun resumes
there. ``config.yaml`` is written there once training has started; a different config for the same folder
is refused unless ``--new-run`` (which starts afresh in that folder, resuming nothing).
"""
from typing import List, Optional

from posekit.apis.cli import add_data_arguments, config_parser, load_cfg_from_args, run_tool
from posekit.apis.training import run_training


def main(argv: Optional[List[str]] = None) -> int:
    """Train the model of ``--cfg`` and return the exit code."""
    parser = config_parser("Train a posekit model (DEKR with the official recipe)")
    add_data_arguments(parser)
    parser.add_argument("--new-run", action="store_true",
                        help="start a new run in a run folder whose config.yaml differs (its checkpoint is not "
                             "resumed; its files are replaced as the new run writes them)")
    args = parser.parse_args(argv)
    run_training(load_cfg_from_args(args), args.cfg, new_run=args.new_run)
    return 0


if __name__ == "__main__":
    run_tool(main)
