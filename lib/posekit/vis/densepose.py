"""DensePose chart results drawn on images (densepose.md 7), with OpenCV only.

Detections are mappings with ``bbox`` (x1, y1, x2, y2), ``score``, ``labels`` uint8 (h, w) and ``uv`` float32
(2, h, w) over the box (see ``posekit.evaluation.densepose_results``).

Whole-image IUV and instance maps follow the original DensePose release (``vis_one_image``, written by
``infer_simple.py``):
* detections are painted in ascending score order; a value already painted is kept, so where boxes overlap
  the *lower*-scoring detection wins. The check is per channel: a pixel whose I is set but whose U (or V) is
  exactly 0 still takes the U (V) of a later detection, as in the release;
* each box is placed at (int(x1), int(y1)) (truncation) and spans the (h, w) of its chart result;
* U and V are scaled by 255, values above 255 set to 255 and truncated to uint8 (negatives clip to 0 here);
* the instance map gives each foreground pixel the detection's position in ascending score order plus
  ``first_index``. The release counts every detection of the image, those below the display threshold too,
  starting at 0 (so the lowest-scoring detection of an image is invisible in its map); pass the number of
  dropped detections as ``first_index`` to reproduce a release map.
The overlays (``draw_dp_*``, ``draw_bbox``) follow detectron2's ``apply_net.py show`` visualisers.
"""
from typing import Any, Iterable, List, Mapping, Sequence, Tuple

import cv2
import numpy as np

from ..evaluation.densepose_results import Detection, check_detection
from ..utils.errors import DataError
from ..utils.io import PathLike, atomic_write

NUM_CHARTS = 24
SEGM_SCALE = 255.0 / NUM_CHARTS
OVERLAY_ALPHA = 0.7
CONTOUR_LEVELS = 10
BOX_COLOUR = (0, 255, 0)  # green, B G R


def _checked(detections: Iterable[Mapping[str, Any]]) -> List[Detection]:
    return [check_detection(det, f"detection {index}") for index, det in enumerate(detections)]


def _paint_order(detections: Sequence[Detection]) -> List[int]:
    """Indices in ascending score order; ties keep input order (a stable sort)."""
    return sorted(range(len(detections)), key=lambda index: detections[index]["score"])


def _box_window(det: Detection, image_hw: Tuple[int, int]) -> Tuple[Tuple[slice, slice], Tuple[slice, slice]]:
    """(image slices, result slices) where a detection's chart result lies on the image, clipped to it."""
    height, width = det["labels"].shape
    x0, y0 = int(det["bbox"][0]), int(det["bbox"][1])
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y0 + height, image_hw[0]), min(x0 + width, image_hw[1])
    bottom, right = max(bottom, top), max(right, left)
    return ((slice(top, bottom), slice(left, right)),
            (slice(top - y0, bottom - y0), slice(left - x0, right - x0)))


def iuv_image(image_shape: Sequence[int], detections: Iterable[Mapping[str, Any]]) -> np.ndarray:
    """(H, W, 3) uint8 whole-image result: channel 0 = I, 1 = U * 255, 2 = V * 255, as the release writes it."""
    dets = _checked(detections)
    canvas = np.zeros((int(image_shape[0]), int(image_shape[1]), 3), np.float64)
    for index in _paint_order(dets):
        det = dets[index]
        into, part = _box_window(det, canvas.shape[:2])
        result = np.concatenate([det["labels"][None].astype(np.float64), det["uv"].astype(np.float64)])
        result = np.moveaxis(result, 0, -1)[part]
        window = canvas[into]
        empty = window == 0
        window[empty] = result[empty]
    canvas[..., 1:] *= 255.0
    return np.floor(np.clip(canvas, 0, 255)).astype(np.uint8)


def instance_image(image_shape: Sequence[int], detections: Iterable[Mapping[str, Any]],
                   first_index: int = 1) -> np.ndarray:
    """(H, W) uint8 instance map: 0 background, ``first_index`` + k on the foreground of the k-th detection in
    ascending score order (the lower-scoring detection keeps overlapping pixels)."""
    dets = _checked(detections)
    canvas = np.zeros((int(image_shape[0]), int(image_shape[1])), np.int64)
    for rank, index in enumerate(_paint_order(dets)):
        det = dets[index]
        into, part = _box_window(det, canvas.shape)
        window = canvas[into]
        paint = (window == 0) & (det["labels"][part] > 0)
        window[paint] = first_index + rank
    return np.clip(canvas, 0, 255).astype(np.uint8)


def write_png(path: PathLike, image: np.ndarray) -> None:
    """Write an image (B, G, R channels, or one channel) as PNG, atomically."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"{path}: cannot encode the image as PNG")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data.tobytes())
    atomic_write(path, write)


def write_iuv_outputs(stem_path: PathLike, image_shape: Sequence[int], detections: Iterable[Mapping[str, Any]],
                      first_index: int = 1) -> Tuple[str, str]:
    """Write ``<stem>_IUV.png`` and ``<stem>_INDS.png`` atomically, as the release's ``infer_simple.py`` does;
    returns their paths."""
    dets = _checked(detections)
    iuv_path, inds_path = f"{stem_path}_IUV.png", f"{stem_path}_INDS.png"
    write_png(iuv_path, iuv_image(image_shape, dets))
    write_png(inds_path, instance_image(image_shape, dets, first_index))
    return iuv_path, inds_path


def grey_background(image: np.ndarray) -> np.ndarray:
    """The image in grey, as three equal B G R channels: the background ``apply_net.py show`` draws on."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.repeat(grey[..., None], 3, axis=2)


