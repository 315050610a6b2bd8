"""What tools/inference_demo.py does for every family: sample a video's frames, run the family's estimator on
batches of them, and let a ``FrameWriter`` draw and record each processed frame (a video, images and files).
"""
import math
import os
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..utils.errors import DataError
from ..utils.io import atomic_write_bytes


@dataclass(frozen=True)
class VideoSource:
    """An opened video: its capture handle, frame rate and (possibly approximate) frame count."""

    path: str
    capture: cv2.VideoCapture
    fps: float
    frame_count: int


def open_video(path: str) -> VideoSource:
    """Open ``path`` with OpenCV; a missing, unreadable or rate-less video raises DataError naming it."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: video file not found")
    # FFmpeg would print its own lines next to ours; set OPENCV_FFMPEG_LOGLEVEL yourself to see them.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video")
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not math.isfinite(fps) or fps <= 0:
        capture.release()
        raise DataError(f"{path}: the video reports no frame rate ({fps})")
    return VideoSource(path, capture, fps, max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0))


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode a B G R image by the path's extension and write it atomically (DataError when OpenCV cannot)."""
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise DataError(f"{path}: OpenCV cannot encode the image")
    atomic_write_bytes(path, encoded.tobytes())


def frame_step(fps: float, inference_fps: float) -> int:
    """Process every ``round(fps / inference_fps)``-th frame, at least every frame."""
    if inference_fps <= 0:
        raise DataError(f"--inferenceFps must be positive, got {inference_fps}")
    return max(1, round(fps / inference_fps))


def sampled_frames(source: VideoSource, step: int) -> Iterator[Tuple[int, np.ndarray]]:
    """(frame index, BGR frame) of every ``step``-th frame; an empty video raises DataError."""
    index = 0
    while True:
        ok, frame = source.capture.read()
        if not ok:
            break
        if index % step == 0:
            yield index, frame
        index += 1
    if index == 0:
        raise DataError(f"{source.path}: the video has no readable frames")


def batches(items: Iterator, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    while True:
        chunk = list(islice(items, size))
        if not chunk:
            return
        yield chunk


class FrameWriter:
    """Writes drawn frames as ``<video stem>_<name>/<name>_%08d.jpg`` and ``<video stem>_<name>.avi`` (MJPG,
    renamed into place when finished); a family's writer adds its own records in ``add`` and files (named by
    ``data_path``) in ``close``. Every output carries the video's name and replaces an earlier run's file of
    the same name atomically; nothing else in the folder is touched."""

    def __init__(self, output_dir: Path, video_stem: str, fps: float, name: str) -> None:
        self.output_dir = output_dir
        self.name = name
        self.stem = f"{video_stem}_{name}"
        self.image_dir = output_dir / self.stem
        self.image_dir.mkdir(parents=True, exist_ok=True)
        self.video_path = output_dir / f"{self.stem}.avi"
        # OpenCV picks the container from the extension, so the temporary name keeps '.avi'.
        self.partial_video = output_dir / f".{self.stem}.partial.avi"
        self.fps = fps
        self.video: Optional[cv2.VideoWriter] = None
        self.frames: List[dict] = []

    def write_frame(self, drawn: np.ndarray) -> str:
        """Add a drawn B G R frame to the images and the video; return the image's path relative to the output."""
        image_name = f"{self.name}_{len(self.frames):08d}.jpg"
        write_image(self.image_dir / image_name, drawn)
        self._video_for(drawn).write(drawn)
        return f"{self.stem}/{image_name}"

    def data_path(self, extension: str) -> Path:
        """``<output>/<video stem>_<name><extension>``: where the family's records of this video go."""
        return self.output_dir / f"{self.stem}{extension}"

    def _video_for(self, frame: np.ndarray) -> cv2.VideoWriter:
        if self.video is None:
            height, width = frame.shape[:2]
            self.video = cv2.VideoWriter(str(self.partial_video), cv2.VideoWriter_fourcc(*"MJPG"), self.fps,
                                         (width, height))
            if not self.video.isOpened():
                raise DataError(f"{self.partial_video}: OpenCV cannot write an MJPG video here")
        return self.video

    def finish_video(self) -> None:
        """Close the video and move it to its final name."""
        if self.video is not None:
            self.video.release()
            os.replace(self.partial_video, self.video_path)

    def add(self, frame_index: int, frame: np.ndarray, people: Sequence[Any]) -> None:
        """Draw and record one processed frame's people."""
        raise NotImplementedError

    def close(self, source: VideoSource, step: int) -> Any:
        """Finish the outputs; return what the family reports."""
        raise NotImplementedError


def process_video(predict_batch: Callable[[List[np.ndarray]], List[Sequence[dict]]], source: VideoSource,
                  make_writer: Callable[[float], FrameWriter], inference_fps: float, vis_threshold: float,
                  batch_size: int, show_progress: bool = True) -> Any:
    """Run ``predict_batch`` on every round(fps / inference_fps)-th frame, ``batch_size`` RGB frames at a time, and
    hand each frame with its people scoring above ``vis_threshold`` to the writer ``make_writer(output fps)``
    builds; return ``writer.close``'s result. The output video plays in real time. Releases ``source``."""
    try:
        if batch_size < 1:
            raise DataError(f"--batchSize must be at least 1, got {batch_size}")
        step = frame_step(source.fps, inference_fps)
        frames = sampled_frames(source, step)
        frames = chain([next(frames)], frames)  # an empty video fails here, before any output is touched
        writer = make_writer(source.fps / step)
        total = math.ceil(source.frame_count / step) if source.frame_count else None
        with tqdm(total=total, desc="video", unit="frame", disable=not show_progress) as progress:
            for chunk in batches(frames, batch_size):
                rgb = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for _, frame in chunk]
                for (index, frame), people in zip(chunk, predict_batch(rgb)):
                    writer.add(index, frame, [p for p in people if p["score"] > vis_threshold])
                progress.update(len(chunk))
        return writer.close(source, step)
    finally:
        source.capture.release()
