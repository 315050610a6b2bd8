"""What tools/valid.py does for the detector: detect on DATASETS.TEST[0], write COCO results, box AP."""
import logging
from pathlib import Path
from typing import Dict, Optional

from yacs.config import CfgNode

from ...data.catalog import dataset_metadata, get_dataset_records
from ...evaluation.coco_boxes import BoxEvaluator
from ...evaluation.evaluator import inference_on_dataset
from ...utils.errors import ConfigError
from .estimator import DetectorEstimator

logger = logging.getLogger(__name__)


def run_detector_validation(cfg: CfgNode, output: Path) -> Optional[Dict[str, float]]:
    """Person box AP of MODEL.WEIGHTS on the first DATASETS.TEST set (TEST.MAX_IMAGES-like cuts are not offered)."""
    if not cfg.DATASETS.TEST:
        raise ConfigError("DATASETS.TEST is empty: name the registered data set to evaluate, e.g. coco_2017_val")
    name = cfg.DATASETS.TEST[0]
    estimator = DetectorEstimator(cfg)
    records = get_dataset_records(name)
    evaluator = BoxEvaluator(dataset_metadata(name).get("json_file"),
                             str(output / "inference" / f"{name}_box_results.json"))
    batches = ([estimator.mapper(record, None)] for record in records)
    return inference_on_dataset(estimator.model, batches, evaluator, total=len(records), show_progress=True)
