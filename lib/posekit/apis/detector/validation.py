"""What tools/valid.py does for the detector: detect on DATASETS.TEST[0], write COCO results, box AP."""
import logging
from pathlib import Path
from typing import Dict, Optional

import torch
from yacs.config import CfgNode

from ...data.catalog import dataset_metadata, get_dataset_records
from ...data.detection_mapper import DetectionMapper
from ...evaluation.coco_boxes import BoxEvaluator
from ...evaluation.evaluator import inference_on_dataset
from ...utils.errors import ConfigError
from .estimator import DetectorEstimator

logger = logging.getLogger(__name__)


def test_set_name(cfg: CfgNode) -> str:
    """The first DATASETS.TEST name (ConfigError when there is none)."""
    if not cfg.DATASETS.TEST:
        raise ConfigError("DATASETS.TEST is empty: name the registered data set to evaluate, e.g. coco_2017_val")
    return cfg.DATASETS.TEST[0]


@torch.no_grad()
def box_ap(cfg: CfgNode, model: torch.nn.Module, output: Path, show_progress: bool = True) -> Optional[Dict[str, float]]:
    """Person box AP of ``model`` (in eval mode) on the first DATASETS.TEST set; results json under ``output``."""
    name = test_set_name(cfg)
    mapper = DetectionMapper.from_config(cfg, is_train=False)
    records = get_dataset_records(name)
    evaluator = BoxEvaluator(dataset_metadata(name).get("json_file"),
                             str(output / "inference" / f"{name}_box_results.json"))
    batches = ([mapper(record, None)] for record in records)
    return inference_on_dataset(model, batches, evaluator, total=len(records), show_progress=show_progress)


def run_detector_validation(cfg: CfgNode, output: Path) -> Optional[Dict[str, float]]:
    """Person box AP of MODEL.WEIGHTS on the first DATASETS.TEST set (TEST.MAX_IMAGES-like cuts are not offered)."""
    test_set_name(cfg)  # before the model loads, so a config without a test set fails at once
    return box_ap(cfg, DetectorEstimator(cfg).model, output)
