"""tools/valid.py end to end on data/samples with the tiny config and random weights, as the user runs it."""
import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_CFG = "experiments/samples/dekr_tiny_coco.yaml"
GT_JSON = os.path.join(REPO, "data/samples/coco/annotations/person_keypoints_val2017.json")
# Small inputs keep each run to seconds on a 2-core CPU.
FAST = ["DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "32"]
RUN_DIR = "coco_kpt/hrnet_dekr/dekr_tiny_coco"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_dekr_weights):
    root = tmp_path_factory.mktemp("valid")
    shutil.copy(tiny_dekr_weights, root / "tiny.pth")
    return root


def run_valid(workdir, *opts):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "lib"))
    command = [sys.executable, "tools/valid.py", "--cfg", TINY_CFG, "TEST.MODEL_FILE", str(workdir / "tiny.pth"),
               "OUTPUT_DIR", str(workdir / "output"), "LOG_DIR", str(workdir / "log"), *FAST, *map(str, opts)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)


def read_results(workdir, split="val2017"):
    path = workdir / "output" / RUN_DIR / "results" / f"keypoints_{split}regression_results.json"
    records = json.loads(path.read_text())
    for record in records:
        assert record["category_id"] == 1
        assert len(record["keypoints"]) == 51 and np.isfinite(record["keypoints"]).all()
        assert np.isfinite(record["score"]) and len(record["bbox"]) == 4
    return records


def pycocotools_stats(results, image_ids):
    """AP/AR straight from pycocotools on the ground truth of ``image_ids``."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(GT_JSON)
        evaluator = COCOeval(gt, gt.loadRes(results), "keypoints")
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def table_row(output):
    header, _, row = [line for line in output.splitlines() if line.startswith("|")][-3:]
    names = [cell.strip() for cell in header.strip("|").split("|")]
    return dict(zip(names, [cell.strip() for cell in row.strip("|").split("|")]))


def test_flip_test_evaluates_prints_the_table_and_passes_expected_results(workdir):
    run = run_valid(workdir, "TEST.FLIP_TEST", True, "TEST.MAX_IMAGES", 2,
                    "TEST.EXPECTED_RESULTS", "[['AP', 0.5, 0.5], ['AR', 0.5, 0.5]]")
    assert run.returncode == 0, run.stderr
    assert "100%" in run.stderr  # the progress bar ran to the end
    first_two = [image["id"] for image in json.loads(open(GT_JSON).read())["images"][:2]]
    results = read_results(workdir)
    assert results and {r["image_id"] for r in results} <= set(first_two)
    stats = pycocotools_stats(results, first_two)
    row = table_row(run.stdout + run.stderr)
    assert row["Arch"] == "hrnet_dekr"
    assert float(row["AP"]) == pytest.approx(stats[0], abs=5e-4)
    assert float(row["AR"]) == pytest.approx(stats[5], abs=5e-4)


def test_match_hmp_with_wrong_and_missing_expected_results_fails_naming_them(workdir):
    run = run_valid(workdir, "TEST.MATCH_HMP", True, "TEST.FLIP_TEST", False, "TEST.MAX_IMAGES", 1,
                    "TEST.EXPECTED_RESULTS", "[['AP', 2.0, 0.01], ['AP_typo', 0.5, 0.1]]")
    assert run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "'AP'" in errors[0] and "expected 2.0" in errors[0]
    assert "'AP_typo'" in errors[1] and "missing" in errors[1]
    assert read_results(workdir)


def test_multi_scale_on_a_split_without_annotations_only_writes_results(workdir, tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "images" / "test2017").mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "data/samples/coco/images/val2017/000000000785.jpg"), root / "images" / "test2017")
    info = {"images": [{"id": 785, "file_name": "000000000785.jpg", "height": 425, "width": 640}],
            "categories": [{"id": 1, "name": "person"}]}
    (root / "annotations" / "image_info_test-dev2017.json").write_text(json.dumps(info))
    run = run_valid(workdir, "DATASET.ROOT", root, "DATASET.TEST", "test-dev2017", "TEST.SCALE_FACTOR", "0.5,1,2",
                    "TEST.NMS_THRE", 0.15, "TEST.FLIP_TEST", False)
    assert run.returncode == 0, run.stderr
    assert "no annotations" in run.stderr and "| AP" not in run.stderr + run.stdout
    assert {r["image_id"] for r in read_results(workdir, "test-dev2017")} == {785}


def test_get_data_writes_rescore_training_data(workdir):
    data_file = workdir / "rescore_data.npz"
    run = run_valid(workdir, "TEST.FLIP_TEST", False, "TEST.MAX_IMAGES", 1, "RESCORE.GET_DATA", True,
                    "RESCORE.DATA_FILE", data_file)
    assert run.returncode == 0, run.stderr
    with np.load(data_file) as data:
        assert data["keypoints"].shape[1:] == (17, 3)
        assert len(data["oks"]) == len(data["keypoints"]) > 0


def test_malformed_expected_results_fail_before_any_work(workdir):
    run = run_valid(workdir, "TEST.EXPECTED_RESULTS", "[['AP', 0.5]]")
    assert run.returncode == 2
    assert re.fullmatch(r"error: TEST.EXPECTED_RESULTS: .*\n", run.stderr)
