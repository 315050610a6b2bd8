"""DensePose chart results as result-file records (densepose.md 6.5): the COCO DensePose challenge format and
the record detectron2's DensePose evaluator builds.

A detection is a mapping with ``bbox`` (4,) x1, y1, x2, y2 in image pixels, ``score``, ``labels`` uint8 (h, w)
chart index 0..24 over the box and ``uv`` float32 (2, h, w) in [0, 1], where w = max(int(x2 - x1), 1) and
h = max(int(y2 - y1), 1) (densepose.md 2.5).

Both formats store the same quantised array: a 3 x h x w uint8 array (I, floor(255 U), floor(255 V)), U and V
clipped to [0, 255] first, saved as an RGB PNG (red = I, green = U, blue = V) and written as MIME base64 (lines
of 76 characters, each ending in a newline), as Python's ``base64.encodebytes`` does. Dequantisation divides
by 255, as the DensePose evaluators do; floor(255 * (k / 255)) is k again in float32, so records round-trip.
"""
import base64
import binascii
import io
from typing import Any, Dict, Mapping, Sequence, Tuple

import numpy as np
from PIL import Image

from ..utils.errors import DataError
from ..utils.io import PathLike, atomic_write_json

Detection = Dict[str, Any]
NUM_CHART_LABELS = 25  # background + 24 surface charts
SIDE_TOLERANCE = 1e-6


def box_size(bbox_xyxy: Sequence[float]) -> Tuple[int, int]:
    """(h, w) of a detection's chart result: max(int(side), 1) for each side of the box (densepose.md 2.5).

    A side within 1e-6 below an integer counts as that integer, so that x + w - x, computed from an (x, y, w, h)
    record, gives w back despite floating-point rounding.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox_xyxy)
    return max(int(y2 - y1 + SIDE_TOLERANCE), 1), max(int(x2 - x1 + SIDE_TOLERANCE), 1)


def check_detection(detection: Mapping[str, Any], where: str = "detection") -> Detection:
    """``detection`` as arrays (bbox float64 (4,), score float, labels uint8, uv float32), or DataError."""
    missing = [key for key in ("bbox", "score", "labels", "uv") if key not in detection]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}; expected bbox, score, labels, uv")
    bbox = np.asarray(detection["bbox"], np.float64).reshape(-1)
    if bbox.shape != (4,) or not np.isfinite(bbox).all():
        raise DataError(f"{where}: field 'bbox' must be 4 finite numbers x1, y1, x2, y2, got {detection['bbox']!r}")
    height, width = box_size(bbox)
    labels = np.asarray(detection["labels"])
    uv = np.asarray(detection["uv"], np.float32)
    if labels.shape != (height, width):
        raise DataError(f"{where}: field 'labels' has shape {labels.shape}, expected {(height, width)} from "
                        f"bbox {bbox.tolist()}")
    if uv.shape != (2, height, width):
        raise DataError(f"{where}: field 'uv' has shape {uv.shape}, expected {(2, height, width)}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CHART_LABELS):
        raise DataError(f"{where}: field 'labels' must hold chart indices 0..{NUM_CHART_LABELS - 1}")
    return {"bbox": bbox, "score": float(detection["score"]), "labels": labels.astype(np.uint8), "uv": uv}


def quantise(labels: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """The 3 x h x w uint8 array (I, floor(255 U), floor(255 V)) with U, V clipped to [0, 255] after scaling."""
    scaled = np.clip(np.asarray(uv, np.float32) * np.float32(255), 0, 255)
    return np.concatenate([labels[None].astype(np.uint8), np.floor(scaled).astype(np.uint8)])


def dequantise(labels_uv: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(labels uint8 (h, w), uv float32 (2, h, w) = bytes / 255) from a 3 x h x w uint8 array."""
    return labels_uv[0].copy(), labels_uv[1:].astype(np.float32) / np.float32(255)


def encode_labels_uv(labels_uv: np.ndarray) -> str:
    """Base64 (MIME lines) of an RGB PNG holding a 3 x h x w uint8 array, channel c in colour plane c."""
    stream = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.moveaxis(labels_uv, 0, -1)), mode="RGB").save(
        stream, format="png", optimize=True)
    return base64.encodebytes(stream.getvalue()).decode("ascii")


