"""What tools/inference_demo.py does for DensePose R-CNN: chart results on every n-th video frame, drawn over the
frames (fine labels, U / V iso-lines, boxes) and written as a video, images and a per-frame json file.

The frame loop and video writing are ``posekit.apis.video``'s, as for DEKR's demo. The json holds,
per processed frame, each person as detectron2's DensePose result record (densepose.md 6.5) with the frame index
as image_id: bbox x, y, w, h, score and the PNG-packed I / U / V array.
"""
import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from yacs.config import CfgNode

from ...evaluation.densepose_results import to_detectron2_record
from ...utils.io import atomic_write_json
from ..video import FrameWriter, VideoSource, open_video, process_video
from .apply_net import VISUALIZERS
from .estimator import DensePoseEstimator, Person

FRAME_VISUALIZATIONS = ("dp_segm", "dp_contour", "bbox")


@dataclass(frozen=True)
class DensePoseVideoOutputs:
    """Where the demo wrote its results and how many frames it processed."""

    video: Path
    image_dir: Path
    json: Path
    frames: int


def draw_people(frame: np.ndarray, people: Sequence[Person]) -> np.ndarray:
    """The B G R frame with each person's labels, U / V iso-lines and box drawn over it."""
    for name in FRAME_VISUALIZATIONS:
        frame = VISUALIZERS[name](frame, people)
    return frame


class DensePoseVideoWriter(FrameWriter):
    """Each processed frame: drawn in the video and in ``densepose/``, its people in the json file."""

    def __init__(self, output_dir: Path, video_stem: str, fps: float) -> None:
        super().__init__(output_dir, video_stem, fps, "densepose")

    def add(self, frame_index: int, frame: np.ndarray, people: Sequence[Person]) -> None:
        """Draw ``people`` on the B G R ``frame`` and record them."""
        image = self.write_frame(draw_people(frame, people))
        self.frames.append({"frame": frame_index, "image": image,
                            "people": [to_detectron2_record(frame_index, person) for person in people]})

    def close(self, source: VideoSource, step: int) -> DensePoseVideoOutputs:
        """Finish the video and write the json file."""
        self.finish_video()
        json_path = self.data_path(".json")
        atomic_write_json(json_path, {"video": source.path, "fps": source.fps, "frame_step": step,
                                      "frames": self.frames})
        return DensePoseVideoOutputs(self.video_path, self.image_dir, json_path, len(self.frames))


def run_densepose_video(estimator: DensePoseEstimator, source: VideoSource, output_dir: str, inference_fps: float,
                        vis_threshold: float, batch_size: int, show_progress: bool = True) -> DensePoseVideoOutputs:
    """DensePose on every round(fps / inference_fps)-th frame, ``batch_size`` frames at a time; people scoring at
    most ``vis_threshold`` are dropped. The video plays at fps / step. Releases ``source``."""
    def writer(fps: float) -> DensePoseVideoWriter:
        return DensePoseVideoWriter(Path(output_dir), Path(source.path).stem, fps)
    return process_video(estimator.predict_batch, source, writer, inference_fps, vis_threshold, batch_size,
                         show_progress)


def densepose_video_demo(cfg: CfgNode, args: argparse.Namespace) -> str:
    """tools/inference_demo.py for DensePose R-CNN: run the demo the parsed arguments describe; return the summary."""
    video = open_video(args.videoFile)  # before the model loads, so a wrong path fails at once
    outputs = run_densepose_video(DensePoseEstimator(cfg), video, args.outputDir, args.inferenceFps, args.visthre,
                                  args.batchSize)
    return (f"processed {outputs.frames} frames of {args.videoFile}\n"
            f"  video:  {outputs.video}\n  images: {outputs.image_dir}/\n  json:   {outputs.json}")
