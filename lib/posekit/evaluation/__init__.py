"""Keypoint evaluation with the official libraries, results files and rescore training data."""
from .keypoints import evaluate_keypoints, format_results_table, write_results
from .rescore_data import RescoreData, collect_rescore_data, load_rescore_data, save_rescore_data

__all__ = ["evaluate_keypoints", "format_results_table", "write_results", "RescoreData",
           "collect_rescore_data", "save_rescore_data", "load_rescore_data"]
