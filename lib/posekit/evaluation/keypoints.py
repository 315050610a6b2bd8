"""Keypoint AP/AR with the official evaluation libraries (dekr.md 7.7), results files, the results table and
``KeypointEvaluator``, the DatasetEvaluator that gathers pose predictions into a results file and scores it.

COCO uses pycocotools; CrowdPose uses xtcocotools' ``keypoints_crowd`` mode with ``use_area=False``,
which reproduces the CrowdPose API (crowdposetools): OKS scale and area ranges from 0.53 x the gt box
area, ignore flags from ``num_keypoints``, easy/medium/hard split by ``crowdIndex`` at 0.2/0.8.
"""
import contextlib
import io
import logging
from collections import OrderedDict, defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import xtcocotools.coco
import xtcocotools.cocoeval

from ..data.annotations import load_json, require_fields
from ..data.metadata import CROWDPOSE, COCO as COCO_KEYPOINTS, KeypointSet
from ..utils.errors import ConfigError, DataError
from ..utils.io import atomic_write_json
from .evaluator import DatasetEvaluator

COCO_STATS = OrderedDict([("AP", 0), ("AP50", 1), ("AP75", 2), ("APm", 3), ("APl", 4),
                          ("AR", 5), ("AR50", 6), ("AR75", 7), ("ARm", 8), ("ARl", 9)])
# xtcocotools packs these into stats[0..8]; crowdposetools leaves gaps (stats [0, 1, 2, 5, 6, 7, 8, 9, 10]).
CROWDPOSE_STATS = OrderedDict([("AP", 0), ("AP50", 1), ("AP75", 2), ("AR", 3), ("AR50", 4), ("AR75", 5),
                               ("AP_easy", 6), ("AP_medium", 7), ("AP_hard", 8)])
STAT_NAMES = {"coco": COCO_STATS, "crowdpose": CROWDPOSE_STATS}
KEYPOINT_SETS = {"coco": COCO_KEYPOINTS, "crowdpose": CROWDPOSE}
RESULT_FIELDS = ("image_id", "category_id", "keypoints", "score")

logger = logging.getLogger(__name__)


class CrowdPoseEval(xtcocotools.cocoeval.COCOeval):
    """xtcocotools' CrowdPose evaluation, keeping detections whose joint scores are all <= 0.

    xtcocotools drops them; the CrowdPose API (and so the official numbers) counts them.
    """

    def _prepare(self) -> None:
        super()._prepare()
        params = self.params
        self._dts = defaultdict(list)
        for dt in self.cocoDt.loadAnns(self.cocoDt.getAnnIds(imgIds=params.imgIds, catIds=params.catIds)):
            self._dts[dt["image_id"], dt["category_id"]].append(dt)


def _check_kind(kind: str) -> None:
    if kind not in STAT_NAMES:
        raise ConfigError(f"evaluation kind must be one of {sorted(STAT_NAMES)}, got '{kind}'")


def load_results(results_json: str, image_ids: Sequence[int], num_joints: int) -> List[dict]:
    """Read a results file, checking every record; a malformed file raises DataError naming it."""
    results = load_json(results_json)
    if not isinstance(results, list):
        raise DataError(f"{results_json}: expected a list of result records")
    known = set(image_ids)
    for index, record in enumerate(results):
        where = f"{results_json}: record {index}"
        require_fields(record, RESULT_FIELDS, where)
        if not isinstance(record["keypoints"], list) or len(record["keypoints"]) != 3 * num_joints:
            raise DataError(f"{where}: 'keypoints' must be a list of {3 * num_joints} numbers")
        if record["image_id"] not in known:
            raise DataError(f"{where}: image_id {record['image_id']} is not in the ground truth")
    return results


def build_evaluator(gt_json: str, results_json: str, kind: str, keypoint_set: Optional[KeypointSet] = None):
    """A COCOeval for ``kind`` ('coco' or 'crowdpose') with ground truth and checked results loaded.

    ``keypoint_set`` gives the joint count and OKS sigmas (default: COCO's or CrowdPose's), so other
    keypoint sets such as DeepFashion2 category 1 are scored with the COCO protocol and their own sigmas.
    """
    _check_kind(kind)
    keypoint_set = keypoint_set or KEYPOINT_SETS[kind]
    sigmas = np.array(keypoint_set.sigmas)
    with contextlib.redirect_stdout(io.StringIO()):
        if kind == "coco":
            gt = pycocotools.coco.COCO(gt_json)
            results = load_results(results_json, gt.getImgIds(), keypoint_set.num_joints)
            evaluator = pycocotools.cocoeval.COCOeval(gt, _load_detections(gt, results), "keypoints")
            evaluator.params.kpt_oks_sigmas = sigmas
        else:
            gt = xtcocotools.coco.COCO(gt_json)
            results = load_results(results_json, gt.getImgIds(), keypoint_set.num_joints)
            evaluator = CrowdPoseEval(gt, _load_detections(gt, results), "keypoints_crowd",
                                      sigmas=sigmas, use_area=False)
    evaluator.params.useSegm = None
    return evaluator


