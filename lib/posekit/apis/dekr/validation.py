"""What tools/valid.py does for DEKR: predict every test image, write the results file, evaluate it."""
import logging
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from yacs.config import CfgNode

from ...data import build_test_dataset
from ...data.build import test_dataset_name
from ...data.datasets import KeypointTestDataset
from ...data.metadata import KeypointSet, keypoint_set_from_cfg
from ...engine.training_state import BEST_FILE
from ...evaluation import collect_rescore_data, save_rescore_data
from ...evaluation.evaluator import inference_on_dataset
from ...evaluation.keypoints import KeypointEvaluator
from ...utils.io import atomic_write_json
from .estimator import DekrEstimator

logger = logging.getLogger(__name__)


class RescoreDataEvaluator(KeypointEvaluator):
    """RESCORE.GET_DATA: writes the results file, then the rescore net's training data drawn from it."""

    def __init__(self, gt_json: Optional[str], results_file: str, kind: str, keypoint_set: KeypointSet,
                 data_file: str) -> None:
        super().__init__(gt_json, results_file, kind, keypoint_set)
        self.data_file = data_file

    def score_results(self) -> None:
        """Save the rescore training data instead of metrics (None: nothing is scored)."""
        data = collect_rescore_data(self.gt_json, self.results_file, self.kind, self.keypoint_set)
        save_rescore_data(self.data_file, data)
        logger.info("=> wrote rescore training data to %s", self.data_file)


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
    return "crowdpose" if "crowd" in test_dataset_name(cfg) else "coco"


def ground_truth_subset(dataset: KeypointTestDataset, image_ids: Sequence[int], path: Path) -> str:
    """Write the ground truth of ``image_ids`` to ``path`` as read (derived iscrowd / num_keypoints / area
    included), so a TEST.MAX_IMAGES run scores fairly."""
    keypoint_file = dataset.keypoint_file
    by_image = keypoint_file.annotations_by_image
    wanted = set(image_ids)
    atomic_write_json(path, {"images": [image for image in keypoint_file.images if image["id"] in wanted],
                             "annotations": [ann for image_id in image_ids for ann in by_image.get(image_id, [])],
                             "categories": keypoint_file.categories})
    return str(path)


def scoring_ground_truth(dataset: KeypointTestDataset, count: int, results_file: Path) -> str:
    """The ground-truth json to score the first ``count`` images against: the json itself, else (a subset,
    images left out as missing, or derived fields) a file written beside the results."""
    if count == len(dataset) and dataset.complete and not dataset.keypoint_file.derived:
        return dataset.gt_json
    image_ids = [dataset.images[index]["id"] for index in range(count)]
    return ground_truth_subset(dataset, image_ids, results_file.with_name(f"gt_first_{count}_images.json"))


def validation_evaluator(cfg: CfgNode, dataset: KeypointTestDataset, count: int,
                         results_file: Path) -> KeypointEvaluator:
    """The evaluator of the first ``count`` test images: metrics, or rescore data under RESCORE.GET_DATA."""
    gt_json = scoring_ground_truth(dataset, count, results_file) if dataset.has_annotations else None
    kind, keypoint_set = evaluation_kind(cfg), keypoint_set_from_cfg(cfg)
    if cfg.RESCORE.GET_DATA:
        return RescoreDataEvaluator(gt_json, str(results_file), kind, keypoint_set, cfg.RESCORE.DATA_FILE)
    return KeypointEvaluator(gt_json, str(results_file), kind, keypoint_set, arch=cfg.MODEL.NAME)


def single_image_batches(dataset: KeypointTestDataset, count: int) -> Iterator[List[dict]]:
    """The first ``count`` test images, one per batch, as ``[{"image_id", "category_id", "image": RGB uint8}]``."""
    for index in range(count):
        image_id, image = dataset[index]
        yield [{"image_id": image_id, "category_id": dataset.category_id(index), "image": image}]


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
    evaluator = validation_evaluator(cfg, dataset, count, results_file)
    metrics = inference_on_dataset(lambda inputs: [estimator.estimate(item["image"]) for item in inputs],
                                   single_image_batches(dataset, count), evaluator, count, cfg.TEST.LOG_PROGRESS)
    if not dataset.has_annotations:
        logger.info("=> %s has no annotations: submit %s to the evaluation server", cfg.DATASET.TEST, results_file)
    return metrics
