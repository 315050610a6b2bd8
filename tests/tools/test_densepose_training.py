"""tools/train.py on a DensePose config: the sample set built from the real annotated person, losses falling."""
import sys
from pathlib import Path

import torch

from posekit.engine.training_state import CHECKPOINT_FILE, FINAL_FILE

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import train  # noqa: E402

TINY = str(REPO / "experiments" / "samples" / "densepose_tiny.yaml")
DENSEPOSE_LOSSES = ["loss_densepose_U", "loss_densepose_V", "loss_densepose_I", "loss_densepose_S"]


def test_short_training_on_the_samples_lowers_every_densepose_loss(tmp_path):
    """100 iterations on the 3 sample images (about half a minute on 2 CPU cores)."""
    opts = ["OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log"), "SOLVER.MAX_ITER", "100",
            "SOLVER.STEPS", "(80,)", "SOLVER.CHECKPOINT_PERIOD", "100", "PRINT_FREQ", "50"]
    assert train.main(["--cfg", TINY, *opts]) == 0
    output = next((tmp_path / "output").glob("*/*/densepose_tiny"))
    assert (output / FINAL_FILE).is_file()
    history = torch.load(output / CHECKPOINT_FILE, weights_only=True)["loss_history"]
    for name in DENSEPOSE_LOSSES:
        values = history[name]
        assert len(values) == 100 and torch.isfinite(values).all(), name
        assert values[-20:].mean() < 0.85 * values[:20].mean(), (name, values[:20].mean(), values[-20:].mean())
