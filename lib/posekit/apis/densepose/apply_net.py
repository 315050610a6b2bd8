"""What tools/apply_net.py does (densepose.md 7): DensePose R-CNN on a file, folder or glob of images, either
dumped as plain files or drawn over the greyed images.

``dump`` writes, instead of the official pickle, one ``<stem>.NNNN.npz`` per image (boxes (N, 4) float32 x1, y1,
x2, y2; scores (N,) float32; labels_K uint8 (h, w) and uv_K float32 (2, h, w) of detection K, by decreasing score;
keypoints (N, 17, 3) float32 x, y, score for models that predict them, KTN / AMANet) next to a json index
``<output>`` listing each image with its npz name, size, boxes and scores. ``show`` writes one PNG per image; NNNN
is the image's 1-based position, inserted before the extension as the official tool does.
"""
import io
import os
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import cv2
import numpy as np
from yacs.config import CfgNode

from ...config import load_cfg
from ...data.image_io import read_rgb
from ...utils.errors import ConfigError, DataError
from ...utils.io import PathLike, atomic_write, atomic_write_json
from ...vis.densepose import (draw_bbox, draw_dp_contour, draw_dp_segm, draw_dp_u, draw_dp_v, grey_background,
                              write_png)
from .estimator import DensePoseEstimator, Person

DEFAULT_MIN_SCORE = 0.8
VISUALIZERS: Dict[str, Callable[[np.ndarray, Sequence[Person]], np.ndarray]] = {
    "bbox": draw_bbox, "dp_segm": draw_dp_segm, "dp_u": draw_dp_u, "dp_v": draw_dp_v, "dp_contour": draw_dp_contour}


def visualizer_names(spec: str) -> List[str]:
    """The comma-separated visualisations of ``spec``, checked against the known ones."""
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in VISUALIZERS]
    if not names or unknown:
        raise ConfigError(f"--visualizations: unknown '{','.join(unknown)}'; choose from {', '.join(VISUALIZERS)}")
    return names


def apply_net_cfg(config: str, model: str, min_score: float, nms_thresh: float, opts: Sequence[str]) -> CfgNode:
    """The config with ``opts``, MODEL.WEIGHTS ``model`` and the test score / NMS thresholds (they win)."""
    if not os.path.isfile(model):
        raise DataError(f"{model}: model file not found")
    overrides = list(opts) + ["MODEL.WEIGHTS", model, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", str(min_score)]
    if nms_thresh is not None:
        overrides += ["MODEL.ROI_HEADS.NMS_THRESH_TEST", str(nms_thresh)]
    return load_cfg(config, overrides)


def indexed_path(output: PathLike, index: int, suffix: str = "") -> Path:
    """``output`` with the 4-digit 1-based ``index`` before its extension (or ``suffix``): out.png -> out.0001.png."""
    path = Path(output)
    return path.with_name(f"{path.stem}.{index:04d}{suffix or path.suffix}")


def people_arrays(people: Sequence[Person]) -> Dict[str, np.ndarray]:
    """The npz arrays of one image's people (module docstring)."""
    arrays = {"boxes": np.array([p["bbox"] for p in people], np.float32).reshape(-1, 4),
              "scores": np.array([p["score"] for p in people], np.float32)}
    for k, person in enumerate(people):
        arrays[f"labels_{k}"] = np.asarray(person["labels"], np.uint8)
        arrays[f"uv_{k}"] = np.asarray(person["uv"], np.float32)
    if people and "keypoints" in people[0]:
        arrays["keypoints"] = np.stack([np.asarray(p["keypoints"], np.float32) for p in people])
    return arrays


def write_npz(path: PathLike, arrays: Dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed npz (no pickled objects), atomically."""
    def write(tmp: str) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        with open(tmp, "wb") as handle:
            handle.write(buffer.getvalue())
    atomic_write(path, write)



def dump(estimator: DensePoseEstimator, images: Sequence[str], output: str) -> List[Path]:
    """Write every image's people as an npz and the json index at ``output``; returns the written paths."""
    entries, written = [], []
    for index, image_path in enumerate(images, start=1):
        rgb = read_rgb(image_path)
        people = estimator.predict(rgb)
        npz_path = indexed_path(output, index, ".npz")
        write_npz(npz_path, people_arrays(people))
        written.append(npz_path)
        entries.append({"file_name": image_path, "npz": npz_path.name, "height": rgb.shape[0], "width": rgb.shape[1],
                        "boxes_XYXY": [np.asarray(p["bbox"]).tolist() for p in people],
                        "scores": [p["score"] for p in people]})
    atomic_write_json(output, {"images": entries}, indent=1)
    return written + [Path(output)]


def show(estimator: DensePoseEstimator, images: Sequence[str], output: str,
         visualizations: Sequence[str]) -> List[Path]:
    """Draw ``visualizations`` over each greyed image and write it as ``<output stem>.NNNN.png``."""
    written = []
    for index, image_path in enumerate(images, start=1):
        rgb = read_rgb(image_path)
        canvas = grey_background(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        people = estimator.predict(rgb)
        for name in visualizations:
            canvas = VISUALIZERS[name](canvas, people)
        path = indexed_path(output, index)
        write_png(path, canvas)
        written.append(path)
    return written
