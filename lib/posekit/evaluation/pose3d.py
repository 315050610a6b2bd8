"""Multi-person 3D pose metrics (lcrnet.md 6.1): detections matched to ground truth by 2D box IoU, then MPJPE,
PA-MPJPE, 3DPCK and 2D PCK, with misses and false positives counted.

Choices, stated in every results file [our choice where lcrnet.md leaves one]:

* a person's box, for predictions and ground truth alike, is the bounds of its 2D joints; detections are taken
  by decreasing score and each matches the unmatched ground truth of highest IoU if that IoU is >= 0.5;
* 3D errors are in millimetres after both poses are re-centred on the same root: ``pelvis`` (hip midpoint,
  joints 4 and 5, the usual Human3.6M root) or ``torso`` (mean of hips and shoulders, LCR-Net's own origin);
* PA-MPJPE aligns each prediction to its ground truth by a similarity transform (rotation, uniform scale,
  translation) without reflection;
* 3DPCK is the percentage of joints within 150 mm after root alignment, over all ground-truth people (a
  missed person's joints all count as wrong) and over matched people only;
* 2D PCK: a joint is correct within 0.2 of the ground truth's torso diameter (left shoulder to right hip).
"""
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..models.lcrnet.codec import TORSO_JOINTS, split_poses
from ..utils.errors import ConfigError, DataError
from ..utils.io import atomic_write_json
from .evaluator import DatasetEvaluator

ROOT_JOINTS = {"pelvis": (4, 5), "torso": TORSO_JOINTS}
LEFT_SHOULDER, RIGHT_HIP = 11, 4
MATCH_IOU = 0.5
PCK3D_MM = 150.0
PCK2D_ALPHA = 0.2

logger = logging.getLogger(__name__)


def _numpy(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, np.float64)


