"""The DensePose video demo on data/samples/video/street.mp4 (5 frames at 5 fps) with a tiny random model."""
import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.apis.densepose.video import densepose_video_demo
from posekit.evaluation.densepose_results import from_detectron2_record
from posekit.utils.errors import DataError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_densepose_validation import densepose_weights, tiny_cfg  # noqa: E402,F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
VIDEO = str(REPO / "data" / "samples" / "video" / "street.mp4")
pytestmark = pytest.mark.usefixtures("one_thread")


def demo_args(output, video=VIDEO, **overrides):
    values = dict(videoFile=video, outputDir=str(output), inferenceFps=2.5, visthre=0.05, batchSize=2)
    values.update(overrides)
    return argparse.Namespace(**values)


def test_every_other_frame_is_drawn_and_recorded(tmp_path, densepose_weights, video_fps_and_frames):
    output = tmp_path / "out"
    summary = densepose_video_demo(tiny_cfg(densepose_weights), demo_args(output))
    # 5 fps at 2.5 inference fps: every second frame, 0, 2 and 4, in a video playing at 2.5 fps.
    assert summary.startswith("processed 3 frames of")
    fps, frames = video_fps_and_frames(output / "street_densepose.avi")
    assert frames == 3 and abs(fps - 2.5) < 1e-6
    assert sorted(os.listdir(output / "street_densepose")) == [f"densepose_{i:08d}.jpg" for i in range(3)]
    assert not [name for name in os.listdir(output) if name.startswith(".")]  # no partial files left

    record = json.loads((output / "street_densepose.json").read_text())
    assert record["frame_step"] == 2 and [frame["frame"] for frame in record["frames"]] == [0, 2, 4]
    people = [person for frame in record["frames"] for person in frame["people"]]
    assert people and all(person["score"] > 0.05 for person in people)
    capture = cv2.VideoCapture(VIDEO)
    ok, first = capture.read()
    capture.release()
    drawn = cv2.imread(str(output / record["frames"][0]["image"]))
    assert ok and drawn.shape == first.shape
    for frame in record["frames"]:
        for person in frame["people"]:
            assert person["image_id"] == frame["frame"]
            detection = from_detectron2_record(person)
            x1, y1, x2, y2 = detection["bbox"]
            assert 0 <= x1 <= x2 <= first.shape[1] and 0 <= y1 <= y2 <= first.shape[0]
    # Drawing changed the first frame inside its people's boxes (beyond JPEG noise).
    assert np.abs(drawn.astype(int) - first.astype(int)).max() > 60


def test_a_missing_video_fails_before_the_model_loads(tmp_path, densepose_weights):
    with pytest.raises(DataError, match="missing.mp4"):
        densepose_video_demo(tiny_cfg(densepose_weights, "MODEL.WEIGHTS", "unused.pth"),
                             demo_args(tmp_path / "out", video=str(tmp_path / "missing.mp4")))
    assert not (tmp_path / "out").exists()
