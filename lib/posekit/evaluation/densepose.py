"""DensePose AP/AR (densepose.md 6): the numbers of detectron2's ``DensePoseCocoEval`` for chart results in its
three modes, GPS (geodesic point similarity), GPSm (sqrt(GPS x mask IoU)) and IOU (mask IoU).

Official behaviour reproduced on purpose (each changes numbers):

* GT points are placed in the detection box with the box spanning 255, not 256, point units
  (x_g + dp_x * w_g / 255 - x_d), then truncated toward zero, so offsets in (-1, 0) land on pixel 0.
* Points outside [0, int(w_d)) x [0, int(h_d)) read no prediction (part 0) but still count, scoring 0; a pair
  with every point outside scores GPS 0.
* U and V are read back as byte / 255; each point maps to the nearest atlas entry of its own chart (Euclidean in
  (U, V), first entry on ties), then to its mesh vertex; part 0 or a part above 24 has no vertex (distance inf).
* kappa is per coarse part of the GT point's chart (0.351 torso, 0.107 hands, 0.126 feet, 0.237 upper legs, 0.173
  lower legs, 0.142 upper arms, 0.128 lower arms, 0.150 head); the mean runs over the GT points with a vertex.
* GT masks: the 14 ``dp_masks`` merged on the 256 x 256 canvas, resampled to (max(h, 1), max(w, 1)) with
  ``scipy.ndimage.zoom(order=1, prefilter=False)``, kept where > 0.5 and pasted at (int(x), int(y)) with clipping;
  without ``dp_masks`` the COCO ``segmentation`` (polygons, RLE) is used, and without either an empty mask.
  Detection masks are part > 0 pasted the same way. IoU is pycocotools' (crowd GT: intersection / detection area).
* A GT is ignored when it has no ``dp_x`` (``iscrowd`` is overwritten by that rule, though it still selects the
  crowd IoU and lets a crowd GT match several detections) or its ``area`` is outside the area range.
* Images whose GTs are all ignored (or that have none) mark all their detections ignored.
* Per image only the 20 best-scored detections count (maxDets 20); area ranges all, medium, large (no small).
* Greedy matching needs score >= threshold and > 0 and stops at ignored GTs once a regular one matched.
* After matching, each detection unmatched at the *last* threshold is compared by box IoU with the GTs not
  matched at that threshold; the best one with IoU >= 0.8 (the last of equal ones) gives the detection its
  ignore flag at *all* thresholds, and is recorded as its match at the last threshold when ignored.
* Unmatched detections whose box area (w * h) is outside the area range are ignored.
* Accumulation is COCO's (stable merge sort on score, precision made monotone, 101 recall points); thresholds
  are linspace(min_threshold, 0.95); AP20 / AP30 / AP40 are reported when min_threshold <= 0.201 / 0.301 / 0.401.
* No results at all give -1 for every metric (detectron2's DensePose evaluator does not run COCOeval then).

Differences: geodesic distances are squared in float64 (the official code may square a float32 array first);
images' ``ignore_regions_x`` / ``ignore_regions_y`` (PoseTrack, absent from DensePose-COCO) are not applied;
the three data files are checked to exist in every mode but read only for GPS and GPSm.
"""
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from pycocotools import mask as mask_utils
from scipy.ndimage import zoom

from ..data.annotations import load_json, require_fields
from ..utils.errors import DataError
from .densepose_data import NUM_CHARTS, GeodesicData, data_file_paths, decode_labels_uv, load_geodesic_data
from .densepose_results import encode_labels_uv

__all__ = ["evaluate_densepose", "evaluate_densepose_modes", "decode_labels_uv", "encode_labels_uv", "MODES"]

MODES = ("GPS", "GPSm", "IOU")
MAX_DETS = 20
AREA_RANGES = ((0.0, 1e10), (32.0 ** 2, 96.0 ** 2), (96.0 ** 2, 1e10))  # all, medium, large
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
BOX_IOU_IGNORE = 0.8
# Normalising geodesic distance per coarse part (index 0 unused), and the coarse part of every chart 0..24.
PART_KAPPA = np.array([0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150])
CHART_TO_PART = np.array([0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8])
DP_CANVAS = 256
RESULT_FIELDS = ("image_id", "category_id", "bbox", "score")


