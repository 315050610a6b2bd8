"""LCR-Net's demo (the release's demo.py / demo2.py, lcrnet.md 7): people with 2D and 3D poses found in an image,
the images of a folder, or a video's frames, each drawn as the release's two-panel figure and listed in a json.

Images: ``<output>/<name>_lcrnet.png`` per image (<name>: the image's path relative to the inputs' common folder,
without extension) and ``<output>/lcrnet_results.json``
({"images": [{"file_name", "height", "width", "people": [person, ...]}]}). Videos (also through
tools/inference_demo.py): the figures of every processed frame as ``<video stem>_lcrnet/lcrnet_%08d.jpg`` and
``<video stem>_lcrnet.avi``, and ``<video stem>_lcrnet.json`` ({"video", "fps", "frame_step", "frames":
[{"frame", "image", "people"}]}). A person is {"score", "bbox" [x1, y1, x2, y2], "pose2d" [[x, y] * J]
pixels, "pose3d" [[X, Y, Z] * J] metres, torso-centred, LCR axes}. A folder's files that are not decodable
images are skipped with a warning naming each one.

With a CSV file the image demo also adds one row per person to it, as the seed's demo2.py does for
self-training (lcrnet.md 5.4; tools/csv2coco.py reads it): the image path, the box int(min - 5), int(max + 5) of
the 2D joints, the 5J pose, "person". The file is rewritten atomically with the new rows after the old ones.
"""
import argparse
import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import cv2
import numpy as np
import torch
from yacs.config import CfgNode

from ...data.detection_mapper import read_image
from ...data.lcrnet_annotations import CSV_LABEL, image_size_of
from ...models.lcrnet.codec import join_poses
from ...utils.errors import DataError
from ...utils.io import atomic_write_json, atomic_write_text, require_writable_dir
from ...vis.pose3d import draw_pose_figure, write_pose_figure
from ..images import output_stems
from ..video import FrameWriter, VideoSource, open_video, process_video
from .estimator import LCRNetEstimator, Person

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")
RESULTS_FILE = "lcrnet_results.json"
FIGURE_SUFFIX = "_lcrnet.png"
# demo2.py's box around the 2D joints: pixels added on each side.
CSV_BOX_MARGIN = 5

logger = logging.getLogger(__name__)


def person_record(person: Mapping) -> Dict[str, object]:
    """One person as plain json values."""
    return {"score": float(person["score"]), "bbox": [float(v) for v in person["bbox"]],
            "pose2d": np.asarray(person["pose2d"], np.float64).tolist(),
            "pose3d": np.asarray(person["pose3d"], np.float64).tolist()}


@dataclass
class DemoOutputs:
    """What the demo wrote: figures (or the video and its frame images), the json file, skipped inputs."""

    figures: List[Path]
    json: Path
    skipped: List[str] = field(default_factory=list)
    video: Optional[Path] = None
    csv: Optional[Path] = None

    def summary(self) -> str:
        """Lines telling the user where the outputs are."""
        lines = [f"wrote {len(self.figures)} figure(s) (2D skeletons over the image, 3D poses below)"]
        lines += [f"  {path}" for path in self.figures[:5]] + (["  ..."] if len(self.figures) > 5 else [])
        if self.video is not None:
            lines.append(f"  video: {self.video}")
        lines.append(f"  people (score, bbox, pose2d pixels, pose3d metres): {self.json}")
        if self.csv is not None:
            lines.append(f"  pseudo-ground-truth rows added to: {self.csv} (tools/csv2coco.py reads it)")
        lines += [f"  skipped (not an image): {name}" for name in self.skipped]
        return "\n".join(lines)


def is_video(path: str) -> bool:
    """Whether ``path`` names a video by its extension."""
    return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def input_files(source: str) -> List[str]:
    """An image file itself, or every file of a folder, sorted (the images among them are found by decoding)."""
    if os.path.isdir(source):
        return sorted(os.path.join(source, name) for name in os.listdir(source)
                      if os.path.isfile(os.path.join(source, name)))
    if os.path.isfile(source):
        if image_size_of(source) is None:
            raise DataError(f"{source}: not an image nor a video ({', '.join(VIDEO_EXTENSIONS)})")
        return [source]
    raise DataError(f"{source}: no such image, folder or video")


def pseudo_gt_row(image_path: str, person: Mapping) -> List[str]:
    """One CSV row of demo2.py for a person (module docstring); ``int`` truncates as the seed's does."""
    pose2d = torch.as_tensor(np.asarray(person["pose2d"], np.float64))
    pose3d = torch.as_tensor(np.asarray(person["pose3d"], np.float64))
    low, high = pose2d.min(dim=0).values - CSV_BOX_MARGIN, pose2d.max(dim=0).values + CSV_BOX_MARGIN
    box = [int(low[0]), int(low[1]), int(high[0]), int(high[1])]
    return [image_path, *map(str, box), *(repr(float(v)) for v in join_poses(pose2d, pose3d)), CSV_LABEL]


