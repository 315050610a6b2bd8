"""What tools/valid.py does for DensePose R-CNN: detect on DATASETS.TEST[0], score box AP and, when the
DensePose evaluation data folder exists, DensePose AP in the GPS, GPSm and IOU modes (densepose.md 6).

Metrics are returned under detectron2's task names, "bbox/AP", "densepose_gps/AP", "densepose_gpsm/AP" and
"densepose_segm/AP" (the IOU mode), all in percent; DensePose metrics without ground truth are NaN, as box ones.
"""
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
from yacs.config import CfgNode

from ...data.catalog import dataset_metadata, get_dataset_records
from ...evaluation.coco_boxes import BoxEvaluator
from ...evaluation.densepose import evaluate_densepose_modes
from ...evaluation.densepose_results import to_detectron2_record, write_results
from ...evaluation.evaluator import DatasetEvaluator, inference_on_dataset
from ...evaluation.keypoints import format_results_table
from ...utils.errors import ConfigError
from .estimator import DensePoseEstimator, people_from_instances

DEFAULT_DATA_DIR = "data/densepose_eval"
# detectron2's result names of the three evaluation modes.
MODE_TASKS = {"GPS": "densepose_gps", "GPSm": "densepose_gpsm", "IOU": "densepose_segm"}

logger = logging.getLogger(__name__)


class DensePoseResultsEvaluator(DatasetEvaluator):
    """Box AP through ``boxes`` while gathering every detection's chart result as a detectron2 DensePose record."""

    def __init__(self, boxes: BoxEvaluator) -> None:
        self.boxes = boxes
        self.records: List[dict] = []

    def reset(self) -> None:
        """Forget the boxes and records gathered so far."""
        self.boxes.reset()
        self.records = []

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Add each image's boxes and DensePose records."""
        self.boxes.process(inputs, outputs)
        for item, output in zip(inputs, outputs):
            # Keypoint pre-training models (KTN) have boxes and keypoints only: box AP alone.
            self.records.extend(to_detectron2_record(item["image_id"], person, self.boxes.category_id)
                                for person in people_from_instances(output["instances"]) if "labels" in person)

    def evaluate(self) -> Optional[Dict[str, float]]:
        """The box metrics (BoxEvaluator.evaluate)."""
        return self.boxes.evaluate()


def evaluation_data_dir(cfg: CfgNode) -> str:
    """DENSEPOSE_EVALUATION.DATA_DIR when the config has it, else data/densepose_eval."""
    return cfg.get("DENSEPOSE_EVALUATION", CfgNode()).get("DATA_DIR", DEFAULT_DATA_DIR)


def prefixed(task: str, metrics: Mapping[str, float]) -> Dict[str, float]:
    """``metrics`` named "<task>/<metric>"."""
    return {f"{task}/{name}": value for name, value in metrics.items()}


def densepose_metrics(gt_json: str, results_file: str, data_dir: str, min_threshold: float,
                      arch: str) -> Dict[str, float]:
    """GPS, GPSm and IOU AP / AR of ``results_file`` in percent (NaN where undefined), each logged as a table."""
    metrics = {}
    for mode, scores in evaluate_densepose_modes(gt_json, results_file, data_dir,
                                                 min_threshold=min_threshold).items():
        scores = {name: value * 100 if value >= 0 else math.nan for name, value in scores.items()}
        logger.info("DensePose evaluation, mode %s:\n%s", mode, format_results_table(arch, scores))
        metrics.update(prefixed(MODE_TASKS[mode], scores))
    return metrics


def run_densepose_validation(cfg: CfgNode, output: Path) -> Optional[Dict[str, float]]:
    """Box AP of MODEL.WEIGHTS on DATASETS.TEST[0], and DensePose AP when the evaluation data folder exists."""
    if not cfg.DATASETS.TEST:
        raise ConfigError("DATASETS.TEST is empty: name the registered data set to evaluate, "
                          "e.g. densepose_coco_2014_minival")
    name = cfg.DATASETS.TEST[0]
    estimator = DensePoseEstimator(cfg)
    records = get_dataset_records(name)
    gt_json = dataset_metadata(name).get("json_file")
    folder = Path(output) / "inference"
    arch = cfg.MODEL.ROI_DENSEPOSE_HEAD.NAME
    evaluator = DensePoseResultsEvaluator(BoxEvaluator(gt_json, str(folder / f"{name}_box_results.json"), arch=arch))
    batches = ([estimator.mapper(record, None)] for record in records)
    with torch.inference_mode():  # the chart results are read back as arrays
        boxes = inference_on_dataset(estimator.model, batches, evaluator, total=len(records), show_progress=True)
    results_file = folder / f"{name}_densepose_results.json"
    write_results(results_file, evaluator.records)
    logger.info("=> wrote %d DensePose results to %s", len(evaluator.records), results_file)
    if boxes is None:
        return None
    metrics = prefixed("bbox", boxes)
    data_dir = evaluation_data_dir(cfg)
    if not os.path.isdir(data_dir):
        logger.warning("%s: no DensePose evaluation data folder (DENSEPOSE_EVALUATION.DATA_DIR); box AP only",
                       data_dir)
        return metrics
    metrics.update(densepose_metrics(gt_json, str(results_file), data_dir,
                                     cfg.DENSEPOSE_EVALUATION.MIN_IOU_THRESHOLD, arch))
    return metrics
