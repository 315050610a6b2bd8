"""Draw every named loss of a training run, from its checkpoint or its training log (the seed's
losses_visualisation.py, which drew only the total).

Usage: python tools/plot_losses.py RUN_FILE [--output PNG]
RUN_FILE is a training checkpoint (checkpoint.pth.tar: every step's losses) or a training log (*_train.log: the
steps logged every PRINT_FREQ iterations). The PNG (default: <RUN_FILE without extensions>_losses.png next to
it) has a panel for the total of the loss terms, then one per loss, as the trainer's loss_curve.png.
"""
import argparse
import re
from pathlib import Path
from typing import List, Optional

from posekit.apis.cli import run_tool
from posekit.engine.loss_curve import draw_loss_curves
from posekit.engine.training_state import LossHistory, checkpoint_loss_history, read_checkpoint
from posekit.utils.errors import DataError

CHECKPOINT_SUFFIXES = (".tar", ".pth", ".pt")
# One MetricsLogger line: "... Iteration 21/200 ... loss_cls 2.205e-01 ... lr 5.00e-03".
ITERATION = re.compile(r"\bIteration (\d+)/\d+")
LOSS_TERM = re.compile(r"\b(loss\w*) ([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")


def log_loss_history(path: Path) -> LossHistory:
    """The named losses of every step a training log printed, in the log's order."""
    history: LossHistory = {}
    steps = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not ITERATION.search(line):
            continue
        for name, value in LOSS_TERM.findall(line):
            history.setdefault(name, [float("nan")] * steps).append(float(value))
        steps += 1
        for values in history.values():  # a loss missing from this line gets NaN (skipped when drawn)
            values.extend([float("nan")] * (steps - len(values)))
    return history


def run_loss_history(path: Path) -> LossHistory:
    """The losses of a checkpoint or a log; DataError naming the file when it holds none."""
    if not path.is_file():
        raise DataError(f"{path}: no such checkpoint or log file")
    if path.suffix in CHECKPOINT_SUFFIXES:
        history = checkpoint_loss_history(read_checkpoint(path))
    else:
        history = log_loss_history(path)
    if not history:
        raise DataError(f"{path}: no loss history found (expected a posekit training checkpoint with "
                        f"'loss_history' or a training log with 'Iteration N/M ... loss_name value' lines)")
    return history


def default_output(path: Path) -> Path:
    """<RUN_FILE without its extensions>_losses.png in the same folder."""
    return path.with_name(path.name.split(".")[0] + "_losses.png")


def main(argv: Optional[List[str]] = None) -> int:
    """Draw the losses of the run file named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_file", help="checkpoint.pth.tar or a *_train.log of a posekit run")
    parser.add_argument("--output", help="PNG to write (default: <run file>_losses.png next to it)")
    args = parser.parse_args(argv)
    path = Path(args.run_file)
    history = run_loss_history(path)
    output = Path(args.output) if args.output else default_output(path)
    draw_loss_curves(history, output)
    steps = max(len(values) for values in history.values())
    print(f"drew {', '.join(history)} over {steps} logged steps to {output}")
    return 0


if __name__ == "__main__":
    run_tool(main)