def append_pseudo_gt_csv(path: str, rows: Sequence[Sequence[str]]) -> None:
    """``rows`` after the rows already in the CSV at ``path`` (if any), written atomically."""
    previous = Path(path).read_text(encoding="utf-8") if os.path.isfile(path) else ""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    atomic_write_text(path, previous + buffer.getvalue())


def run_image_demo(estimator: LCRNetEstimator, paths: Sequence[str], output_dir: str,
                   strict: bool = False, csv_path: Optional[str] = None) -> DemoOutputs:
    """The figure and people of every image among ``paths`` (module docstring); a path that is not a decodable
    image is skipped with a warning naming it (an error with ``strict``), and none being one is an error."""
    output = require_writable_dir(output_dir, "--output")
    figures, entries, skipped, rows = [], [], [], []
    for path, stem in output_stems(paths):
        try:
            image = read_image(path)
        except DataError as err:
            if strict:
                raise
            logger.warning("skipped %s: not an image (%s)", path, err)
            skipped.append(path)
            continue
        people = estimator.predict(image)
        figures.append(write_pose_figure(output / stem.parent / f"{stem.name}{FIGURE_SUFFIX}", image, people))
        entries.append({"file_name": path, "height": image.shape[0], "width": image.shape[1],
                        "people": [person_record(p) for p in people]})
        rows += [pseudo_gt_row(path, person) for person in people]
    if not entries:
        raise DataError(f"none of the {len(paths)} inputs is a decodable image (first: {paths[0] if paths else '-'})")
    json_path = output / RESULTS_FILE
    atomic_write_json(json_path, {"images": entries}, indent=1)
    if csv_path:
        append_pseudo_gt_csv(csv_path, rows)
    return DemoOutputs(figures, json_path, skipped, csv=Path(csv_path) if csv_path else None)


class LCRNetVideoWriter(FrameWriter):
    """Each processed frame's figure in the video and in ``<video stem>_lcrnet/``, its people in the json file."""

    def __init__(self, output_dir: Path, video_stem: str, fps: float) -> None:
        super().__init__(output_dir, video_stem, fps, "lcrnet")
        self.figures: List[Path] = []

    def add(self, frame_index: int, frame: np.ndarray, people: Sequence[Person]) -> None:
        """Draw the figure of the B G R ``frame`` and record its people."""
        figure = draw_pose_figure(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), people)
        image = self.write_frame(np.ascontiguousarray(figure[..., ::-1]))
        self.figures.append(self.output_dir / image)
        self.frames.append({"frame": frame_index, "image": image, "people": [person_record(p) for p in people]})

    def close(self, source: VideoSource, step: int) -> DemoOutputs:
        """Finish the video and write the json file."""
        self.finish_video()
        json_path = self.data_path(".json")
        atomic_write_json(json_path, {"video": source.path, "fps": source.fps, "frame_step": step,
                                      "frames": self.frames})
        return DemoOutputs(self.figures, json_path, video=self.video_path)


def run_video_demo(estimator: LCRNetEstimator, source: VideoSource, output_dir: str, inference_fps: float,
                   vis_threshold: float, batch_size: int, show_progress: bool = True) -> DemoOutputs:
    """People on every round(fps / inference_fps)-th frame, people scoring at most ``vis_threshold`` dropped."""
    output = require_writable_dir(output_dir, "--outputDir")

    def writer(fps: float) -> LCRNetVideoWriter:
        return LCRNetVideoWriter(output, Path(source.path).stem, fps)
    return process_video(estimator.predict_batch, source, writer, inference_fps, vis_threshold, batch_size,
                         show_progress)


def lcrnet_video_demo(cfg: CfgNode, args: argparse.Namespace) -> str:
    """tools/inference_demo.py for LCR-Net: the video demo of the parsed arguments; returns the summary."""
    video = open_video(args.videoFile)  # before the model loads, so a wrong path fails at once
    outputs = run_video_demo(LCRNetEstimator(cfg), video, args.outputDir, args.inferenceFps, args.visthre,
                             args.batchSize)
    return outputs.summary()


def lcrnet_image_demo(cfg: CfgNode, args: argparse.Namespace) -> str:
    """tools/inference_demo.py --image / --imageDir for LCR-Net: the image demo of ``args.images``."""
    return run_image_demo(LCRNetEstimator(cfg), args.images, args.outputDir, args.strict).summary()


def lcrnet_demo(cfg: CfgNode, source: str, output_dir: str, inference_fps: float = 10,
                csv_path: Optional[str] = None) -> DemoOutputs:
    """tools/lcrnet_demo.py: the image, folder or video demo of ``source`` (by what it is); images may add their
    people to the pseudo-ground-truth CSV ``csv_path``."""
    if is_video(source):
        if csv_path:
            raise DataError(f"{source}: --csv collects people of images, not of a video")
        video = open_video(source)
        return run_video_demo(LCRNetEstimator(cfg), video, output_dir, inference_fps, vis_threshold=0.0, batch_size=1)
    paths = input_files(source)  # before the model loads, so a wrong path fails at once
    return run_image_demo(LCRNetEstimator(cfg), paths, output_dir, csv_path=csv_path)