# ----------------------------------------------------------------------------------------------- inputs
def _load_ground_truth(gt_json: Union[str, Mapping]) -> Mapping:
    """The DensePose-COCO dict, checked for the fields the evaluation reads."""
    where = gt_json if isinstance(gt_json, str) else "ground truth"
    gt = load_json(gt_json) if isinstance(gt_json, str) else gt_json
    require_fields(gt, ("images", "annotations", "categories"), where)
    for index, image in enumerate(gt["images"]):
        require_fields(image, ("id", "height", "width"), f"{where}: images[{index}]")
    for index, ann in enumerate(gt["annotations"]):
        require_fields(ann, ("id", "image_id", "category_id", "bbox", "area"), f"{where}: annotations[{index}]")
    return gt


def _load_results(results: Union[str, Sequence[Mapping]], image_ids: set) -> List[Dict[str, Any]]:
    """Result records with detection ids 1.. and box areas (as pycocotools' loadRes); labels decoded later."""
    where = results if isinstance(results, str) else "results"
    records = load_json(results) if isinstance(results, str) else results
    if not isinstance(records, (list, tuple)):
        raise DataError(f"{where}: expected a list of result records")
    loaded = []
    for index, record in enumerate(records):
        require_fields(record, RESULT_FIELDS, f"{where}: record {index}")
        if record["image_id"] not in image_ids:
            raise DataError(f"{where}: record {index}: field 'image_id' {record['image_id']} is not an image "
                            f"of the ground truth")
        x, y, w, h = (float(value) for value in record["bbox"])
        loaded.append({"id": index + 1, "image_id": record["image_id"], "category_id": record["category_id"],
                       "bbox": [x, y, w, h], "area": w * h, "score": float(record["score"]), "record": record,
                       "where": f"{where}: record {index}"})
    return loaded


def _with_labels(det: Dict[str, Any]) -> Dict[str, Any]:
    """The detection with its decoded (3, h, w) labels; decoding image by image keeps one image's maps in memory."""
    try:
        labels = decode_labels_uv(det["record"])
    except DataError as err:
        raise DataError(f"{det['where']}: {err}") from None
    _, _, w, h = det["bbox"]
    if labels.shape[1] < int(h) or labels.shape[2] < int(w):
        raise DataError(f"{det['where']}: labels {labels.shape} (c, h, w) do not cover the box {det['bbox']}")
    return dict(det, labels=labels)


