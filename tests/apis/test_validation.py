"""valid.py's helpers: expected-results checks, file naming, default weights, ground-truth subsets."""
import json
from pathlib import Path

import pytest

from posekit.apis.dekr.validation import (ExpectedMetric, check_expected_results, evaluation_kind,
                                     ground_truth_subset, parse_expected_results, results_path,
                                     with_default_model_file)
from posekit.config import load_cfg
from posekit.utils.errors import ConfigError

METRICS = {"AP": 0.5, "AP50": 0.75, "AR": float("nan")}


def test_expected_results_within_tolerance_pass():
    expected = parse_expected_results([["AP", 0.49, 0.02], ("AP50", 0.75, 0)])
    assert expected == [ExpectedMetric("AP", 0.49, 0.02), ExpectedMetric("AP50", 0.75, 0.0)]
    assert check_expected_results(METRICS, expected) == []


def test_off_missing_and_nan_metrics_fail_each_with_its_name():
    failures = check_expected_results(METRICS, [ExpectedMetric("AP", 0.6, 0.05), ExpectedMetric("APx", 1, 0),
                                                ExpectedMetric("AR", 0.5, 1.0)])
    assert len(failures) == 3
    assert "'AP'" in failures[0] and "0.500000" in failures[0]
    assert "'APx'" in failures[1] and "missing" in failures[1]
    assert "'AR'" in failures[2] and "nan" in failures[2]


def test_nothing_evaluated_fails_every_expectation_but_no_expectation_is_fine():
    assert len(check_expected_results(None, [ExpectedMetric("AP", 0.5, 0.1)])) == 1
    assert check_expected_results(None, []) == []


@pytest.mark.parametrize("entry", [["AP", 0.5], ["AP", "high", 0.1], [1, 0.5, 0.1], ["AP", 0.5, -1],
                                   ["AP", True, 0.1], "AP"])
def test_malformed_expected_results_are_config_errors(entry):
    with pytest.raises(ConfigError, match="TEST.EXPECTED_RESULTS"):
        parse_expected_results([entry])


def test_expected_results_from_the_command_line(repo_root):
    cfg = load_cfg(str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"),
                   ["TEST.EXPECTED_RESULTS", "[['AP', 0.25, 0.01]]"])
    assert parse_expected_results(cfg.TEST.EXPECTED_RESULTS) == [ExpectedMetric("AP", 0.25, 0.01)]


def test_results_file_name_and_default_weights(repo_root):
    cfg = load_cfg(str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"), ["DATASET.TEST", "test-dev2017"])
    output = Path("out/run")
    assert results_path(cfg, output) == output / "results" / "keypoints_test-dev2017regression_results.json"
    assert with_default_model_file(cfg, output).TEST.MODEL_FILE == "out/run/model_best.pth.tar"
    given = load_cfg(None, ["TEST.MODEL_FILE", "w.pth"])
    assert with_default_model_file(given, output).TEST.MODEL_FILE == "w.pth"


def test_evaluation_kind_follows_the_test_set_name(repo_root):
    assert evaluation_kind(load_cfg(str(repo_root / "experiments/samples/dekr_tiny_crowdpose.yaml"))) == "crowdpose"
    assert evaluation_kind(load_cfg(str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"))) == "coco"


def test_ground_truth_subset_keeps_only_the_chosen_images(samples_dir, tmp_path):
    gt_json = samples_dir / "coco/annotations/person_keypoints_val2017.json"
    full = json.loads(gt_json.read_text())
    chosen = [full["images"][1]["id"]]
    subset = json.loads(Path(ground_truth_subset(str(gt_json), chosen, tmp_path / "gt.json")).read_text())
    assert [image["id"] for image in subset["images"]] == chosen
    expected_annotations = [ann for ann in full["annotations"] if ann["image_id"] == chosen[0]]
    assert subset["annotations"] == expected_annotations and expected_annotations
    assert subset["categories"] == full["categories"]
