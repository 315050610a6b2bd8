"""posekit's DensePose R-CNN against results recorded from detectron2 itself (issue 18 item 2; how they were
recorded: tests/data/detectron2_densepose_tiny.md), and the chart-result box size detectron2 computes."""
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.apis import DensePoseEstimator
from posekit.config import load_cfg
from posekit.models.densepose import chart_result, int_box_xywh

DATA = Path(__file__).resolve().parents[1] / "data"
ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "data" / "samples" / "densepose" / "demo_im.jpg"
# The contract of issue 18 item 2.
BOX_TOLERANCE = 0.01
SCORE_TOLERANCE = 1e-4
LABEL_AGREEMENT = 0.995
UV_TOLERANCE = 2e-3


@pytest.fixture(scope="module")
def recorded():
    with np.load(DATA / "detectron2_densepose_tiny.npz") as stored:
        return {name: stored[name] for name in stored.files}


@pytest.fixture(scope="module")
def people():
    cfg = load_cfg(str(DATA / "detectron2_densepose_tiny.yaml"),
                   ["MODEL.WEIGHTS", str(DATA / "detectron2_densepose_tiny.pth"), "MODEL.DEVICE", "cpu"])
    return DensePoseEstimator(cfg).predict(str(IMAGE))


def test_detections_equal_detectron2s(recorded, people):
    boxes, scores = recorded["boxes"], recorded["scores"]
    assert len(boxes) >= 5, "the recorded reference must hold detections to compare"
    assert len(people) == len(boxes)
    np.testing.assert_allclose(np.stack([p["bbox"] for p in people]), boxes, rtol=0, atol=BOX_TOLERANCE)
    np.testing.assert_allclose([p["score"] for p in people], scores, rtol=0, atol=SCORE_TOLERANCE)


def test_charts_equal_detectron2s(recorded, people):
    for i, person in enumerate(people):
        labels, uv = recorded[f"labels_{i}"], recorded[f"uv_{i}"]
        assert person["labels"].shape == labels.shape and person["uv"].shape == uv.shape
        agree = person["labels"] == labels
        assert agree.mean() >= LABEL_AGREEMENT
        assert (labels > 0).any(), "the reference must label some body pixels"
        assert np.abs(person["uv"] - uv)[:, agree].max() <= UV_TOLERANCE


def test_chart_box_size_is_the_float32_difference_truncated():
    # detectron2 subtracts x2 - x1 in float32 before truncating: here the float32 difference rounds up to 281
    # while the exact difference of the two float32 values is 280.99999...
    x1, x2 = np.float32(102.7994155883789), np.float32(383.7994079589844)
    assert float(x2) - float(x1) < 281 and int(x2 - x1) == 281
    box = torch.tensor([x1, 5.0, x2, 9.5])
    assert int_box_xywh(box) == (102, 5, 281, 4)
    maps = torch.zeros(25, 4, 4)
    assert chart_result(maps[:2], maps, maps, maps, box).labels.shape == (4, 281)
