"""The evaluator interface: a hand-worked toy evaluator through inference_on_dataset, and KeypointEvaluator
scored against pycocotools called directly."""
import contextlib
import io
import json
import logging
from collections import defaultdict

import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import pytest

from posekit.evaluation.evaluator import DatasetEvaluator, inference_on_dataset
from posekit.evaluation.keypoints import KeypointEvaluator
from posekit.utils.errors import ConfigError

COCO_GT = "coco/annotations/person_keypoints_val2017.json"
COCO_STAT_NAMES = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]


class GuessCounter(DatasetEvaluator):
    """Toy evaluator: the share of images whose predicted number equals its "label"; logs every call."""

    def __init__(self):
        self.calls = []
        self.hits = self.seen = 0

    def reset(self):
        self.calls.append("reset")
        self.hits = self.seen = 0

    def process(self, inputs, outputs):
        self.calls.append(("process", [item["image_id"] for item in inputs]))
        self.hits += sum(item["label"] == output for item, output in zip(inputs, outputs))
        self.seen += len(inputs)

    def evaluate(self):
        self.calls.append("evaluate")
        return {"accuracy": self.hits / self.seen} if self.seen else None


def double(inputs):
    return [2 * item["x"] for item in inputs]


# Doubling gives 2, 6, 8 against labels 2, 5, 8: two hits out of three.
BATCHES = [[{"image_id": 1, "x": 1, "label": 2}, {"image_id": 2, "x": 3, "label": 5}],
           [{"image_id": 3, "x": 4, "label": 8}]]


def test_toy_evaluator_sees_reset_every_batch_then_evaluate():
    evaluator = GuessCounter()
    assert inference_on_dataset(double, BATCHES, evaluator, total=2, show_progress=False) == {"accuracy": 2 / 3}
    assert evaluator.calls == ["reset", ("process", [1, 2]), ("process", [3]), "evaluate"]


def test_a_second_pass_starts_from_a_reset():
    evaluator = GuessCounter()
    inference_on_dataset(double, BATCHES, evaluator, show_progress=False)
    assert inference_on_dataset(double, BATCHES[1:], evaluator, show_progress=False) == {"accuracy": 1.0}


def test_no_batches_give_none():
    evaluator = GuessCounter()
    assert inference_on_dataset(double, iter([]), evaluator, total=0, show_progress=False) is None
    assert evaluator.calls == ["reset", "evaluate"]


def test_progress_bar_counts_the_batches(capsys):
    inference_on_dataset(double, BATCHES, GuessCounter(), total=len(BATCHES), show_progress=True)
    assert "2/2" in capsys.readouterr().err


def test_a_prediction_missing_for_an_input_is_an_error():
    with pytest.raises(ValueError, match="1 outputs for a batch of 2"):
        inference_on_dataset(lambda inputs: [0], BATCHES, GuessCounter(), show_progress=False)


def ground_truth_batches(gt_path, batch_size=2):
    """Every image of the ground truth as input ``{"image_id"}`` and output (its labelled persons' joints, scores)."""
    data = json.load(open(gt_path))
    poses = defaultdict(list)
    for ann in data["annotations"]:
        if ann["num_keypoints"] > 0 and not ann["iscrowd"]:
            joints = np.array(ann["keypoints"], dtype=np.float32).reshape(-1, 3)
            joints[:, 2] = 1.0
            poses[ann["image_id"]].append(joints)
    items = [({"image_id": image["id"]},
              (np.array(poses[image["id"]], dtype=np.float32).reshape(-1, 17, 3),
               np.ones(len(poses[image["id"]]), dtype=np.float32))) for image in data["images"]]
    return [items[i:i + batch_size] for i in range(0, len(items), batch_size)], sum(map(len, poses.values()))


def pycocotools_stats(gt_path, results_path):
    """AP/AR of a results file straight from pycocotools."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = pycocotools.coco.COCO(gt_path)
        evaluator = pycocotools.cocoeval.COCOeval(gt, gt.loadRes(results_path), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_ground_truth_fed_back_scores_ap_one(samples_dir, tmp_path, caplog):
    gt_path = str(samples_dir / COCO_GT)
    batches, num_poses = ground_truth_batches(gt_path)
    outputs = {item["image_id"]: output for batch in batches for item, output in batch}
    results_file = tmp_path / "results" / "keypoints.json"
    evaluator = KeypointEvaluator(gt_path, str(results_file), "coco", arch="toy_net")
    with caplog.at_level(logging.INFO):
        metrics = inference_on_dataset(lambda inputs: [outputs[item["image_id"]] for item in inputs],
                                       [[item for item, _ in batch] for batch in batches], evaluator,
                                       show_progress=False)
    assert num_poses > 0 and len(json.loads(results_file.read_text())) == num_poses
    stats = pycocotools_stats(gt_path, str(results_file))
    assert stats[0] == 1.0
    assert list(metrics) == COCO_STAT_NAMES
    np.testing.assert_allclose(list(metrics.values()), stats, atol=1e-12)
    assert "| Arch | AP |" in caplog.text and "| toy_net | 1.000 |" in caplog.text


def test_without_ground_truth_only_the_results_file_is_written(tmp_path):
    results_file = tmp_path / "keypoints.json"
    pose = np.zeros((1, 17, 3), dtype=np.float32)
    pose[0, :, 0], pose[0, :, 1] = np.arange(17), 2 * np.arange(17)
    evaluator = KeypointEvaluator(None, str(results_file), "coco")
    metrics = inference_on_dataset(lambda inputs: [(pose, np.array([0.5]))], [[{"image_id": 785}]], evaluator,
                                   show_progress=False)
    assert metrics is None
    [record] = json.loads(results_file.read_text())
    assert record["image_id"] == 785 and record["score"] == 0.5 and record["bbox"] == [0.0, 0.0, 16.0, 32.0]


def test_reset_drops_earlier_records(tmp_path):
    results_file = tmp_path / "keypoints.json"
    evaluator = KeypointEvaluator(None, str(results_file), "coco")
    evaluator.process([{"image_id": 785}], [(np.zeros((2, 17, 3)), np.ones(2))])
    evaluator.reset()
    assert evaluator.evaluate() is None
    assert json.loads(results_file.read_text()) == []


def test_unknown_kind_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'posetrack'"):
        KeypointEvaluator(None, str(tmp_path / "r.json"), "posetrack")
