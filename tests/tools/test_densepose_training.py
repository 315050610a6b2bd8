"""tools/train.py on a DensePose config: the sample set built from the real annotated person, losses falling, and
the trained model's GPS on that set above 0.5 for every annotated person (a generated stand-in atlas)."""
import pickle
import sys
from pathlib import Path

import numpy as np
import scipy.io
import torch

from posekit.apis.densepose.validation import run_densepose_validation
from posekit.config import load_cfg
from posekit.engine.training_state import CHECKPOINT_FILE, FINAL_FILE

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import train  # noqa: E402

TINY = str(REPO / "experiments" / "samples" / "densepose_tiny.yaml")
DENSEPOSE_LOSSES = ["loss_densepose_U", "loss_densepose_V", "loss_densepose_I", "loss_densepose_S"]
ITERATIONS = 800
GRID = 20  # atlas entries per chart: a GRID x GRID lattice of (U, V)


def write_stand_in_atlas(folder: Path) -> None:
    """SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat and Pdist_matrix.pkl of a fine stand-in atlas: one vertex per
    entry, geodesic distance the (U, V) distance within a chart and 1.0 across charts."""
    lattice = (np.arange(GRID) + 0.5) / GRID
    u, v = (values.ravel() for values in np.meshgrid(lattice, lattice, indexing="ij"))
    charts = np.repeat(np.arange(1, 25), GRID * GRID)
    u, v = np.tile(u, 24), np.tile(v, 24)
    scipy.io.savemat(folder / "SMPL_subdiv.mat", {"U_subdiv": u[None], "V_subdiv": v[None],
                                                  "Part_ID_subdiv": charts[None].astype(float)})
    scipy.io.savemat(folder / "SMPL_SUBDIV_TRANSFORM.mat", {"index": np.arange(1, len(charts) + 1)[:, None] * 1.0})
    rows = []
    for hi in range(len(charts)):  # pairs (hi, lo), lo < hi, row after row: Pdist_matrix's layout
        lo = np.arange(hi)
        rows.append(np.where(charts[lo] == charts[hi], np.hypot(u[lo] - u[hi], v[lo] - v[hi]), 1.0))
    with open(folder / "Pdist_matrix.pkl", "wb") as file:
        pickle.dump({"Pdist_matrix": np.concatenate(rows).astype(np.float32)[:, None]}, file, protocol=2)


def test_training_on_the_samples_lowers_every_loss_and_reaches_gps_above_half(tmp_path):
    """800 iterations on the 3 sample images (about 3 minutes on 2 CPU cores), then validation on them; measured:
    GPS AP 70, AP50 100 (every annotated person at GPS >= 0.5)."""
    opts = ["OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log"), "SEED", "0",
            "SOLVER.BASE_LR", "0.01", "SOLVER.MAX_ITER", str(ITERATIONS), "SOLVER.STEPS", f"({ITERATIONS * 4 // 5},)",
            "SOLVER.CHECKPOINT_PERIOD", str(ITERATIONS), "PRINT_FREQ", "200"]
    assert train.main(["--cfg", TINY, *opts]) == 0
    output = next((tmp_path / "output").glob("*/*/densepose_tiny"))
    assert (output / FINAL_FILE).is_file()
    history = torch.load(output / CHECKPOINT_FILE, weights_only=True)["loss_history"]
    for name in DENSEPOSE_LOSSES:
        values = history[name]
        assert len(values) == ITERATIONS and torch.isfinite(values).all(), name
        assert values[-20:].mean() < 0.5 * values[:20].mean(), (name, values[:20].mean(), values[-20:].mean())
    atlas = tmp_path / "densepose_eval"
    atlas.mkdir()
    write_stand_in_atlas(atlas)
    cfg = load_cfg(TINY, opts + ["MODEL.WEIGHTS", str(output / FINAL_FILE),
                                 "DENSEPOSE_EVALUATION.DATA_DIR", str(atlas)])
    metrics = run_densepose_validation(cfg, tmp_path / "valid")
    assert metrics["densepose_gps/AP50"] == 100.0, metrics
    assert metrics["densepose_gps/AP"] > 50.0, metrics
