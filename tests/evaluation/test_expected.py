"""TEST.EXPECTED_RESULTS: parsing the entries and checking metrics against them."""
import pytest

from posekit.config import load_cfg
from posekit.evaluation.expected import ExpectedMetric, check_expected_results, parse_expected_results
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
