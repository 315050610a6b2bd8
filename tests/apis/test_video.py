"""The video demo's logic with a stand-in estimator whose answers are known: frames, files, csv, json, drawing."""
import csv
import json

import cv2
import numpy as np
import pytest

from posekit.apis.dekr.video import run_video_demo
from posekit.apis.video import frame_step, open_video
from posekit.data.metadata import KeypointSet
from posekit.utils.errors import DataError

TWO_JOINTS = KeypointSet(name="two_joints", joint_names=("head", "foot"), flip_pairs=(), sigmas=(0.1, 0.1),
                         skeleton=((0, 1),))
BLUE_BGR = (255, 0, 0)
WIDTH, HEIGHT, FPS, FRAMES = 64, 48, 6.0, 6


class StandInEstimator:
    """Answers the k-th image with a confident person at x = 10 + k and a doubtful one at (50, 40)."""

    keypoint_set = TWO_JOINTS

    def __init__(self):
        self.images = []

    def predict_batch(self, images):
        answers = []
        for image in images:
            k = len(self.images)
            self.images.append(image)
            confident = np.array([[10 + k, 10, 0.9], [10 + k, 30.126, 0.8]], np.float32)
            doubtful = np.array([[50, 40, 0.2], [55, 40, 0.2]], np.float32)
            answers.append([{"keypoints": confident, "score": 0.9}, {"keypoints": doubtful, "score": 0.2}])
        return answers


@pytest.fixture
def blue_video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    for _ in range(FRAMES):
        writer.write(np.full((HEIGHT, WIDTH, 3), BLUE_BGR, np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("fps, inference_fps, step", [(5, 10, 1), (30, 10, 3), (30, 7, 4), (6, 3, 2), (5, 5, 1)])
def test_frame_step_is_the_rounded_rate_ratio_and_at_least_one(fps, inference_fps, step):
    assert frame_step(fps, inference_fps) == step


def test_non_positive_inference_rate_is_rejected():
    with pytest.raises(DataError, match="inferenceFps"):
        frame_step(30, 0)


def test_every_second_frame_is_processed_and_written(blue_video, tmp_path, video_fps_and_frames):
    output = tmp_path / "out"
    # An earlier run's outputs of another video, and of this one, are never deleted.
    (output / "other_pose").mkdir(parents=True)
    (output / "other_pose" / "pose_00000000.jpg").write_bytes(b"other video")
    (output / "clip_pose").mkdir(parents=True)
    (output / "clip_pose" / "pose_00000099.jpg").write_bytes(b"earlier run")
    estimator = StandInEstimator()
    outputs = run_video_demo(estimator, open_video(str(blue_video)), str(output), inference_fps=3,
                             vis_threshold=0.5, show_progress=False)

    assert outputs.frames == 3 and len(estimator.images) == 3
    # The estimator sees RGB: the blue BGR frames have their strong channel last.
    assert all(image[..., 2].mean() > 200 and image[..., 0].mean() < 50 for image in estimator.images)
    assert outputs.video == output / "clip_pose.avi"
    fps, frames = video_fps_and_frames(outputs.video)
    assert (fps, frames) == (pytest.approx(3.0), 3)
    assert sorted(p.name for p in (output / "clip_pose").iterdir()) == \
        [f"pose_{i:08d}.jpg" for i in range(3)] + ["pose_00000099.jpg"]
    assert (output / "other_pose" / "pose_00000000.jpg").read_bytes() == b"other video"
    assert (outputs.csv.name, outputs.json.name) == ("clip_pose.csv", "clip_pose.json")

    with open(outputs.csv, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["frame", "person", "score", "head_x", "head_y", "foot_x", "foot_y"]
    assert [[float(v) for v in row] for row in rows[1:]] == [
        [0, 0, 0.9, 10, 10, 10, 30.13], [2, 0, 0.9, 11, 10, 11, 30.13], [4, 0, 0.9, 12, 10, 12, 30.13]]

    record = json.loads(outputs.json.read_text())
    assert record["keypoint_names"] == ["head", "foot"] and record["frame_step"] == 2
    assert [frame["frame"] for frame in record["frames"]] == [0, 2, 4]
    assert [frame["image"] for frame in record["frames"]] == [f"clip_pose/pose_{i:08d}.jpg" for i in range(3)]
    people = record["frames"][1]["people"]
    assert len(people) == 1 and people[0]["score"] == pytest.approx(0.9)
    assert np.allclose(people[0]["keypoints"], [[11, 10, 0.9], [11, 30.126, 0.8]])

    drawn = cv2.imread(str(output / "clip_pose" / "pose_00000001.jpg")).astype(int)
    blue, red = drawn[..., 0], drawn[..., 2]
    assert red[10, 11] > 200 and blue[10, 11] < 80  # the confident person's head, in the limb's red
    assert blue[40, 50] > 200 and red[40, 50] < 80  # the dropped person leaves the frame blue


def test_empty_video_fails_before_touching_the_outputs(tmp_path):
    path = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    writer.release()
    output = tmp_path / "out"
    with pytest.raises(DataError, match="empty.avi"):
        run_video_demo(StandInEstimator(), open_video(str(path)), str(output), show_progress=False)
    assert not output.exists()


def test_unreadable_and_missing_videos_name_the_file(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    with pytest.raises(DataError, match="broken.mp4"):
        open_video(str(broken))
    with pytest.raises(DataError, match="not found"):
        open_video(str(tmp_path / "missing.mp4"))
