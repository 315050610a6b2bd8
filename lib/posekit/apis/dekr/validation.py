"""What tools/valid.py does: predict every test image, write the results file, evaluate, check expected metrics."""
import logging
import math
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence

from tqdm import tqdm
from yacs.config import CfgNode

from ...data import build_test_dataset
from ...data.annotations import load_json
from ...data.datasets import KeypointTestDataset
from ...data.metadata import keypoint_set_from_cfg
from ...engine.training_state import BEST_FILE
from ...evaluation import (collect_rescore_data, evaluate_keypoints, format_results_table, save_rescore_data,
                          write_results)
from ...inference.dekr.pipeline import pose_results_to_coco
from ...utils.errors import ConfigError
from ...utils.io import atomic_write_json
from .estimator import DekrEstimator

logger = logging.getLogger(__name__)


class ExpectedMetric(NamedTuple):
    """One TEST.EXPECTED_RESULTS entry: ``metric`` must lie within ``tolerance`` of ``value``."""

    metric: str
    value: float
    tolerance: float


def with_default_model_file(cfg: CfgNode, output: Path) -> CfgNode:
    """``cfg`` with an empty TEST.MODEL_FILE replaced by the run's ``model_best.pth.tar`` (official rule)."""
    if cfg.TEST.MODEL_FILE:
        return cfg
    cfg = cfg.clone()
    cfg.defrost()
    cfg.TEST.MODEL_FILE = str(output / BEST_FILE)
    cfg.freeze()
    return cfg


def results_path(cfg: CfgNode, output: Path) -> Path:
    """``<output>/results/keypoints_<DATASET.TEST><NAME>_results.json`` as the official code names it."""
    return output / "results" / f"keypoints_{cfg.DATASET.TEST}{cfg.NAME}_results.json"


def evaluation_kind(cfg: CfgNode) -> str:
    """'crowdpose' for CrowdPose test sets (selected by name, as officially), else 'coco'."""
    return "crowdpose" if "crowd" in (cfg.DATASET.DATASET_TEST or cfg.DATASET.DATASET) else "coco"


def parse_expected_results(entries: Sequence) -> List[ExpectedMetric]:
    """TEST.EXPECTED_RESULTS as ExpectedMetric tuples; a malformed entry raises ConfigError naming it."""
    expected = []
    for entry in entries:
        well_formed = (isinstance(entry, (list, tuple)) and len(entry) == 3 and isinstance(entry[0], str)
                       and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in entry[1:]))
        if not well_formed or entry[2] < 0:
            raise ConfigError(f"TEST.EXPECTED_RESULTS: entry {entry!r} must be [metric name, value, "
                              f"tolerance >= 0], e.g. [['AP', 0.68, 0.002]]")
        expected.append(ExpectedMetric(entry[0], float(entry[1]), float(entry[2])))
    return expected


def check_expected_results(results: Optional[Mapping[str, float]], expected: Sequence[ExpectedMetric]) -> List[str]:
    """One message per expected metric that is missing, not finite, or further than its tolerance.

    ``results`` None means nothing was evaluated, which fails every expectation.
    """
    if results is None:
        return [f"metric '{metric}' was expected but nothing was evaluated (the split has no annotations "
                f"or RESCORE.GET_DATA is set)" for metric, _, _ in expected]
    failures = []
    for metric, value, tolerance in expected:
        if metric not in results:
            failures.append(f"metric '{metric}' is missing from the results (available: {', '.join(results)})")
        elif not math.isfinite(results[metric]) or abs(results[metric] - value) > tolerance:
            failures.append(f"metric '{metric}' is {results[metric]:.6f}, expected {value} +- {tolerance}")
    return failures


def predict_dataset(estimator: DekrEstimator, dataset: KeypointTestDataset, count: int, show_progress: bool) -> List[dict]:
    """COCO-format results for the first ``count`` images of ``dataset``."""
    results = []
    for index in tqdm(range(count), desc="valid", unit="image", disable=not show_progress):
        image_id, image = dataset[index]
        poses, scores = estimator.estimate(image)
        results.extend(pose_results_to_coco(image_id, poses, scores))
    return results


def ground_truth_subset(gt_json: str, image_ids: Sequence[int], path: Path) -> str:
    """Write the ground truth restricted to ``image_ids`` to ``path`` (so a TEST.MAX_IMAGES run scores fairly)."""
    data = load_json(gt_json)
    wanted = set(image_ids)
    data["images"] = [image for image in data["images"] if image["id"] in wanted]
    data["annotations"] = [ann for ann in data.get("annotations", []) if ann["image_id"] in wanted]
    atomic_write_json(path, data)
    return str(path)


def scoring_ground_truth(dataset: KeypointTestDataset, count: int, results_file: Path) -> str:
    """The ground-truth json to score the first ``count`` images against: a subset file when not all were run."""
    if count == len(dataset):
        return dataset.gt_json
    image_ids = [dataset.images[index]["id"] for index in range(count)]
    return ground_truth_subset(dataset.gt_json, image_ids, results_file.with_name(f"gt_first_{count}_images.json"))


def evaluate_results(cfg: CfgNode, gt_json: str, results_file: Path) -> Optional[Dict[str, float]]:
    """Print and return the metrics; with RESCORE.GET_DATA write the rescore training data instead (None)."""
    if cfg.RESCORE.GET_DATA:
        data = collect_rescore_data(gt_json, str(results_file), evaluation_kind(cfg), keypoint_set_from_cfg(cfg))
        save_rescore_data(cfg.RESCORE.DATA_FILE, data)
        logger.info("=> wrote rescore training data to %s", cfg.RESCORE.DATA_FILE)
        return None
    metrics = evaluate_keypoints(gt_json, str(results_file), evaluation_kind(cfg), keypoint_set_from_cfg(cfg))
    logger.info("\n%s", format_results_table(cfg.MODEL.NAME, metrics))
    return metrics


def run_validation(cfg: CfgNode, output: Path) -> Optional[Dict[str, float]]:
    """Predict the test split (its first TEST.MAX_IMAGES images when set), write the results file, evaluate it.

    Returns the metrics, or None when nothing was evaluated (no annotations, or RESCORE.GET_DATA).
    """
    cfg = with_default_model_file(cfg, output)
    dataset = build_test_dataset(cfg)
    estimator = DekrEstimator(cfg)
    logger.info("=> loaded %s on %s", cfg.TEST.MODEL_FILE, estimator.device)
    count = min(cfg.TEST.MAX_IMAGES, len(dataset)) if cfg.TEST.MAX_IMAGES > 0 else len(dataset)
    results_file = results_path(cfg, output)
    write_results(str(results_file), predict_dataset(estimator, dataset, count, cfg.TEST.LOG_PROGRESS))
    logger.info("=> wrote %s", results_file)
    if not dataset.has_annotations:
        logger.info("=> %s has no annotations: submit %s to the evaluation server", cfg.DATASET.TEST, results_file)
        return None
    return evaluate_results(cfg, scoring_ground_truth(dataset, count, results_file), results_file)