def _load_detections(gt, results: List[dict]):
    """Detections as a COCO object of the ground truth's library; an empty list gives an empty object."""
    # pycocotools' loadRes fails on an empty list; xtcocotools' copes and must see it (it records the
    # results for its easy/medium/hard pass).
    if results or isinstance(gt, xtcocotools.coco.COCO):
        return gt.loadRes([dict(record) for record in results])
    empty = type(gt)()
    empty.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                     "annotations": []}
    empty.createIndex()
    return empty


def evaluate_keypoints(gt_json: str, results_json: str, kind: str,
                       keypoint_set: Optional[KeypointSet] = None) -> "OrderedDict[str, float]":
    """Official keypoint AP/AR of a results file against ground truth; kind is 'coco' or 'crowdpose'."""
    evaluator = build_evaluator(gt_json, results_json, kind, keypoint_set)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return OrderedDict((name, float(evaluator.stats[index])) for name, index in STAT_NAMES[kind].items())


def format_results_table(name: str, results: Dict[str, float]) -> str:
    """Markdown header, separator and row of the results, three decimals, as the official printout."""
    if len(name) > 15:
        name = name[:8] + "..."
    header = "| Arch " + " ".join(f"| {key}" for key in results) + " |"
    separator = "|---" * (len(results) + 1) + "|"
    row = f"| {name} " + " ".join(f"| {value:.3f}" for value in results.values()) + " |"
    return "\n".join([header, separator, row])


def write_results(path: str, records: List[dict]) -> None:
    """Write result records to ``path`` atomically (sorted keys, indent 4, as the official writer)."""
    atomic_write_json(path, records, sort_keys=True, indent=4)


def pose_results_to_coco(image_id: int, poses: np.ndarray, scores: np.ndarray, category_id: int = 1) -> List[dict]:
    """COCO result records (category_id, 3K keypoint floats, score, joint bounding box) for one image's poses."""
    records = []
    for pose, score in zip(np.asarray(poses, dtype=np.float64), scores):
        low, high = pose[:, :2].min(axis=0), pose[:, :2].max(axis=0)
        records.append({
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [float(v) for v in pose.reshape(-1)],
            "score": float(score),
            "bbox": [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])],
        })
    return records

class KeypointEvaluator(DatasetEvaluator):
    """Poses of each image as COCO result records, written to ``results_file`` and scored against ``gt_json``.

    Outputs are ``(poses (N, K, 3), scores (N,))`` per image. Without ground truth (``gt_json`` None, e.g. a
    test-server split) ``evaluate`` only writes the results file and returns None. ``arch`` names the
    model in the logged results table.
    """

    def __init__(self, gt_json: Optional[str], results_file: str, kind: str,
                 keypoint_set: Optional[KeypointSet] = None, arch: str = "model") -> None:
        _check_kind(kind)
        self.gt_json = gt_json
        self.results_file = str(results_file)
        self.kind = kind
        self.keypoint_set = keypoint_set
        self.arch = arch
        self._records: List[dict] = []

    def reset(self) -> None:
        """Drop the records gathered so far."""
        self._records = []

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Tuple[np.ndarray, np.ndarray]]) -> None:
        """Add the result records of each image's ``(poses, scores)`` (category 1 unless the item gives one)."""
        for item, (poses, scores) in zip(inputs, outputs):
            self._records.extend(pose_results_to_coco(item["image_id"], poses, scores, item.get("category_id", 1)))

    def evaluate(self) -> Optional[Dict[str, float]]:
        """Write the results file, then score it (None without ground truth)."""
        write_results(self.results_file, self._records)
        logger.info("=> wrote %s", self.results_file)
        return None if self.gt_json is None else self.score_results()

    def score_results(self) -> Optional[Dict[str, float]]:
        """Official AP/AR of the written results file, logged as the results table."""
        metrics = evaluate_keypoints(self.gt_json, self.results_file, self.kind, self.keypoint_set)
        logger.info("\n%s", format_results_table(self.arch, metrics))
        return metrics
