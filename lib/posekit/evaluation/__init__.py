"""Evaluation: the evaluator interface every family's validation drives, DEKR's keypoint evaluation with the
official libraries, person box AP, DensePose GPS / GPSm / IOU, expected-result checks and rescore training data."""
from .coco_boxes import BoxEvaluator
from .densepose import evaluate_densepose
from .evaluator import DatasetEvaluator, inference_on_dataset
from .expected import ExpectedMetric, check_expected_results, parse_expected_results
from .keypoints import (KeypointEvaluator, evaluate_keypoints, format_results_table, pose_results_to_coco,
                        write_results)
from .rescore_data import RescoreData, collect_rescore_data, load_rescore_data, save_rescore_data

__all__ = ["BoxEvaluator", "DatasetEvaluator", "evaluate_densepose", "ExpectedMetric", "KeypointEvaluator", "RescoreData", "check_expected_results",
           "collect_rescore_data", "evaluate_keypoints", "format_results_table", "inference_on_dataset",
           "load_rescore_data", "parse_expected_results", "pose_results_to_coco", "save_rescore_data",
           "write_results"]
