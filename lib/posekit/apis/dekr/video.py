"""What tools/inference_demo.py does for DEKR: poses on every n-th video frame, written as a video, images, csv
and json named after the video (the frame loop and video writing are ``posekit.apis.video``'s), or on images,
each written as ``<name>_pose.jpg``, ``.csv`` and ``.json``."""
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

from ...data.metadata import KeypointSet
from ...utils.io import atomic_write_json, atomic_write_text, require_writable_dir
from ...vis import draw_poses
from ..family import FRAMES_PER_BATCH
from ..video import FrameWriter, VideoSource, open_video, process_video
from .estimator import DekrEstimator, Prediction

CSV_DECIMALS = 2


@dataclass(frozen=True)
class VideoDemoOutputs:
    """Where the demo wrote its results and how many frames it processed."""

    video: Path
    pose_dir: Path
    csv: Path
    json: Path
    frames: int


def csv_header(keypoint_set: KeypointSet) -> List[str]:
    """``frame, person, score`` then ``<joint>_x, <joint>_y`` per joint."""
    return ["frame", "person", "score"] + [f"{name}_{axis}" for name in keypoint_set.joint_names for axis in "xy"]


def csv_text(keypoint_set: KeypointSet, rows: List[list]) -> str:
    """The header and ``rows`` as csv text."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([csv_header(keypoint_set)] + rows)
    return text.getvalue()


def csv_rows(frame: int, people: Sequence[Prediction]) -> List[list]:
    """One csv row per person of one frame."""
    return [[frame, rank, round(person["score"], 4)]
            + [round(float(v), CSV_DECIMALS) for v in np.asarray(person["keypoints"])[:, :2].reshape(-1)]
            for rank, person in enumerate(people)]


def json_people(people: Sequence[Prediction]) -> List[dict]:
    """People of one frame as plain JSON values."""
    return [{"score": person["score"], "keypoints": np.asarray(person["keypoints"]).tolist()} for person in people]


class PoseVideoWriter(FrameWriter):
    """Each processed frame: drawn in the video and in ``<video stem>_pose/``, its people in csv and json."""

    def __init__(self, output_dir: Path, video_stem: str, fps: float, keypoint_set: KeypointSet,
                 vis_threshold: float) -> None:
        super().__init__(output_dir, video_stem, fps, "pose")
        self.keypoint_set = keypoint_set
        self.vis_threshold = vis_threshold
        self.rows: List[list] = []

    def add(self, frame_index: int, frame: np.ndarray, people: Sequence[Prediction]) -> None:
        """Draw ``people`` on the BGR ``frame`` and record them."""
        drawn = draw_poses(frame, [person["keypoints"] for person in people], self.keypoint_set, self.vis_threshold)
        image = self.write_frame(drawn)
        self.rows.extend(csv_rows(frame_index, people))
        self.frames.append({"frame": frame_index, "image": image, "people": json_people(people)})

    def close(self, source: VideoSource, step: int) -> VideoDemoOutputs:
        """Finish the video and write the csv and json files."""
        self.finish_video()
        csv_path, json_path = self.data_path(".csv"), self.data_path(".json")
        atomic_write_text(csv_path, csv_text(self.keypoint_set, self.rows))
        atomic_write_json(json_path, {"video": source.path, "fps": source.fps, "frame_step": step,
                                      "keypoint_names": list(self.keypoint_set.joint_names),
                                      "frames": self.frames}, indent=1)
        return VideoDemoOutputs(self.video_path, self.image_dir, csv_path, json_path, len(self.frames))


def run_video_demo(estimator: DekrEstimator, source: VideoSource, output_dir: str, inference_fps: float = 10,
                   vis_threshold: float = 0.0, show_progress: bool = True,
                   batch_size: int = FRAMES_PER_BATCH) -> VideoDemoOutputs:
    """Estimate poses on every round(fps / inference_fps)-th frame of ``source`` and write the demo's outputs.

    Frames go to the network ``batch_size`` at a time. People scoring at most ``vis_threshold`` are dropped
    and joints scoring below it are not drawn. The output video plays at fps / step, i.e. in real time.
    Releases ``source``.
    """
    def writer(fps: float) -> PoseVideoWriter:
        return PoseVideoWriter(Path(output_dir), Path(source.path).stem, fps, estimator.keypoint_set, vis_threshold)
    return process_video(estimator.predict_batch, source, writer, inference_fps, vis_threshold, batch_size,
                         show_progress)


def dekr_video_demo(cfg, args) -> str:
    """tools/inference_demo.py for DEKR: run the demo the parsed arguments describe; return the summary."""
    video = open_video(args.videoFile)  # before the model loads, so a wrong path fails at once
    require_writable_dir(args.outputDir, "--outputDir")
    outputs = run_video_demo(DekrEstimator(cfg), video, args.outputDir, args.inferenceFps, args.visthre,
                             show_progress=cfg.TEST.LOG_PROGRESS, batch_size=args.batchSize)
    return (f"processed {outputs.frames} frames of {args.videoFile}\n"
            f"  video:  {outputs.video}\n  images: {outputs.pose_dir}/\n"
            f"  csv:    {outputs.csv}\n  json:   {outputs.json}")
