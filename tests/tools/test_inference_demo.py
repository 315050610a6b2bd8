"""tools/inference_demo.py end to end on data/samples/video/street.mp4 (5 frames at 5 fps) with random tiny weights."""
import csv
import json
import os
import subprocess
import sys

import cv2

from posekit.data.metadata import COCO

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_CFG = "experiments/samples/dekr_tiny_coco.yaml"
VIDEO = "data/samples/video/street.mp4"
FAST = ["DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "32", "TEST.FLIP_TEST", "False"]


def run_demo(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "lib"))
    return subprocess.run([sys.executable, "tools/inference_demo.py", "--cfg", TINY_CFG, *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True)


def test_every_frame_of_the_sample_video_is_processed_and_written(tmp_path, tiny_dekr_weights, video_fps_and_frames):
    weights = tiny_dekr_weights
    output = tmp_path / "out"
    # 5 fps video, default --inferenceFps 10: every frame, no error (the official tool refuses this).
    run = run_demo("--videoFile", VIDEO, "--outputDir", output, "TEST.MODEL_FILE", weights, *FAST)
    assert run.returncode == 0, run.stderr
    assert "processed 5 frames" in run.stdout

    fps, frames = video_fps_and_frames(output / "street_pose.avi")
    assert frames == 5 and abs(fps - 5.0) < 1e-6
    assert sorted(os.listdir(output / "street_pose")) == [f"pose_{i:08d}.jpg" for i in range(5)]
    assert cv2.imread(str(output / "street_pose" / "pose_00000000.jpg")).shape == (540, 960, 3)

    with open(output / "street_pose.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    joint_columns = [f"{name}_{axis}" for name in COCO.joint_names for axis in "xy"]
    assert rows[0] == ["frame", "person", "score"] + joint_columns
    assert all(len(row) == 3 + 34 for row in rows[1:])

    record = json.loads((output / "street_pose.json").read_text())
    assert [frame["frame"] for frame in record["frames"]] == [0, 1, 2, 3, 4]
    people_per_frame = [len(frame["people"]) for frame in record["frames"]]
    assert sum(people_per_frame) == len(rows) - 1
    assert [int(row[0]) for row in rows[1:]] == [i for i, n in enumerate(people_per_frame) for _ in range(n)]


def test_unreadable_video_is_one_error_line_and_exit_2(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    run = run_demo("--videoFile", broken, "--outputDir", tmp_path / "out", "TEST.MODEL_FILE", "unused.pth")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: ") and "broken.mp4" in run.stderr
    assert not (tmp_path / "out").exists()