def decode_png(text: str, shape_chw: Sequence[int], where: str) -> np.ndarray:
    """The 3 x h x w uint8 array stored in a base64 PNG ``text``, checked against ``shape_chw``."""
    try:
        image = Image.open(io.BytesIO(base64.b64decode(text)))
        array = np.asarray(image.convert("RGB") if image.mode != "RGB" else image, np.uint8)
    except (binascii.Error, ValueError, OSError) as error:
        raise DataError(f"{where}: not a base64-encoded PNG ({error})") from error
    decoded = np.moveaxis(array, -1, 0)
    if list(decoded.shape) != [int(v) for v in shape_chw]:
        raise DataError(f"{where}: the PNG holds an array of shape {list(decoded.shape)}, the record says "
                        f"{list(shape_chw)}")
    return np.ascontiguousarray(decoded)


def _xywh(bbox_xyxy: np.ndarray) -> list:
    x1, y1, x2, y2 = (float(v) for v in bbox_xyxy)
    return [x1, y1, x2 - x1, y2 - y1]


def _record_fields(record: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    missing = [key for key in keys if key not in record]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")


def _detection_from(record: Mapping[str, Any], labels_uv: np.ndarray, where: str) -> Detection:
    bbox = np.asarray(record["bbox"], np.float64).reshape(-1)
    if bbox.shape != (4,):
        raise DataError(f"{where}: field 'bbox' must be x, y, w, h, got {record['bbox']!r}")
    x, y, w, h = bbox
    labels, uv = dequantise(labels_uv)
    return check_detection({"bbox": np.array([x, y, x + w, y + h]), "score": record["score"],
                            "labels": labels, "uv": uv}, where)


def to_challenge_record(image_id: int, detection: Mapping[str, Any], category_id: int = 1) -> Dict[str, Any]:
    """One COCO DensePose challenge result: image_id, category_id, bbox (x, y, w, h), score, uv_shape, uv_data."""
    det = check_detection(detection)
    labels_uv = quantise(det["labels"], det["uv"])
    return {"image_id": int(image_id), "category_id": int(category_id), "bbox": _xywh(det["bbox"]),
            "score": det["score"], "uv_shape": list(labels_uv.shape), "uv_data": encode_labels_uv(labels_uv)}


def from_challenge_record(record: Mapping[str, Any], where: str = "challenge record") -> Detection:
    """The detection arrays stored in a COCO DensePose challenge result record."""
    _record_fields(record, ("bbox", "score", "uv_shape", "uv_data"), where)
    labels_uv = decode_png(record["uv_data"], record["uv_shape"], f"{where}, field 'uv_data'")
    return _detection_from(record, labels_uv, where)


def to_detectron2_record(image_id: int, detection: Mapping[str, Any], category_id: int = 1) -> Dict[str, Any]:
    """One result as detectron2's DensePose evaluator records it, with "densepose": {shape_chw, labels_uv_str}."""
    det = check_detection(detection)
    labels_uv = quantise(det["labels"], det["uv"])
    return {"image_id": int(image_id), "category_id": int(category_id), "bbox": _xywh(det["bbox"]),
            "score": det["score"],
            "densepose": {"shape_chw": list(labels_uv.shape), "labels_uv_str": encode_labels_uv(labels_uv)}}


def from_detectron2_record(record: Mapping[str, Any], where: str = "detectron2 record") -> Detection:
    """The detection arrays stored in a detectron2 DensePose result record."""
    _record_fields(record, ("bbox", "score", "densepose"), where)
    densepose = record["densepose"]
    _record_fields(densepose, ("shape_chw", "labels_uv_str"), f"{where}, field 'densepose'")
    labels_uv = decode_png(densepose["labels_uv_str"], densepose["shape_chw"],
                                 f"{where}, field 'densepose.labels_uv_str'")
    return _detection_from(record, labels_uv, where)


def write_results(path: PathLike, records: Sequence[Mapping[str, Any]]) -> None:
    """Write result records as one JSON list, atomically."""
    atomic_write_json(path, list(records))
