"""Shared test fixtures: paths to the repository, its sample data and its experiment files."""
from pathlib import Path

import cv2
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (tools/, experiments/, data/samples/ hang off it)."""
    return REPO


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The bundled sample data sets."""
    return REPO / "data" / "samples"


@pytest.fixture(scope="module")
def one_thread():
    """Run torch single-threaded: bitwise comparisons need a fixed thread count, and on a busy 2-core
    machine one thread is many times faster than two competing ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_dekr_weights(tmp_path_factory) -> Path:
    """Random weights of experiments/samples/dekr_tiny_coco.yaml; a raised heatmap bias makes every image
    yield people, so the whole decoding pipeline runs."""
    from posekit.config import load_cfg
    from posekit.models import build_model

    torch.manual_seed(0)
    state = build_model(load_cfg(str(REPO / "experiments/samples/dekr_tiny_coco.yaml"))).state_dict()
    state["head_heatmap.1.bias"] += 0.3
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    torch.save(state, path)
    return path


def count_video_frames(path) -> tuple:
    """(frames per second, frame count) of a video file, by decoding every frame."""
    capture = cv2.VideoCapture(str(path))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return fps, frames


@pytest.fixture(scope="session")
def video_fps_and_frames():
    """The function (path) -> (frames per second, frame count) of a written video."""
    return count_video_frames