def _metric_names(min_threshold: float) -> List[str]:
    """The metrics in detectron2's order for this lowest threshold."""
    extra = [name for name, limit in (("AP20", 0.201), ("AP30", 0.301), ("AP40", 0.401)) if min_threshold <= limit]
    return ["AP"] + extra + ["AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]


# ----------------------------------------------------------------------------------------------- GPS
def _closest_vertices(geo: GeodesicData, charts: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """1-based mesh vertex of the nearest atlas entry in each point's chart; 0 for charts outside 1..24."""
    entries = np.zeros(len(charts), dtype=np.int64)
    query = np.stack([u, v], axis=1).astype(np.float64)
    for chart in range(1, NUM_CHARTS + 1):
        selected = charts == chart
        if not selected.any() or len(geo.chart_uv[chart - 1]) == 0:
            continue
        squared = ((query[selected, None, :] - geo.chart_uv[chart - 1][None]) ** 2).sum(axis=2)
        entries[selected] = geo.chart_entries[chart - 1][np.argmin(squared, axis=1)]
    vertices = np.zeros(len(charts), dtype=np.int64)
    vertices[entries > 0] = geo.entry_vertex[entries[entries > 0] - 1]
    return vertices


def _geodesic_distances(geo: GeodesicData, gt_vertices: np.ndarray, dt_vertices: np.ndarray) -> np.ndarray:
    """Distance between paired 1-based vertices: 0 when equal, inf where the prediction has no vertex."""
    hi = np.maximum(gt_vertices, dt_vertices) - 1
    lo = np.minimum(gt_vertices, dt_vertices) - 1
    distances = np.zeros(len(gt_vertices), dtype=np.float64)
    differ = (dt_vertices > 0) & (hi != lo)
    distances[differ] = geo.pdist[hi[differ] * (hi[differ] - 1) // 2 + lo[differ]]
    distances[dt_vertices <= 0] = np.inf
    return distances


def _gt_vertices(geo: GeodesicData, gt: Mapping) -> np.ndarray:
    """Mesh vertex of every GT point (0 where its part has none)."""
    return _closest_vertices(geo, np.asarray(gt["dp_I"]).astype(np.int64), np.asarray(gt["dp_U"], dtype=np.float64),
                             np.asarray(gt["dp_V"], dtype=np.float64))


def _gps(geo: GeodesicData, gt: Mapping, gt_vertices: np.ndarray, det: Mapping) -> float:
    """Geodesic point similarity of one detection to one GT person (densepose.md 6.2)."""
    gx, gy, gw, gh = gt["bbox"]
    dx, dy, dw, dh = det["bbox"]
    px = (np.asarray(gt["dp_x"], dtype=np.float64) * gw / 255.0 + gx - dx).astype(int)
    py = (np.asarray(gt["dp_y"], dtype=np.float64) * gh / 255.0 + gy - dy).astype(int)
    inside = (px >= 0) & (py >= 0) & (px < int(dw)) & (py < int(dh))
    if not inside.any():
        return 0.0
    # Outside points read pixel (0, 0) and then lose their part, so they score 0 but stay in the mean.
    rows, cols = np.where(inside, py, 0), np.where(inside, px, 0)
    labels = det["labels"]
    charts = np.where(inside, labels[0, rows, cols], 0)
    u, v = labels[1, rows, cols] / 255.0, labels[2, rows, cols] / 255.0
    dt_vertices = _closest_vertices(geo, charts.astype(np.int64), u, v)
    counted = gt_vertices > 0  # the official mean skips GT points whose dp_I is no chart 1..24
    if not counted.any():
        return 0.0
    distances = _geodesic_distances(geo, gt_vertices[counted], dt_vertices[counted])
    # The GT point's atlas entry lies in its own chart, so its coarse part comes from dp_I.
    kappa = PART_KAPPA[CHART_TO_PART[np.asarray(gt["dp_I"]).astype(np.int64)[counted]]]
    return float(np.mean(np.exp(-distances ** 2 / (2 * kappa ** 2))))


# ----------------------------------------------------------------------------------------------- masks
def _paste(mask: Optional[np.ndarray], bbox: Sequence[float], height: int, width: int) -> dict:
    """RLE of an image-sized canvas holding ``mask > 0`` at (int(x), int(y)), clipped to image and mask."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    if mask is not None:
        x, y, w, h = bbox
        x0, y0 = max(int(x), 0), max(int(y), 0)
        x1 = min(int(x + w), width, int(x) + mask.shape[1])
        y1 = min(int(y + h), height, int(y) + mask.shape[0])
        if x1 > x0 and y1 > y0:
            canvas[y0:y1, x0:x1] = mask[y0 - int(y):y1 - int(y), x0 - int(x):x1 - int(x)] > 0
    return mask_utils.encode(np.asfortranarray(canvas))


def _dp_mask(gt: Mapping) -> np.ndarray:
    """The GT's dp_masks merged, resampled to its box and thresholded at 0.5."""
    merged = np.zeros((DP_CANVAS, DP_CANVAS))
    for part in gt["dp_masks"][:14]:
        if part:
            merged[mask_utils.decode(part) > 0] = 1.0
    _, _, w, h = gt["bbox"]
    scale = (float(max(h, 1)) / DP_CANVAS, float(max(w, 1)) / DP_CANVAS)
    return (zoom(merged, scale, order=1, prefilter=False) > 0.5).astype(np.uint8)


def _gt_mask(gt: Mapping, height: int, width: int) -> dict:
    """RLE of the GT person: dp_masks, else its segmentation, else empty."""
    if "dp_masks" in gt:
        return _paste(_dp_mask(gt), gt["bbox"], height, width)
    segmentation = gt.get("segmentation")
    if isinstance(segmentation, list) and segmentation:
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, dict):
        if isinstance(segmentation.get("counts"), list):
            return mask_utils.frPyObjects(segmentation, height, width)
        return segmentation
    return _paste(None, gt["bbox"], height, width)


def _mask_ious(gts: List[Mapping], dets: List[Mapping], height: int, width: int) -> np.ndarray:
    """(D, G) mask IoU of detections with GT people, crowd GTs by intersection over detection area."""
    gt_masks = [_gt_mask(gt, height, width) for gt in gts]
    dt_masks = [_paste(det["labels"][0], det["bbox"], height, width) for det in dets]
    return np.asarray(mask_utils.iou(dt_masks, gt_masks, [int(gt.get("iscrowd", 0)) for gt in gts]))


# ----------------------------------------------------------------------------------------------- matching
def _match_scores(geo: Optional[GeodesicData], gts: List[Mapping], dets: List[Mapping], mode: str,
                  image: Mapping) -> np.ndarray:
    """(D, G) score the matching thresholds: GPS, sqrt(GPS x mask IoU) or mask IoU."""
    if mode == "IOU":
        return _mask_ious(gts, dets, image["height"], image["width"])
    gps = np.zeros((len(dets), len(gts)))
    for j, gt in enumerate(gts):
        if "dp_x" in gt:  # the GT without points is ignored and keeps GPS 0
            gt_vertices = _gt_vertices(geo, gt)
            gps[:, j] = [_gps(geo, gt, gt_vertices, det) for det in dets]
    if mode == "GPS":
        return gps
    return np.sqrt(gps * _mask_ious(gts, dets, image["height"], image["width"]))


def _greedy_match(scores: np.ndarray, gt_ignore: np.ndarray, crowd: np.ndarray, gt_ids: List[int],
                  dt_ids: List[int], thresholds: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCO greedy matching per threshold -> (dt matches, gt matches, dt ignore), each (T, D) or (T, G)."""
    num_t, num_d, num_g = len(thresholds), len(dt_ids), len(gt_ids)
    dt_match, gt_match = np.zeros((num_t, num_d)), np.zeros((num_t, num_g))
    dt_ignore = np.zeros((num_t, num_d), dtype=bool)
    for t, threshold in enumerate(thresholds):
        for d in range(num_d):
            best, match = min(threshold, 1 - 1e-10), -1
            for g in range(num_g):
                if gt_match[t, g] > 0 and not crowd[g]:
                    continue
                if match > -1 and not gt_ignore[match] and gt_ignore[g]:
                    break
                if scores[d, g] < best or scores[d, g] == 0.0:
                    continue
                best, match = scores[d, g], g
            if match > -1:
                dt_ignore[t, d] = gt_ignore[match]
                dt_match[t, d] = gt_ids[match]
                gt_match[t, match] = dt_ids[d]
    return dt_match, gt_match, dt_ignore


def _apply_box_rule(box_ious: np.ndarray, gt_ignore: np.ndarray, crowd: np.ndarray, gt_ids: List[int],
                    dt_ids: List[int], matches: Tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The official rule on detections unmatched at the last threshold: box IoU >= 0.8 passes on the ignore flag."""
    dt_match, gt_match, dt_ignore = matches
    last = dt_match.shape[0] - 1
    for d in range(len(dt_ids)):
        if dt_match[last, d] != 0:
            continue
        best, match = BOX_IOU_IGNORE, -1
        for g in range(len(gt_ids)):
            if (gt_match[last, g] > 0 and not crowd[g]) or box_ious[d, g] < best:
                continue
            best, match = box_ious[d, g], g
        if match > -1:
            dt_ignore[:, d] = gt_ignore[match]
            if gt_ignore[match]:
                dt_match[last, d] = gt_ids[match]
                gt_match[last, match] = dt_ids[d]


def _evaluate_image(gts: List[Mapping], dets: List[Mapping], scores: Optional[np.ndarray],
                    box_ious: Optional[np.ndarray], area_range: Tuple[float, float],
                    thresholds: np.ndarray) -> Dict[str, np.ndarray]:
    """Matches of one image and category in one area range (dets sorted by score, at most MAX_DETS)."""
    low, high = area_range
    ignore = np.array([("dp_x" not in gt) or gt["area"] < low or gt["area"] > high for gt in gts], dtype=bool)
    order = np.argsort(ignore, kind="mergesort")
    gt_ignore = ignore[order]
    crowd = np.array([int(gts[g].get("iscrowd", 0)) for g in order], dtype=bool)
    gt_ids, dt_ids = [gts[g]["id"] for g in order], [det["id"] for det in dets]
    num_t = len(thresholds)
    if scores is not None:
        matches = _greedy_match(scores[:, order], gt_ignore, crowd, gt_ids, dt_ids, thresholds)
        _apply_box_rule(box_ious[:, order], gt_ignore, crowd, gt_ids, dt_ids, matches)
        dt_match, _, dt_ignore = matches
    else:
        dt_match, dt_ignore = np.zeros((num_t, len(dets))), np.zeros((num_t, len(dets)), dtype=bool)
    if np.all(gt_ignore):  # also with no GT at all: these detections never count
        dt_ignore[:] = True
    outside = np.array([det["area"] < low or det["area"] > high for det in dets], dtype=bool)
    dt_ignore |= (dt_match == 0) & outside[None, :]
    return {"scores": np.array([det["score"] for det in dets]), "matched": dt_match != 0,
            "dt_ignore": dt_ignore, "gt_ignore": gt_ignore}


# ----------------------------------------------------------------------------------------------- AP
def _precision_recall(images: List[Dict[str, np.ndarray]], num_t: int) -> Tuple[np.ndarray, np.ndarray]:
    """(T, R) interpolated precision and (T,) recall over the pooled images; -1 without regular GT."""
    precision, recall = -np.ones((num_t, len(RECALL_POINTS))), -np.ones(num_t)
    num_gt = sum(int(np.count_nonzero(~image["gt_ignore"])) for image in images)
    if not images or num_gt == 0:
        return precision, recall
    order = np.argsort(-np.concatenate([image["scores"] for image in images]), kind="mergesort")
    matched = np.concatenate([image["matched"] for image in images], axis=1)[:, order]
    ignored = np.concatenate([image["dt_ignore"] for image in images], axis=1)[:, order]
    tp_sum = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    fp_sum = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    for t in range(num_t):
        rc = tp_sum[t] / num_gt
        pr = tp_sum[t] / (fp_sum[t] + tp_sum[t] + np.spacing(1))
        recall[t] = rc[-1] if len(rc) else 0
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope: best precision at any higher recall
        where = np.searchsorted(rc, RECALL_POINTS, side="left")
        reached = where < len(pr)  # recall points beyond the last recall reached keep precision 0
        precision[t] = 0
        precision[t, reached] = pr[where[reached]]
    return precision, recall


def _mean_defined(values: np.ndarray) -> float:
    """Mean of the entries > -1, or -1 when there is none."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def _summarize(precision: np.ndarray, recall: np.ndarray, thresholds: np.ndarray,
               metrics: List[str]) -> Dict[str, float]:
    """The named metrics from precision (T, R, K, A) and recall (T, K, A)."""
    def at(threshold: Optional[float]) -> np.ndarray:
        return np.arange(len(thresholds)) if threshold is None else np.where(np.abs(thresholds - threshold) < 0.001)[0]

    summary = {}
    for name in metrics:
        kind, rest = name[:2], name[2:]
        area = {"m": 1, "l": 2}.get(rest, 0)
        threshold = int(rest) / 100 if rest.isdigit() else None
        source = precision[at(threshold)][:, :, :, area] if kind == "AP" else recall[at(threshold)][:, :, area]
        summary[name] = _mean_defined(source)
    return summary


# ----------------------------------------------------------------------------------------------- entry points
def evaluate_densepose(gt_json: Union[str, Mapping], results: Union[str, Sequence[Mapping]], data_dir: str,
                       mode: str = "GPS", *, min_threshold: float = 0.5) -> Dict[str, float]:
    """DensePose AP / AR (fractions, -1 where undefined) of results against DensePose-COCO ground truth."""
    return evaluate_densepose_modes(gt_json, results, data_dir, (mode,), min_threshold=min_threshold)[mode]


def evaluate_densepose_modes(gt_json: Union[str, Mapping], results: Union[str, Sequence[Mapping]], data_dir: str,
                             modes: Sequence[str] = MODES, *,
                             min_threshold: float = 0.5) -> Dict[str, Dict[str, float]]:
    """``evaluate_densepose`` for several modes, reading the ground truth, results and data files once."""
    for mode in modes:
        if mode not in MODES:
            raise DataError(f"DensePose evaluation mode must be one of {MODES}, got '{mode}'")
    data_file_paths(data_dir)
    gt = _load_ground_truth(gt_json)
    images = {image["id"]: image for image in gt["images"]}
    dets = _load_results(results, set(images))
    metrics = _metric_names(min_threshold)
    if not dets:
        return {mode: {name: -1.0 for name in metrics} for mode in modes}
    # The distance file is 1.5 GB: read it once, and only when a mode needs it.
    geo = load_geodesic_data(data_dir) if set(modes) - {"IOU"} else None
    thresholds = np.linspace(min_threshold, 0.95, int(np.round((0.95 - min_threshold) / 0.05)) + 1)
    cat_ids = sorted({cat["id"] for cat in gt["categories"]})
    gts_by, dets_by = defaultdict(list), defaultdict(list)
    for ann in gt["annotations"]:
        gts_by[ann["image_id"], ann["category_id"]].append(ann)
    for det in dets:
        dets_by[det["image_id"], det["category_id"]].append(det)
    summaries = {}
    for mode in modes:
        precision = -np.ones((len(thresholds), len(RECALL_POINTS), len(cat_ids), len(AREA_RANGES)))
        recall = -np.ones((len(thresholds), len(cat_ids), len(AREA_RANGES)))
        for k, cat_id in enumerate(cat_ids):
            per_area = _evaluate_category(geo, images, gts_by, dets_by, cat_id, mode, thresholds)
            for a, evaluated in enumerate(per_area):
                precision[:, :, k, a], recall[:, k, a] = _precision_recall(evaluated, len(thresholds))
        summaries[mode] = _summarize(precision, recall, thresholds, metrics)
    return summaries


def _evaluate_category(geo: Optional[GeodesicData], images: Mapping, gts_by: Mapping, dets_by: Mapping,
                       cat_id: int, mode: str, thresholds: np.ndarray) -> List[List[Dict[str, np.ndarray]]]:
    """Per area range, the per-image results of one category over the images in id order."""
    per_area = [[] for _ in AREA_RANGES]
    for image_id in sorted(images):
        gts = gts_by.get((image_id, cat_id), [])
        dets = dets_by.get((image_id, cat_id), [])
        if not gts and not dets:
            continue
        order = np.argsort([-det["score"] for det in dets], kind="mergesort")[:MAX_DETS]
        dets = [_with_labels(dets[i]) for i in order]
        scores = box_ious = None
        if gts and dets:
            scores = _match_scores(geo, gts, dets, mode, images[image_id])
            box_ious = np.asarray(mask_utils.iou([d["bbox"] for d in dets], [g["bbox"] for g in gts],
                                                 [int(g.get("iscrowd", 0)) for g in gts]))
        for a, area_range in enumerate(AREA_RANGES):
            per_area[a].append(_evaluate_image(gts, dets, scores, box_ious, area_range, thresholds))
    return per_area