def _draw_matrices(image: np.ndarray, detections: Iterable[Mapping[str, Any]], values, scale: float,
                   alpha: float) -> np.ndarray:
    """Colour-map ``values(det)`` (h, w) with PARULA after multiplying by ``scale``; blend it over the image with
    ``alpha`` on each detection's foreground (labels > 0)."""
    canvas = image.copy()
    for det in _checked(detections):
        into, part = _box_window(det, canvas.shape[:2])
        inside = det["labels"][part] > 0
        if not inside.any():  # e.g. a box past the image's edge: OpenCV's colour map dies (SIGFPE) on 0 columns
            continue
        matrix = np.clip(values(det)[part] * scale, 0, 255).astype(np.uint8)
        coloured = cv2.applyColorMap(matrix, cv2.COLORMAP_PARULA).astype(np.float64)
        window = canvas[into]
        blended = window[inside] * (1.0 - alpha) + coloured[inside] * alpha
        window[inside] = np.clip(blended, 0, 255).astype(np.uint8)
    return canvas


def draw_dp_segm(image: np.ndarray, detections: Iterable[Mapping[str, Any]],
                 alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """A copy of ``image`` (B G R uint8) with each detection's chart labels colour-mapped (``dp_segm``)."""
    return _draw_matrices(image, detections, lambda det: det["labels"].astype(np.float64), SEGM_SCALE, alpha)


def draw_dp_u(image: np.ndarray, detections: Iterable[Mapping[str, Any]], alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """A copy of ``image`` with each detection's U (as bytes, U * 255) colour-mapped on its foreground."""
    return _draw_matrices(image, detections, lambda det: det["uv"][0] * 255.0, 1.0, alpha)


def draw_dp_v(image: np.ndarray, detections: Iterable[Mapping[str, Any]], alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """A copy of ``image`` with each detection's V (as bytes, V * 255) colour-mapped on its foreground."""
    return _draw_matrices(image, detections, lambda det: det["uv"][1] * 255.0, 1.0, alpha)


def contour_mask(labels: np.ndarray, values: np.ndarray, levels: int = CONTOUR_LEVELS) -> np.ndarray:
    """(h, w) bool: pixels where ``values`` in [0, 1] crosses one of the iso-levels k / ``levels`` towards its
    right or lower neighbour, both pixels lying on the same chart (a fallback in place of matplotlib's contours)."""
    bins = np.clip(np.floor(values * levels), 0, levels - 1).astype(np.int64)
    crossing = np.zeros(labels.shape, bool)
    for axis in (0, 1):
        same_chart = np.diff(labels.astype(np.int64), axis=axis) == 0
        changed = (np.diff(bins, axis=axis) != 0) & same_chart & (np.delete(labels, 0, axis=axis) > 0)
        index = [slice(None), slice(None)]
        index[axis] = slice(0, -1)
        crossing[tuple(index)] |= changed
    return crossing


def draw_dp_contour(image: np.ndarray, detections: Iterable[Mapping[str, Any]],
                    levels: int = CONTOUR_LEVELS) -> np.ndarray:
    """A copy of ``image`` with the iso-lines of U and V (``levels`` equal steps) drawn on each detection's
    foreground, each line pixel in the PARULA colour of its U (or V) value."""
    canvas = image.copy()
    for det in _checked(detections):
        into, part = _box_window(det, canvas.shape[:2])
        labels = det["labels"][part]
        if not (labels > 0).any():  # lines lie on the foreground only; OpenCV fails on an empty window
            continue
        window = canvas[into]
        for values in det["uv"][:, part[0], part[1]]:
            line = contour_mask(labels, values, levels)
            colours = cv2.applyColorMap(np.clip(values * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_PARULA)
            window[line] = colours[line]
    return canvas


def draw_bbox(image: np.ndarray, detections: Iterable[Mapping[str, Any]], thickness: int = 1,
              font_scale: float = 0.4) -> np.ndarray:
    """A copy of ``image`` with each box as a green rectangle and its score (4 decimals) written at its top-left
    corner; the text is cut off at the box so that nothing outside a box changes."""
    canvas = image.copy()
    for det in _checked(detections):
        x1, y1, x2, y2 = (int(round(v)) for v in det["bbox"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
        top, left = max(y1, 0), max(x1, 0)
        box = np.ascontiguousarray(canvas[top:max(y2 + 1, top), left:max(x2 + 1, left)])
        if box.size == 0:
            continue
        text = f"{det['score']:.4f}"
        (_, text_height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        cv2.putText(box, text, (x1 - left + thickness + 1, y1 - top + thickness + 1 + text_height),
                    cv2.FONT_HERSHEY_SIMPLEX, font_scale, BOX_COLOUR, 1, cv2.LINE_AA)
        canvas[top:top + box.shape[0], left:left + box.shape[1]] = box
    return canvas
