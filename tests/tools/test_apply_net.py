"""tools/apply_net.py dump / show on the DensePose sample image with a tiny random DensePose R-CNN."""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "apis"))
from test_densepose_validation import OPTS, TINY, densepose_weights  # noqa: E402,F401 (fixture)

IMAGE = "data/samples/densepose/demo_im.jpg"


def apply_net(*args):
    # One thread: on a busy 2-core machine it is many times faster than two competing ones.
    env = dict(os.environ, PYTHONPATH=str(REPO / "lib"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "tools/apply_net.py", *map(str, args)], cwd=REPO, env=env,
                           capture_output=True, text=True)


def apply_net_in_process(monkeypatch, capsys, *args):
    """The tool run as ``python tools/apply_net.py ARGS`` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["apply_net.py", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "tools" / "apply_net.py"), run_name="__main__")
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_dump_writes_plain_npz_files_matching_the_json_index(tmp_path, densepose_weights):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        os.symlink(REPO / IMAGE, folder / name)
    (folder / "notes.txt").write_text("not an image")
    index_path = tmp_path / "out" / "results.json"
    run = apply_net("dump", TINY, densepose_weights, folder, "--output", index_path, "--min_score", "0.05",
                    "--opts", *OPTS)
    assert run.returncode == 0, run.stderr
    index = json.loads(index_path.read_text())
    assert [Path(entry["file_name"]).name for entry in index["images"]] == ["a.jpg", "b.jpg"]
    assert sorted(os.listdir(index_path.parent)) == ["results.0001.npz", "results.0002.npz", "results.json"]
    for entry in index["images"]:
        assert (entry["height"], entry["width"]) == (600, 1116)
        with np.load(index_path.parent / entry["npz"], allow_pickle=False) as arrays:
            count = len(entry["scores"])
            assert count > 0 and arrays["boxes"].shape == (count, 4) and arrays["scores"].shape == (count,)
            np.testing.assert_allclose(arrays["scores"], entry["scores"], rtol=1e-6)
            np.testing.assert_allclose(arrays["boxes"], entry["boxes_XYXY"], rtol=1e-6)
            assert min(entry["scores"]) >= 0.05 and entry["scores"] == sorted(entry["scores"], reverse=True)
            assert set(arrays.files) == {"boxes", "scores"} | {f"{kind}_{k}" for kind in ("labels", "uv")
                                                                for k in range(count)}
            for k, (x1, y1, x2, y2) in enumerate(arrays["boxes"]):
                size = (max(int(y2 - y1), 1), max(int(x2 - x1), 1))
                assert arrays[f"labels_{k}"].dtype == np.uint8 and arrays[f"labels_{k}"].shape == size
                assert arrays[f"uv_{k}"].dtype == np.float32 and arrays[f"uv_{k}"].shape == (2, *size)
    # The same image twice gives the same results.
    first, second = (np.load(index_path.parent / e["npz"]) for e in index["images"])
    assert all(np.array_equal(first[key], second[key]) for key in first.files)


def test_show_draws_over_the_greyed_image(tmp_path, densepose_weights, monkeypatch, capsys, one_thread):
    output = tmp_path / "shown.png"
    code, _, err = apply_net_in_process(monkeypatch, capsys, "show", TINY, densepose_weights, REPO / IMAGE,
                                        "--visualizations", "bbox,dp_segm", "--output", output, "--min_score", "0.05",
                                        "--opts", *OPTS)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["shown.0001.png"]
    drawn = cv2.imread(str(tmp_path / "shown.0001.png"))
    grey = cv2.cvtColor(cv2.imread(str(REPO / IMAGE)), cv2.COLOR_BGR2GRAY)
    assert drawn.shape == (600, 1116, 3)
    # Outside the drawings the picture is the grey image; the overlays add colour somewhere.
    coloured = (drawn[..., 0] != drawn[..., 1]) | (drawn[..., 1] != drawn[..., 2])
    assert coloured.any() and coloured.mean() < 0.9
    untouched = ~coloured
    assert np.abs(drawn[..., 0][untouched].astype(int) - grey[untouched]).max() <= 0


def test_missing_input_is_one_error_line_and_exit_2(tmp_path, monkeypatch, capsys):
    code, _, err = apply_net_in_process(monkeypatch, capsys, "dump", TINY, tmp_path / "unused.pth",
                                        tmp_path / "missing" / "*.jpg", "--output", tmp_path / "out" / "results.json")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "missing" in err
    assert not (tmp_path / "out").exists()


def test_unknown_visualization_and_missing_model_are_one_error_line(tmp_path, monkeypatch, capsys):
    code, _, err = apply_net_in_process(monkeypatch, capsys, "show", TINY, tmp_path / "unused.pth", REPO / IMAGE,
                                        "--visualizations", "bbox,kps")
    assert code == 2 and err.count("\n") == 1 and "kps" in err
    code, _, err = apply_net_in_process(monkeypatch, capsys, "show", TINY, tmp_path / "unused.pth", REPO / IMAGE)
    assert code == 2 and err.count("\n") == 1 and "unused.pth" in err
