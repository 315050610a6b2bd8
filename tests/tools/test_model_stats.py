"""tools/model_stats.py prints the official sizes and reports bad input as one line with exit code 2."""
import importlib.util
from pathlib import Path

import pytest

from posekit.apis.cli import run_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_stats():
    spec = importlib.util.spec_from_file_location("model_stats", REPO / "tools" / "model_stats.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prints_official_w32_numbers(model_stats, capsys):
    cfg = REPO / "experiments" / "coco" / "w32" / "w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml"
    assert model_stats.main(["--cfg", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "parameters: 29,561,182 (29.56 M)" in out
    assert "GFLOPs (conv + linear multiply-adds, one image): 45.39 (45,385,056,256)" in out
    assert "rescore net parameters: 85,249" in out


def test_overrides_apply(model_stats, capsys):
    cfg = REPO / "experiments" / "coco" / "w32" / "w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml"
    model_stats.main(["--cfg", str(cfg), "DATASET.INPUT_SIZE", "640", "RESCORE.VALID", "False"])
    out = capsys.readouterr().out
    assert "(70,914,150,400)" in out and "rescore" not in out


def test_bad_config_is_one_line_and_exit_2(model_stats, capsys):
    with pytest.raises(SystemExit) as caught:
        run_tool(model_stats.main, ["--cfg", "experiments/nowhere.yaml"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere.yaml" in err and err.count("\n") == 1
