"""What tools/inference_demo.py does: poses on every n-th video frame, written as a video, images, csv and json."""
import csv
import io
import math
import os
import shutil
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ...data.metadata import KeypointSet
from ...utils.errors import DataError
from ...utils.io import atomic_write_json, atomic_write_text
from ...vis import draw_poses
from ..family import FRAMES_PER_BATCH
from .estimator import DekrEstimator, Prediction

CSV_DECIMALS = 2


@dataclass(frozen=True)
class VideoSource:
    """An opened video: its capture handle, frame rate and (possibly approximate) frame count."""

    path: str
    capture: cv2.VideoCapture
    fps: float
    frame_count: int


@dataclass(frozen=True)
class VideoDemoOutputs:
    """Where the demo wrote its results and how many frames it processed."""

    video: Path
    pose_dir: Path
    csv: Path
    json: Path
    frames: int


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


def csv_header(keypoint_set: KeypointSet) -> List[str]:
    """``frame, person, score`` then ``<joint>_x, <joint>_y`` per joint."""
    return ["frame", "person", "score"] + [f"{name}_{axis}" for name in keypoint_set.joint_names for axis in "xy"]


def csv_rows(frame: int, people: Sequence[Prediction]) -> List[list]:
    """One csv row per person of one frame."""
    return [[frame, rank, round(person["score"], 4)]
            + [round(float(v), CSV_DECIMALS) for v in np.asarray(person["keypoints"])[:, :2].reshape(-1)]
            for rank, person in enumerate(people)]


def json_people(people: Sequence[Prediction]) -> List[dict]:
    """People of one frame as plain JSON values."""
    return [{"score": person["score"], "keypoints": np.asarray(person["keypoints"]).tolist()} for person in people]


class PoseVideoWriter:
    """Collects each processed frame: a drawn frame in the video and in ``pose/``, its people in csv and json."""

    def __init__(self, output_dir: Path, video_stem: str, fps: float, keypoint_set: KeypointSet,
                 vis_threshold: float) -> None:
        self.output_dir = output_dir
        self.pose_dir = output_dir / "pose"
        # Images of an earlier run would mix with this one's.
        shutil.rmtree(self.pose_dir, ignore_errors=True)
        self.pose_dir.mkdir(parents=True)
        self.video_path = output_dir / f"{video_stem}_pose.avi"
        # OpenCV picks the container from the extension, so the temporary name keeps '.avi'.
        self.partial_video = output_dir / f".{video_stem}_pose.partial.avi"
        self.fps = fps
        self.keypoint_set = keypoint_set
        self.vis_threshold = vis_threshold
        self.video = None
        self.rows: List[list] = []
        self.frames: List[dict] = []

    def add(self, frame_index: int, frame: np.ndarray, people: Sequence[Prediction]) -> None:
        """Draw ``people`` on the BGR ``frame`` and record them."""
        drawn = draw_poses(frame, [person["keypoints"] for person in people], self.keypoint_set, self.vis_threshold)
        image_name = f"pose_{len(self.frames):08d}.jpg"
        if not cv2.imwrite(str(self.pose_dir / image_name), drawn):
            raise DataError(f"{self.pose_dir / image_name}: cannot write the image")
        self._video_for(drawn).write(drawn)
        self.rows.extend(csv_rows(frame_index, people))
        self.frames.append({"frame": frame_index, "image": f"pose/{image_name}", "people": json_people(people)})

    def _video_for(self, frame: np.ndarray) -> cv2.VideoWriter:
        if self.video is None:
            height, width = frame.shape[:2]
            self.video = cv2.VideoWriter(str(self.partial_video), cv2.VideoWriter_fourcc(*"MJPG"), self.fps,
                                         (width, height))
            if not self.video.isOpened():
                raise DataError(f"{self.partial_video}: OpenCV cannot write an MJPG video here")
        return self.video

    def close(self, source: VideoSource, step: int) -> VideoDemoOutputs:
        """Finish the video and write the csv and json files."""
        if self.video is not None:
            self.video.release()
            os.replace(self.partial_video, self.video_path)
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([csv_header(self.keypoint_set)] + self.rows)
        csv_path, json_path = self.output_dir / "pose-data.csv", self.output_dir / "pose-data.json"
        atomic_write_text(csv_path, text.getvalue())
        atomic_write_json(json_path, {"video": source.path, "fps": source.fps, "frame_step": step,
                                      "keypoint_names": list(self.keypoint_set.joint_names),
                                      "frames": self.frames}, indent=1)
        return VideoDemoOutputs(self.video_path, self.pose_dir, csv_path, json_path, len(self.frames))


def run_video_demo(estimator: DekrEstimator, source: VideoSource, output_dir: str, inference_fps: float = 10,
                   vis_threshold: float = 0.0, show_progress: bool = True,
                   batch_size: int = FRAMES_PER_BATCH) -> VideoDemoOutputs:
    """Estimate poses on every round(fps / inference_fps)-th frame of ``source`` and write the demo's outputs.

    Frames go to the network ``batch_size`` at a time. People scoring at most ``vis_threshold`` are dropped
    and joints scoring below it are not drawn. The output video plays at fps / step, i.e. in real time.
    Releases ``source``.
    """
    try:
        if batch_size < 1:
            raise DataError(f"--batchSize must be at least 1, got {batch_size}")
        return _process_video(estimator, source, Path(output_dir), frame_step(source.fps, inference_fps),
                              vis_threshold, show_progress, batch_size)
    finally:
        source.capture.release()


def _process_video(estimator: DekrEstimator, source: VideoSource, output_dir: Path, step: int,
                   vis_threshold: float, show_progress: bool, batch_size: int) -> VideoDemoOutputs:
    frames = sampled_frames(source, step)
    frames = chain([next(frames)], frames)  # an empty video fails here, before any output is touched
    writer = PoseVideoWriter(output_dir, Path(source.path).stem, source.fps / step, estimator.keypoint_set,
                             vis_threshold)
    total = math.ceil(source.frame_count / step) if source.frame_count else None
    with tqdm(total=total, desc="video", unit="frame", disable=not show_progress) as progress:
        for chunk in batches(frames, batch_size):
            rgb = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for _, frame in chunk]
            for (index, frame), people in zip(chunk, estimator.predict_batch(rgb)):
                writer.add(index, frame, [p for p in people if p["score"] > vis_threshold])
            progress.update(len(chunk))
    return writer.close(source, step)


def dekr_video_demo(cfg, args) -> str:
    """tools/inference_demo.py for DEKR: run the demo the parsed arguments describe; return the summary."""
    video = open_video(args.videoFile)  # before the model loads, so a wrong path fails at once
    outputs = run_video_demo(DekrEstimator(cfg), video, args.outputDir, args.inferenceFps, args.visthre,
                             show_progress=cfg.TEST.LOG_PROGRESS, batch_size=args.batchSize)
    return (f"processed {outputs.frames} frames of {args.videoFile}\n"
            f"  video:  {outputs.video}\n  images: {outputs.pose_dir}/\n"
            f"  csv:    {outputs.csv}\n  json:   {outputs.json}")
