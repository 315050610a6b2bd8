"""Training data for the rescore net (dekr.md 7.6, ``RESCORE.GET_DATA``): predicted poses and their best OKS."""
import contextlib
import io
from typing import List, NamedTuple, Optional

import numpy as np

from ..data.metadata import KeypointSet
from ..utils.errors import DataError
from ..utils.io import atomic_write
from .keypoints import KEYPOINT_SETS, build_evaluator


class RescoreData(NamedTuple):
    """Predicted poses (M, K, 3: x, y, joint score) and each one's best OKS against the ground truth (M,)."""

    keypoints: np.ndarray
    oks: np.ndarray


def best_oks(oks: np.ndarray, gt_ignored: np.ndarray) -> np.ndarray:
    """Per detection, the official greedy match's OKS: best over non-ignored gts if any, else over all gts."""
    candidates = oks[:, ~gt_ignored] if (~gt_ignored).any() else oks
    return candidates.max(axis=1)


def collect_rescore_data(gt_json: str, results_json: str, kind: str,
                         keypoint_set: Optional[KeypointSet] = None) -> RescoreData:
    """Each image's top-scoring detections (at most maxDets = 20) with their best OKS; images without gt give none.

    Officially every detection was recorded once per area range (3x, with area-dependent ignore flags);
    here once, with the 'all' range (docs/differences.md).
    """
    evaluator = build_evaluator(gt_json, results_json, kind, keypoint_set)
    params = evaluator.params
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
    max_dets = params.maxDets[-1]
    poses: List[np.ndarray] = []
    scores: List[np.ndarray] = []
    for image_id in params.imgIds:
        for cat_id in params.catIds:
            oks = evaluator.ious[image_id, cat_id]
            if len(oks) == 0:
                continue
            gts = evaluator._gts[image_id, cat_id]
            dts = evaluator._dts[image_id, cat_id]
            order = np.argsort([-dt["score"] for dt in dts], kind="mergesort")[:max_dets]
            ignored = np.array([bool(gt["ignore"]) for gt in gts])
            poses.extend(np.array(dts[i]["keypoints"], dtype=np.float64).reshape(-1, 3) for i in order)
            scores.append(best_oks(np.asarray(oks), ignored))
    num_joints = (keypoint_set or KEYPOINT_SETS[kind]).num_joints
    keypoints = np.stack(poses) if poses else np.zeros((0, num_joints, 3))
    return RescoreData(keypoints, np.concatenate(scores) if scores else np.zeros((0,)))


def save_rescore_data(path: str, data: RescoreData) -> None:
    """Write rescore data to exactly ``path`` (NumPy .npz format, no pickle), atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, keypoints=data.keypoints, oks=data.oks)
    atomic_write(path, write)


def load_rescore_data(path: str) -> RescoreData:
    """Read rescore data written by ``save_rescore_data``; a missing or malformed file raises DataError."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return RescoreData(archive["keypoints"], archive["oks"])
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except (KeyError, ValueError, OSError) as err:
        raise DataError(f"{path}: not a rescore data file with 'keypoints' and 'oks' arrays ({err})") from err
