"""The DensePoseEstimator contract: people as plain arrays, sorted by score, sized as detectron2's chart result."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.apis import DensePoseEstimator, PoseEstimator
from posekit.config import load_cfg
from posekit.models import build_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from test_densepose_model import DENSEPOSE, TINY  # noqa: E402

IMAGE = Path(__file__).resolve().parents[2] / "data" / "samples" / "densepose" / "demo_im.jpg"


@pytest.fixture(scope="module")
def estimator(tmp_path_factory):
    # A large pixel std keeps the untrained network's scores spread, so several people come out.
    opts = DENSEPOSE + ["MODEL.PIXEL_STD", "[500.0, 500.0, 500.0]", "MODEL.DEVICE", "cpu"]
    torch.manual_seed(0)
    weights = tmp_path_factory.mktemp("densepose") / "model_final.pth"
    torch.save({"model": build_model(load_cfg(TINY, opts)).state_dict()}, weights)
    cfg = load_cfg(TINY, opts + ["MODEL.WEIGHTS", str(weights)])
    return PoseEstimator(cfg)


def test_people_are_plain_arrays_sorted_by_score_and_sized_by_their_boxes(estimator):
    assert isinstance(estimator, DensePoseEstimator)
    people = estimator.predict(IMAGE)
    assert people
    scores = [person["score"] for person in people]
    assert scores == sorted(scores, reverse=True)
    for person in people:
        x1, y1, x2, y2 = person["bbox"]
        height, width = max(int(y2 - y1), 1), max(int(x2 - x1), 1)
        assert person["bbox"].dtype == np.float32 and 0 <= x1 <= x2 <= 1116 and 0 <= y1 <= y2 <= 600
        assert person["labels"].dtype == np.uint8 and person["labels"].shape == (height, width)
        assert person["labels"].max() <= 24
        assert person["uv"].dtype == np.float32 and person["uv"].shape == (2, height, width)
        assert person["uv"].min() >= 0 and person["uv"].max() <= 1
        assert not person["uv"][:, person["labels"] == 0].any()  # no coordinates on the background


def test_an_array_and_its_path_give_the_same_people(estimator):
    import cv2
    rgb = cv2.cvtColor(cv2.imread(str(IMAGE)), cv2.COLOR_BGR2RGB)
    from_path, from_array = estimator.predict(IMAGE), estimator.predict(rgb)
    assert len(from_path) == len(from_array)
    assert all(np.array_equal(a["labels"], b["labels"]) for a, b in zip(from_path, from_array))
