"""PoseEstimator.predict_batch: same-size images share one network batch, and the results equal predict's."""
import importlib.util

import numpy as np
import pytest
from torch import nn

from posekit.apis import PoseEstimator
from posekit.apis.dekr.video import run_video_demo
from posekit.apis.video import open_video
from posekit.config import load_cfg
from posekit.data.image_io import read_rgb
from posekit.apis.cli import run_tool

FAST = ["DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "32"]


class BatchRecorder(nn.Module):
    """The network, recording the batch size of every call."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.batch_sizes = []

    def forward(self, image):
        self.batch_sizes.append(image.shape[0])
        return self.network(image)


def make_estimator(repo_root, weights, *opts) -> PoseEstimator:
    cfg = load_cfg(str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"),
                   FAST + ["TEST.MODEL_FILE", str(weights)] + list(opts))
    return PoseEstimator(cfg)


@pytest.fixture(scope="module")
def images(samples_dir):
    """Three frames of one size (one mirrored, so not all equal) and two images of other sizes."""
    folder = samples_dir / "coco/images/val2017"
    first, second, third = (read_rgb(str(folder / name)) for name in
                            ("000000000785.jpg", "000000040083.jpg", "000000196141.jpg"))
    return [first, second, np.ascontiguousarray(first[:, ::-1]), third, first]


@pytest.mark.parametrize("opts", [["TEST.FLIP_TEST", "True"],
                                  ["TEST.FLIP_TEST", "False", "TEST.SCALE_FACTOR", "[2, 1, 0.5]"]])
def test_batch_results_equal_one_by_one_results(repo_root, tiny_dekr_weights, images, one_thread, opts):
    estimator = make_estimator(repo_root, tiny_dekr_weights, *opts)
    expected = [estimator.predict(image) for image in images]
    recorder = BatchRecorder(estimator.model)
    estimator.model = recorder
    got = estimator.predict_batch(images)
    calls_per_batch = 2 if estimator.cfg.TEST.FLIP_TEST else len(estimator.cfg.TEST.SCALE_FACTOR)
    # Sizes in first-seen order: 425x640 (three images), 333x500, 429x640.
    assert recorder.batch_sizes == [3] * calls_per_batch + [1] * calls_per_batch * 2
    assert sum(len(people) for people in expected) > 0
    for people, expected_people in zip(got, expected):
        assert len(people) == len(expected_people)
        for person, expected_person in zip(people, expected_people):
            assert person["score"] == pytest.approx(expected_person["score"], rel=1e-5, abs=1e-7)
            np.testing.assert_allclose(person["keypoints"], expected_person["keypoints"], rtol=1e-5, atol=1e-4)


def test_video_frames_go_to_the_network_batch_size_at_a_time(repo_root, tiny_dekr_weights, samples_dir,
                                                           tmp_path, one_thread):
    estimator = make_estimator(repo_root, tiny_dekr_weights, "TEST.FLIP_TEST", "False")
    recorder = BatchRecorder(estimator.model)
    estimator.model = recorder
    video = open_video(str(samples_dir / "video/street.mp4"))
    outputs = run_video_demo(estimator, video, str(tmp_path), inference_fps=5, show_progress=False, batch_size=2)
    assert outputs.frames == 5
    assert recorder.batch_sizes == [2, 2, 1]


def test_demo_rejects_a_batch_size_below_one(repo_root, tiny_dekr_weights, samples_dir, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("inference_demo", repo_root / "tools" / "inference_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    with pytest.raises(SystemExit) as caught:
        run_tool(demo.main, ["--cfg", str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"),
                             "--videoFile", str(samples_dir / "video/street.mp4"), "--outputDir", str(tmp_path),
                             "--batchSize", "0", "TEST.MODEL_FILE", str(tiny_dekr_weights)] + FAST)
    assert caught.value.code == 2
    assert "--batchSize must be at least 1, got 0" in capsys.readouterr().err
