"""What tools/inference_demo.py does for DEKR on images: per image ``<name>_pose.jpg`` (drawn), ``<name>_pose.csv``
and ``<name>_pose.json`` under the output folder, ``<name>`` being the image's path relative to the inputs'
common folder. Each file replaces an earlier run's atomically; unreadable images are skipped with a warning
and counted (``--strict``: the first one is an error)."""
import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ...data.image_io import read_rgb
from ...utils.errors import DataError
from ...utils.io import atomic_write_json, atomic_write_text, require_writable_dir
from ...vis import draw_poses
from ..images import output_stems
from ..video import batches, write_image
from .estimator import DekrEstimator, Prediction
from .video import csv_rows, csv_text, json_people

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageDemoOutputs:
    """How many images were written and which were skipped (path, reason)."""

    written: int
    skipped: List[Tuple[str, str]]


def write_image_outputs(estimator: DekrEstimator, path: str, image: np.ndarray, output: Path,
                        people: Sequence[Prediction], vis_threshold: float) -> None:
    """The drawn image, csv and json of one input image (RGB ``image`` read from ``path``; ``output``: the
    path without the suffix)."""
    poses = [person["keypoints"] for person in people]
    drawn = draw_poses(image[..., ::-1], poses, estimator.keypoint_set, vis_threshold)
    write_image(output.with_name(output.name + ".jpg"), drawn)
    atomic_write_text(output.with_name(output.name + ".csv"), csv_text(estimator.keypoint_set, csv_rows(0, people)))
    atomic_write_json(output.with_name(output.name + ".json"),
                      {"image": path, "keypoint_names": list(estimator.keypoint_set.joint_names),
                       "people": json_people(people)}, indent=1)


def run_image_demo(estimator: DekrEstimator, paths: Sequence[str], output_dir: str, vis_threshold: float = 0.0,
                   batch_size: int = 1, strict: bool = False) -> ImageDemoOutputs:
    """Estimate poses in every image and write its outputs; people scoring at most ``vis_threshold`` are dropped."""
    skipped: List[Tuple[str, str]] = []
    written = 0
    for chunk in batches(iter(output_stems(paths)), batch_size):
        readable = []  # (path, stem, image): each file is read once, for the network and for drawing
        for path, stem in chunk:
            try:
                readable.append((path, stem, read_rgb(path)))
            except DataError as err:
                if strict:
                    raise
                logger.warning("skipped %s", err)  # the reader's message names the file
                skipped.append((path, str(err)))
        results = estimator.predict_batch([image for _, _, image in readable])
        for (path, stem, image), people in zip(readable, results):
            output = Path(output_dir) / stem.parent / f"{stem.name}_pose"
            kept = [person for person in people if person["score"] > vis_threshold]
            write_image_outputs(estimator, path, image, output, kept, vis_threshold)
            written += 1
    return ImageDemoOutputs(written, skipped)


def dekr_image_demo(cfg, args: argparse.Namespace) -> str:
    """tools/inference_demo.py for DEKR on ``args.images``; return the summary."""
    require_writable_dir(args.outputDir, "--outputDir")
    outputs = run_image_demo(DekrEstimator(cfg), args.images, args.outputDir, args.visthre, args.batchSize,
                             args.strict)
    if not outputs.written:
        raise DataError(f"none of the {len(args.images)} input images could be read (first: "
                        f"{outputs.skipped[0][1]})")
    skipped = f", skipped {len(outputs.skipped)} unreadable" if outputs.skipped else ""
    return (f"processed {outputs.written} of {len(args.images)} images{skipped}\n"
            f"  outputs: {args.outputDir}/<image name>_pose.jpg, .csv, .json")
