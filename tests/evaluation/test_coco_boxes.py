"""Person box AP against pycocotools called directly and against AP values worked out by hand, on the
ground-truth boxes of data/samples/coco (4 images, 14 people, none crowd)."""
import contextlib
import io
import json

import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import pytest
import torch

from posekit.evaluation.coco_boxes import BoxEvaluator
from posekit.evaluation.evaluator import inference_on_dataset
from posekit.structures import Instances
from posekit.utils.errors import DataError

GT = "coco/annotations/person_keypoints_val2017.json"
SHIFTED_ANNOTATION = 442619  # the only person of image 785, box 218.7 wide, segmentation area 27789 (large)
METRICS = ["AP", "AP50", "AP75", "APs", "APm", "APl"]


@pytest.fixture(scope="module")
def gt(samples_dir):
    path = str(samples_dir / GT)
    with open(path) as handle:
        return path, json.load(handle)


def gt_as_results(dataset, shift_fraction=0.0):
    """One COCO result per person: its ground-truth box (XYWH), score 0.9; the SHIFTED_ANNOTATION box moved right
    by shift_fraction of its width, with the lowest score, 0.1."""
    results = []
    for ann in dataset["annotations"]:
        x, y, w, h = ann["bbox"]
        moved = ann["id"] == SHIFTED_ANNOTATION and shift_fraction
        x = x + shift_fraction * w if moved else x
        results.append({"image_id": ann["image_id"], "category_id": 1, "bbox": [x, y, w, h],
                        "score": 0.1 if moved else 0.9})
    return results


def direct_stats(gt_path, results):
    """COCOeval "bbox" stats[0..5] from pycocotools, called the documented way."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = pycocotools.coco.COCO(gt_path)
        evaluator = pycocotools.cocoeval.COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[:6]


def batches_of(dataset, results):
    """One batch per image: the inputs and the model outputs holding the results' boxes as XYXY Instances."""
    batches = []
    for image in dataset["images"]:
        mine = [result for result in results if result["image_id"] == image["id"]]
        boxes = torch.tensor([result["bbox"] for result in mine], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        instances = Instances((image["height"], image["width"]), pred_boxes=boxes,
                              scores=torch.tensor([result["score"] for result in mine], dtype=torch.float32),
                              pred_classes=torch.zeros(len(mine), dtype=torch.int64))
        batches.append(([{"image_id": image["id"], "height": image["height"], "width": image["width"]}],
                        [{"instances": instances}]))
    return batches


def run(evaluator, batches):
    outputs = {inputs[0]["image_id"]: outputs for inputs, outputs in batches}
    return inference_on_dataset(lambda inputs: outputs[inputs[0]["image_id"]], [inputs for inputs, _ in batches],
                                evaluator, show_progress=False)


def test_ground_truth_boxes_score_100(tmp_path, gt):
    path, dataset = gt
    results = gt_as_results(dataset)
    assert direct_stats(path, results).tolist() == [1.0] * 6  # pycocotools itself: a perfect score
    metrics = run(BoxEvaluator(path, tmp_path / "boxes.json"), batches_of(dataset, results))
    assert list(metrics) == METRICS
    assert list(metrics.values()) == pytest.approx([100.0] * 6)


def test_shifted_box_lowers_ap_as_computed_by_hand(tmp_path, gt):
    path, dataset = gt
    # Moving a box right by 0.3 of its width leaves IoU (1 - 0.3) / (1 + 0.3) = 0.538 with its person: a hit at
    # IoU 0.5 only. At 0.55 .. 0.95 the ranking is 13 hits then a miss, recall 13/14 = 0.929: the 101-point
    # precision is 1 at recall 0.00 .. 0.92 (93 points), 0 above, so AP = 93 / 101 = 92.0792 %.
    at_strict = 93 / 101 * 100
    # Large people (area > 96^2): 7, of which the shifted one; at strict IoU 6 hits then a large miss,
    # recall 6/7 = 0.857: 86 points, 86 / 101 = 85.1485 %. Small and medium people are all found.
    large_strict = 86 / 101 * 100
    expected = {"AP": (100 + 9 * at_strict) / 10, "AP50": 100.0, "AP75": at_strict, "APs": 100.0, "APm": 100.0,
                "APl": (100 + 9 * large_strict) / 10}
    results = gt_as_results(dataset, shift_fraction=0.3)
    metrics = run(BoxEvaluator(path, tmp_path / "boxes.json"), batches_of(dataset, results))
    assert metrics == pytest.approx(expected, abs=1e-3)
    assert list(metrics.values()) == pytest.approx((100 * direct_stats(path, results)).tolist(), abs=1e-3)


def test_no_predictions_score_zero(tmp_path, gt):
    path, dataset = gt
    results_file = tmp_path / "boxes.json"
    metrics = run(BoxEvaluator(path, results_file), batches_of(dataset, []))
    assert metrics == {name: 0.0 for name in METRICS}
    assert json.loads(results_file.read_text()) == []


def test_only_processed_images_are_scored(tmp_path, gt):
    path, dataset = gt
    one_image = [batch for batch in batches_of(dataset, gt_as_results(dataset)) if batch[0][0]["image_id"] == 785]
    metrics = run(BoxEvaluator(path, tmp_path / "boxes.json"), one_image)
    # Image 785's only person is found; the other images' 13 people are not counted as missed.
    assert metrics["AP"] == pytest.approx(100.0)
    # Its person is large: no small or medium person among the scored images, which detectron2 reports as NaN.
    assert np.isnan(metrics["APs"]) and np.isnan(metrics["APm"])


def test_without_ground_truth_only_the_results_file(tmp_path):
    results_file = tmp_path / "out" / "boxes.json"
    evaluator = BoxEvaluator(None, results_file)
    instances = Instances((425, 640), pred_boxes=torch.tensor([[10.0, 20.0, 50.0, 80.0]]),
                          scores=torch.tensor([0.75]), pred_classes=torch.tensor([0]))
    evaluator.process([{"image_id": 785, "height": 425, "width": 640}], [{"instances": instances}])
    assert evaluator.evaluate() is None
    # XYXY (10, 20, 50, 80) is XYWH (10, 20, 40, 60); class 0 is COCO's person, category 1.
    assert json.loads(results_file.read_text()) == [
        {"image_id": 785, "category_id": 1, "bbox": [10.0, 20.0, 40.0, 60.0], "score": 0.75}]
    evaluator.reset()
    assert evaluator.evaluate() is None and json.loads(results_file.read_text()) == []


def test_bad_predictions_are_refused(tmp_path, gt):
    path, _ = gt
    evaluator = BoxEvaluator(path, tmp_path / "boxes.json")
    item = {"image_id": 785, "height": 425, "width": 640}
    resized = Instances((800, 1205), pred_boxes=torch.zeros(0, 4), scores=torch.zeros(0),
                        pred_classes=torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="predictions are for a 800x1205 image, expected the original 425x640"):
        evaluator.process([item], [{"instances": resized}])
    other_class = Instances((425, 640), pred_boxes=torch.zeros(1, 4), scores=torch.ones(1),
                            pred_classes=torch.tensor([1]))
    with pytest.raises(ValueError, match="predicted classes \\[1\\]"):
        evaluator.process([item], [{"instances": other_class}])
    evaluator.process([dict(item, image_id=12345)], [{"instances": other_class[:0]}])
    with pytest.raises(DataError, match="person_keypoints_val2017.json: no image with id 12345"):
        evaluator.evaluate()