def joint_boxes(pose2d: np.ndarray) -> np.ndarray:
    """(N, J, 2) -> (N, 4) x1, y1, x2, y2 bounds of each person's joints."""
    return np.concatenate([pose2d.min(axis=1), pose2d.max(axis=1)], axis=1)


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """(N, M) IoU of continuous boxes (width x2 - x1); 0 where the union is empty."""
    low = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    high = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = np.clip(high - low, 0, None).prod(axis=2)
    areas1 = (boxes1[:, 2:] - boxes1[:, :2]).prod(axis=1)
    areas2 = (boxes2[:, 2:] - boxes2[:, :2]).prod(axis=1)
    union = areas1[:, None] + areas2[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_people(pred2d: np.ndarray, scores: np.ndarray, gt2d: np.ndarray,
                 iou_threshold: float = MATCH_IOU) -> List[Tuple[int, int]]:
    """(prediction, ground truth) pairs: by decreasing score, each prediction takes the free ground truth of
    highest joint-box IoU when that IoU is >= ``iou_threshold``."""
    if not len(pred2d) or not len(gt2d):
        return []
    iou = box_iou(joint_boxes(pred2d), joint_boxes(gt2d))
    free = np.ones(len(gt2d), bool)
    pairs = []
    for pred in np.argsort(-scores, kind="stable"):
        candidates = np.where(free, iou[pred], -1.0)
        best = int(candidates.argmax())
        if candidates[best] >= iou_threshold:
            free[best] = False
            pairs.append((int(pred), best))
    return pairs


def root_centred(pose3d: np.ndarray, root: str) -> np.ndarray:
    """(..., J, 3) poses minus their root (``ROOT_JOINTS``)."""
    return pose3d - pose3d[..., list(ROOT_JOINTS[root]), :].mean(axis=-2, keepdims=True)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` (J, 3) moved onto ``gt`` by the least-squares similarity transform without reflection (Umeyama)."""
    pred_mean, gt_mean = pred.mean(axis=0), gt.mean(axis=0)
    pred_c, gt_c = pred - pred_mean, gt - gt_mean
    u, singular, vt = np.linalg.svd(pred_c.T @ gt_c)
    # A reflection would fit better for a mirrored pose; flipping the weakest axis keeps a rotation.
    sign = np.ones(3)
    sign[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = (u * sign) @ vt
    norm = (pred_c ** 2).sum()
    scale = (singular * sign).sum() / norm if norm > 0 else 1.0
    return scale * pred_c @ rotation + gt_mean


def person_errors(pred2d: np.ndarray, pred3d: np.ndarray, gt2d: np.ndarray, gt3d: np.ndarray,
                  root: str) -> Dict[str, Any]:
    """Per-joint errors of one matched pair: 3D (mm, root-relative), PA 3D (mm), 2D (pixels), torso diameter."""
    pred_c, gt_c = root_centred(pred3d, root), root_centred(gt3d, root)
    return {"error3d": 1000 * np.linalg.norm(pred_c - gt_c, axis=1),
            "error_pa": 1000 * np.linalg.norm(procrustes_align(pred_c, gt_c) - gt_c, axis=1),
            "error2d": np.linalg.norm(pred2d - gt2d, axis=1),
            "torso2d": float(np.linalg.norm(gt2d[LEFT_SHOULDER] - gt2d[RIGHT_HIP]))}


def evaluate_people(predictions: Sequence[Mapping[str, Any]], ground_truth: Sequence[Mapping[str, Any]],
                    root: str = "pelvis", iou_threshold: float = MATCH_IOU) -> Tuple[Dict[str, float], List[dict]]:
    """Metrics over images (module docstring) and one record per ground truth and per false positive.

    ``predictions[i]``: "scores" (P,), "pose2d" (P, J, 2) pixels, "pose3d" (P, J, 3) metres (``integrate_poses``
    output); ``ground_truth[i]``: "pose2d" (G, J, 2), "pose3d" (G, J, 3), optional "image_id" and "ids".
    """
    if root not in ROOT_JOINTS:
        raise ConfigError(f"root must be one of {', '.join(ROOT_JOINTS)}, got '{root}'")
    records: List[dict] = []
    for prediction, truth in zip(predictions, ground_truth):
        records.extend(_image_records(prediction, truth, root, iou_threshold))
    return summarize(records), records


def _image_records(prediction: Mapping[str, Any], truth: Mapping[str, Any], root: str,
                   iou_threshold: float) -> List[dict]:
    pred2d, pred3d, scores = (_numpy(prediction[key]) for key in ("pose2d", "pose3d", "scores"))
    gt2d, gt3d = _numpy(truth["pose2d"]), _numpy(truth["pose3d"])
    image_id = truth.get("image_id")
    if len(pred2d) and len(gt2d) and pred2d.shape[1] != gt2d.shape[1]:
        raise ConfigError(f"image {image_id}: predictions have {pred2d.shape[1]} joints, the ground truth "
                         f"{gt2d.shape[1]}; score a model with the joint set of its data")
    ids = list(truth.get("ids", range(len(gt2d))))
    matched = dict((gt, pred) for pred, gt in match_people(pred2d, scores, gt2d, iou_threshold))
    records = []
    for gt in range(len(gt2d)):
        record = {"image_id": image_id, "gt_id": ids[gt], "matched": gt in matched, "root": root}
        if gt in matched:
            pred = matched[gt]
            errors = person_errors(pred2d[pred], pred3d[pred], gt2d[gt], gt3d[gt], root)
            record.update(score=float(scores[pred]), pose2d=pred2d[pred].tolist(), pose3d=pred3d[pred].tolist(),
                          mpjpe_mm=float(errors["error3d"].mean()), pa_mpjpe_mm=float(errors["error_pa"].mean()),
                          pck3d=float((errors["error3d"] <= PCK3D_MM).mean() * 100),
                          pck2d=float((errors["error2d"] <= PCK2D_ALPHA * errors["torso2d"]).mean() * 100))
        records.append(record)
    for pred in sorted(set(range(len(pred2d))) - set(matched.values())):
        records.append({"image_id": image_id, "gt_id": None, "matched": False, "root": root,
                        "score": float(scores[pred]), "pose2d": pred2d[pred].tolist(),
                        "pose3d": pred3d[pred].tolist()})
    return records


def summarize(records: Sequence[dict]) -> Dict[str, float]:
    """Metrics from per-person records: means over matched people (NaN when none), 3DPCK also over all people."""
    people = [r for r in records if r["gt_id"] is not None]
    matched = [r for r in people if r["matched"]]

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in matched])) if matched else float("nan")
    return {"MPJPE": mean("mpjpe_mm"), "PA-MPJPE": mean("pa_mpjpe_mm"),
            "3DPCK": float(sum(r["pck3d"] for r in matched) / len(people)) if people else float("nan"),
            "3DPCK_matched": mean("pck3d"), "PCK2D": mean("pck2d"), "people": float(len(people)),
            "matched": float(len(matched)), "misses": float(len(people) - len(matched)),
            "false_positives": float(sum(r["gt_id"] is None for r in records))}


def ground_truth_of_record(record: Mapping[str, Any]) -> Dict[str, Any]:
    """An image record's (``posekit.data.lcrnet_annotations``) non-crowd people as 2D/3D arrays and ids."""
    people = [ann for ann in record["annotations"] if not ann.get("iscrowd", 0)]
    width = len(people[0]["pose"]) if people else 5
    poses = torch.as_tensor([ann["pose"] for ann in people], dtype=torch.float64).reshape(len(people), width)
    pose2d, pose3d = split_poses(poses)
    return {"image_id": record["image_id"], "ids": [ann.get("id") for ann in people],
            "pose2d": pose2d.numpy(), "pose3d": pose3d.numpy()}


class Pose3DEvaluator(DatasetEvaluator):
    """Scores per-image LCR-Net people against the records of a data set and writes per-person results json.

    ``process`` takes inputs with "image_id" and outputs as ``integrate_poses`` returns them; ``evaluate``
    writes ``results_file`` (atomically; the metrics, the root and one record per person) and returns
    ``evaluate_people``'s metrics.
    """

    def __init__(self, records: Sequence[Mapping[str, Any]], results_file: str, root: str = "pelvis",
                 iou_threshold: float = MATCH_IOU) -> None:
        self._truth = {record["image_id"]: ground_truth_of_record(record) for record in records}
        self.results_file = results_file
        self.root = root
        self.iou_threshold = iou_threshold
        self.reset()

    def reset(self) -> None:
        """Forget processed images."""
        self._predictions: List[Mapping[str, Any]] = []
        self._image_ids: List[Any] = []

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Any]) -> None:
        """Keep each image's people for ``evaluate``."""
        for item, output in zip(inputs, outputs):
            if item["image_id"] not in self._truth:
                raise DataError(f"image_id {item['image_id']} is not in the evaluator's ground truth")
            self._image_ids.append(item["image_id"])
            self._predictions.append(output)

    def evaluate(self) -> Optional[Dict[str, float]]:
        """Metrics of the processed images (None when none), after writing the results file."""
        if not self._image_ids:
            return None
        truth = [self._truth[image_id] for image_id in self._image_ids]
        metrics, records = evaluate_people(self._predictions, truth, self.root, self.iou_threshold)
        atomic_write_json(self.results_file, {"root": self.root, "iou_threshold": self.iou_threshold,
                                              "units": {"3d": "mm (errors), m (poses)", "2d": "pixels"},
                                              "metrics": metrics, "people": records}, indent=1)
        logger.info("=> wrote %d person records to %s (3D errors relative to the %s)", len(records),
                    self.results_file, self.root)
        return metrics
