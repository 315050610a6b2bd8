"""Person box AP with pycocotools, scored as detectron2's COCOEvaluator scores "bbox": ``BoxEvaluator`` gathers
each image's detections as COCO result records, writes them to a results file and scores them.

As in detectron2, only the images that were processed are scored (COCOeval's ``imgIds``), AP values are
percentages, and an area range without ground truth gives NaN. Unlike detectron2, which returns NaN for every
metric when there are no detections at all, no detections score 0 (pycocotools' own answer).
"""
import contextlib
import io
import logging
import math
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import pycocotools.coco
import pycocotools.cocoeval
import torch

from ..data.annotations import load_json, require_fields
from ..data.detection_mapper import CLASS_OF_CATEGORY, PERSON_CATEGORY_ID
from ..structures import Instances
from ..utils.errors import DataError
from ..utils.io import atomic_write_json
from .evaluator import DatasetEvaluator
from .keypoints import _load_detections, format_results_table

BOX_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval.stats[0..5] of iouType "bbox"
GT_ANNOTATION_FIELDS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")

logger = logging.getLogger(__name__)


def instances_to_box_records(image_id: int, instances: Instances, category_id: int) -> List[dict]:
    """COCO detection records of one image: ``bbox`` XYWH from pred_boxes XYXY, ``score``, class 0 -> category_id."""
    boxes = instances.pred_boxes.detach().cpu()
    classes = instances.pred_classes.detach().cpu()
    person_class = CLASS_OF_CATEGORY[PERSON_CATEGORY_ID]
    if bool((classes != person_class).any()):
        raise ValueError(f"image {image_id}: predicted classes {sorted(set(classes.tolist()))}; the person detector "
                         f"predicts class {person_class} only")
    # Width and height in the boxes' own dtype, as detectron2's BoxMode conversion computes them.
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)
    return [{"image_id": int(image_id), "category_id": category_id, "bbox": box, "score": float(score)}
            for box, score in zip(xywh.tolist(), instances.scores.detach().cpu().tolist())]


def load_box_ground_truth(gt_json: str) -> pycocotools.coco.COCO:
    """A pycocotools COCO of ``gt_json``; a missing file or annotation field raises DataError naming it."""
    dataset = load_json(gt_json)
    require_fields(dataset, ("images", "annotations", "categories"), gt_json)
    for index, ann in enumerate(dataset["annotations"]):
        require_fields(ann, GT_ANNOTATION_FIELDS, f"{gt_json}: annotations[{index}]")
    gt = pycocotools.coco.COCO()
    gt.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def evaluate_boxes(gt_json: str, records: List[dict], image_ids: Sequence[int],
                   category_id: int = PERSON_CATEGORY_ID) -> "OrderedDict[str, float]":
    """Box AP, AP50, AP75, APs, APm, APl in percent (0..100) of ``records`` on the images ``image_ids`` only."""
    gt = load_box_ground_truth(gt_json)
    unknown = sorted(set(image_ids) - set(gt.getImgIds()))
    if unknown:
        raise DataError(f"{gt_json}: no image with id {unknown[0]}, for which predictions were made "
                        f"({len(unknown)} such ids)")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        evaluator = pycocotools.cocoeval.COCOeval(gt, _load_detections(gt, records), "bbox")
        evaluator.params.imgIds = sorted(set(image_ids))
        evaluator.params.catIds = [category_id]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    logger.info("pycocotools box evaluation:\n%s", printed.getvalue())
    # COCOeval writes -1 where an area range holds no ground truth; detectron2 reports NaN there.
    return OrderedDict((name, float(stat) * 100 if stat >= 0 else math.nan)
                       for name, stat in zip(BOX_STATS, evaluator.stats))


class BoxEvaluator(DatasetEvaluator):
    """Person detections as COCO result records, written to ``results_file`` and scored against ``gt_json``.

    Inputs carry "image_id", "height" and "width"; outputs are ``{"instances": Instances}`` made for that
    original height x width, with pred_boxes (N, 4) XYXY in original-image pixels, scores (N,) and pred_classes
    (N,), class 0 being ``category_id``. ``evaluate`` returns AP, AP50, AP75, APs, APm, APl in percent
    (0..100, as detectron2), or None without ground truth (``gt_json`` None: the results file is only written)
    or when no image was processed. ``arch`` names the model in the logged results table.
    """

    def __init__(self, gt_json: Optional[str], results_file: str, category_id: int = PERSON_CATEGORY_ID,
                 arch: str = "model") -> None:
        self.gt_json = gt_json
        self.results_file = str(results_file)
        self.category_id = category_id
        self.arch = arch
        self._records: List[dict] = []
        self._image_ids: List[int] = []

    def reset(self) -> None:
        """Drop the records and image ids gathered so far."""
        self._records = []
        self._image_ids = []

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Add the detection records of each image; images without detections still count in the scoring."""
        for item, output in zip(inputs, outputs):
            instances = output["instances"]
            expected = (item["height"], item["width"])
            # Boxes left at the network's input scale would score silently wrong.
            if tuple(instances.image_size) != expected:
                raise ValueError(f"image {item['image_id']}: predictions are for a {instances.image_size[0]}x"
                                 f"{instances.image_size[1]} image, expected the original {expected[0]}x"
                                 f"{expected[1]}")
            self._image_ids.append(int(item["image_id"]))
            self._records.extend(instances_to_box_records(item["image_id"], instances, self.category_id))

    def evaluate(self) -> Optional[Dict[str, float]]:
        """Write the results file, then score it (module and class docstrings)."""
        atomic_write_json(self.results_file, self._records)
        logger.info("=> wrote %d detections of %d images to %s", len(self._records), len(set(self._image_ids)),
                    self.results_file)
        if self.gt_json is None:
            return None
        if not self._image_ids:
            logger.warning("no image was processed: nothing to score")
            return None
        metrics = evaluate_boxes(self.gt_json, self._records, self._image_ids, self.category_id)
        logger.info("\n%s", format_results_table(self.arch, metrics))
        return metrics
