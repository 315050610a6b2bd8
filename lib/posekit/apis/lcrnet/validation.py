"""What tools/valid.py does for LCR-Net: people with 2D and 3D poses on DATASETS.TEST[0], matched to the ground
truth and scored (posekit.evaluation.pose3d: MPJPE and PA-MPJPE in mm relative to MODEL.LCRNET.EVALUATION.ROOT,
3DPCK at 150 mm over all and over matched people, 2D PCK, people, matched, misses, false positives).

The per-person results json (written atomically) is ``<output>/inference/<test set>_pose3d_results.json``;
TEST.EXPECTED_RESULTS entries name these metrics, e.g. [["MPJPE", 80.0, 5.0]].
"""
import logging
from pathlib import Path
from typing import Dict, Optional

import torch
from yacs.config import CfgNode

from ...data.catalog import get_dataset_records
from ...data.lcrnet_mapper import LCRNetMapper
from ...evaluation.evaluator import inference_on_dataset
from ...evaluation.keypoints import format_results_table
from ...evaluation.pose3d import Pose3DEvaluator
from ...models.lcrnet import POSE_TRANSFORMS
from ..detector.validation import test_set_name
from .estimator import LCRNetEstimator

logger = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_model(cfg: CfgNode, model: torch.nn.Module, output: Path,
                   show_progress: bool = True) -> Optional[Dict[str, float]]:
    """The 3D pose metrics of an LCRNet ``model`` (in eval mode) on DATASETS.TEST[0]; results json under
    ``output``; the metrics are also logged as a table."""
    name = test_set_name(cfg)
    records = get_dataset_records(name)
    evaluation = cfg.MODEL.LCRNET.EVALUATION
    evaluator = Pose3DEvaluator(records, str(output / "inference" / f"{name}_pose3d_results.json"),
                                root=evaluation.ROOT, iou_threshold=evaluation.MATCH_IOU)
    mapper = LCRNetMapper.from_config(cfg, is_train=False, pose_transforms=POSE_TRANSFORMS)

    def predict(inputs):
        return [model.integrate(found["instances"]) for found in model(inputs)]
    batches = ([mapper(record, None)] for record in records)
    metrics = inference_on_dataset(predict, batches, evaluator, total=len(records), show_progress=show_progress)
    if metrics is not None:
        logger.info("3D pose metrics on %s (errors in mm relative to the %s):\n%s", name, evaluation.ROOT,
                    format_results_table("LCR-Net", metrics))
    return metrics


def run_lcrnet_validation(cfg: CfgNode, output: Path) -> Optional[Dict[str, float]]:
    """The 3D pose metrics of MODEL.WEIGHTS on DATASETS.TEST[0]."""
    test_set_name(cfg)  # before the model loads, so a config without a test set fails at once
    return evaluate_model(cfg, LCRNetEstimator(cfg).model, output)
