"""DensePose GPS / GPSm / IOU evaluation on a tiny generated SMPL atlas; expectations are worked out by hand or by
the direct point-by-point formula below, never by the evaluator."""
import json
import math
import os
import pickle

import numpy as np
import pytest
import scipy.io
from pycocotools import mask as mask_utils

from posekit.evaluation import densepose as densepose_eval
from posekit.evaluation.densepose import (decode_labels_uv, encode_labels_uv, evaluate_densepose,
                                         evaluate_densepose_modes)
from posekit.utils.errors import DataError

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "data", "samples", "densepose")
NUM_VERTICES = 40
ENTRY_UV = [(0.2, 0.2), (0.8, 0.2), (0.5, 0.8)]  # the three atlas entries of every chart
ENTRY_CHART = np.repeat(np.arange(1, 25), len(ENTRY_UV))
ENTRY_VERTEX = (np.arange(len(ENTRY_CHART)) * 7) % NUM_VERTICES + 1  # 1-based, entries share vertices like seams
THRESHOLDS = [0.5 + 0.05 * i for i in range(10)]
GT_BOX = [20.0, 30.0, 100.0, 120.0]  # area 12000: a "large" person
# dp_x, dp_y (0..255 over the box), chart, U, V of the GT points; U, V are whole bytes / 255 so uint8 keeps them.
POINTS = [(10.0, 20.0, 1, 51, 51), (60.0, 40.0, 4, 204, 51), (120.0, 60.0, 9, 127, 204), (180.0, 90.0, 13, 51, 51),
          (230.0, 130.0, 16, 204, 51), (40.0, 170.0, 20, 127, 204), (150.0, 210.0, 23, 51, 51),
          (3.825, 240.0, 24, 204, 51)]


def _kappa(chart):
    """Per-part normalisation written out from densepose.md 6.2 step 5."""
    for charts, kappa in (((1, 2), 0.351), ((3, 4), 0.107), ((5, 6), 0.126), ((7, 8, 9, 10), 0.237),
                          ((11, 12, 13, 14), 0.173), ((15, 16, 17, 18), 0.142), ((19, 20, 21, 22), 0.128),
                          ((23, 24), 0.150)):
        if chart in charts:
            return kappa
    raise AssertionError(chart)


@pytest.fixture(scope="module")
def distances():
    rng = np.random.default_rng(0)
    full = rng.uniform(0.02, 0.4, (NUM_VERTICES, NUM_VERTICES)).astype(np.float32)
    full = np.triu(full, 1)
    return full + full.T


def _packed(full):
    """Pairs (hi, lo), lo < hi, row after row: the layout of Pdist_matrix."""
    return np.array([[full[hi, lo]] for hi in range(len(full)) for lo in range(hi)], dtype=np.float32)


@pytest.fixture()
def data_dir(tmp_path, distances):
    u = np.array([ENTRY_UV[i % 3][0] for i in range(len(ENTRY_CHART))])[None]
    v = np.array([ENTRY_UV[i % 3][1] for i in range(len(ENTRY_CHART))])[None]
    scipy.io.savemat(tmp_path / "SMPL_subdiv.mat", {"U_subdiv": u, "V_subdiv": v,
                                                     "Part_ID_subdiv": ENTRY_CHART[None].astype(float)})
    scipy.io.savemat(tmp_path / "SMPL_SUBDIV_TRANSFORM.mat", {"index": ENTRY_VERTEX[:, None].astype(float)})
    with open(tmp_path / "Pdist_matrix.pkl", "wb") as file:
        pickle.dump({"Pdist_matrix": _packed(distances)}, file, protocol=2)
    return str(tmp_path)


def _nearest_vertex(chart, u, v):
    """Vertex of the closest atlas entry of the chart (first on ties), by a plain loop."""
    best, vertex = None, None
    for entry in range(len(ENTRY_CHART)):
        if ENTRY_CHART[entry] == chart:
            uu, vv = ENTRY_UV[entry % 3]
            squared = (uu - u) ** 2 + (vv - v) ** 2
            if best is None or squared < best:
                best, vertex = squared, ENTRY_VERTEX[entry]
    return vertex


def _reference_gps(points, gt_box, det_box, labels, full):
    """GPS of one detection for one GT, point by point (densepose.md 6.2)."""
    total = 0.0
    for x, y, chart, u, v in points:
        px = math.trunc(gt_box[0] + x * gt_box[2] / 255.0 - det_box[0])
        py = math.trunc(gt_box[1] + y * gt_box[3] / 255.0 - det_box[1])
        if not (0 <= px < int(det_box[2]) and 0 <= py < int(det_box[3])):
            continue
        p_chart, p_u, p_v = (int(value) for value in labels[:, py, px])
        if not 1 <= p_chart <= 24:
            continue
        gt_vertex = _nearest_vertex(chart, u / 255.0, v / 255.0)
        dt_vertex = _nearest_vertex(p_chart, p_u / 255.0, p_v / 255.0)
        distance = float(full[gt_vertex - 1, dt_vertex - 1])
        total += math.exp(-distance ** 2 / (2 * _kappa(chart) ** 2))
    return total / len(points)


def _full_mask_rles():
    """dp_masks: the torso mask covering the whole 256 x 256 canvas, the other 13 parts empty."""
    full = mask_utils.encode(np.asfortranarray(np.ones((256, 256), dtype=np.uint8)))
    full["counts"] = full["counts"].decode("ascii")
    return [full] + [[] for _ in range(13)]


def _person(ann_id=1, with_masks=True, **extra):
    ann = {"id": ann_id, "image_id": 1, "category_id": 1, "bbox": list(GT_BOX), "area": 12000.0, "iscrowd": 0,
           "dp_x": [p[0] for p in POINTS], "dp_y": [p[1] for p in POINTS], "dp_I": [float(p[2]) for p in POINTS],
           "dp_U": [p[3] / 255.0 for p in POINTS], "dp_V": [p[4] / 255.0 for p in POINTS]}
    if with_masks:
        ann["dp_masks"] = _full_mask_rles()
    ann.update(extra)
    return ann


def _ground_truth(annotations):
    return {"images": [{"id": 1, "height": 200, "width": 200, "file_name": "a.jpg"}],
            "categories": [{"id": 1, "name": "person"}], "annotations": annotations}


def _labels_for(det_box, points=POINTS):
    """Labels of a detection box with part 1 everywhere and the GT's exact I, U, V at every GT point."""
    labels = np.zeros((3, int(det_box[3]), int(det_box[2])), dtype=np.uint8)
    labels[0] = 1
    for x, y, chart, u, v in points:
        px = math.trunc(GT_BOX[0] + x * GT_BOX[2] / 255.0 - det_box[0])
        py = math.trunc(GT_BOX[1] + y * GT_BOX[3] / 255.0 - det_box[1])
        if 0 <= px < labels.shape[2] and 0 <= py < labels.shape[1]:
            labels[:, py, px] = (chart, u, v)
    return labels


def _record(box, score, labels):
    return {"image_id": 1, "category_id": 1, "bbox": list(box), "score": score, "labels_uv_uint8": labels}


def _ap_one_detection(gps):
    """One detection on one GT: a hit (precision 1 at every recall point) at each threshold <= gps."""
    return sum(1.0 for t in THRESHOLDS if gps >= t) / len(THRESHOLDS)


def test_exact_predictions_score_one_in_every_mode(data_dir, tmp_path):
    labels = _labels_for(GT_BOX)
    record = {"image_id": 1, "category_id": 1, "bbox": GT_BOX, "score": 0.9,
              "densepose": {"shape_chw": list(labels.shape), "labels_uv_str": encode_labels_uv(labels)}}
    (tmp_path / "gt.json").write_text(json.dumps(_ground_truth([_person()])))
    (tmp_path / "res.json").write_text(json.dumps([record]))
    for mode in ("GPS", "GPSm", "IOU"):
        result = evaluate_densepose(str(tmp_path / "gt.json"), str(tmp_path / "res.json"), data_dir, mode)
        assert set(result) == {"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}
        for name in ("AP", "AP50", "AP75", "APl", "AR", "AR50", "AR75", "ARl"):
            assert result[name] == pytest.approx(1.0), (mode, name)
        assert result["APm"] == -1 and result["ARm"] == -1  # no medium person


def test_low_thresholds_add_ap20_to_ap40(data_dir):
    result = evaluate_densepose(_ground_truth([_person()]), [_record(GT_BOX, 0.9, _labels_for(GT_BOX))],
                                data_dir, "GPS", min_threshold=0.2)
    assert [name for name in result if name.startswith("AP") and name[2:].isdigit()] == [
        "AP20", "AP30", "AP40", "AP50", "AP75"]
    assert result["AP20"] == pytest.approx(1.0) and result["AP"] == pytest.approx(1.0)


def _jittered(distances):
    """A detection shifted by (+2, -2) whose labels miss in three ways; its GPS by the direct formula."""
    box = [22.0, 28.0, 100.0, 120.0]
    labels = _labels_for(box)
    x, y = (math.trunc(GT_BOX[0] + POINTS[1][0] * GT_BOX[2] / 255.0 - box[0]),
            math.trunc(GT_BOX[1] + POINTS[1][1] * GT_BOX[3] / 255.0 - box[1]))
    labels[1:, y, x] = (120, 200)  # nearest entry of chart 4 becomes (0.5, 0.8): another vertex
    x, y = (math.trunc(GT_BOX[0] + POINTS[3][0] * GT_BOX[2] / 255.0 - box[0]),
            math.trunc(GT_BOX[1] + POINTS[3][1] * GT_BOX[3] / 255.0 - box[1]))
    labels[0, y, x] = 14  # same coarse part, another chart
    x, y = (math.trunc(GT_BOX[0] + POINTS[5][0] * GT_BOX[2] / 255.0 - box[0]),
            math.trunc(GT_BOX[1] + POINTS[5][1] * GT_BOX[3] / 255.0 - box[1]))
    labels[0, y, x] = 0  # background: contributes 0
    return box, labels, _reference_gps(POINTS, GT_BOX, box, labels, distances)


def test_jittered_detection_matches_direct_formula(data_dir, distances):
    box, labels, gps = _jittered(distances)
    # The last point (dp_x 3.825) lands at -0.5 in the shifted box: truncation puts it in column 0.
    assert math.trunc(GT_BOX[0] + 3.825 * GT_BOX[2] / 255.0 - box[0]) == 0
    assert 0.5 < gps < 0.95 and min(abs(gps - t) for t in THRESHOLDS) > 1e-3
    result = evaluate_densepose(_ground_truth([_person()]), [_record(box, 0.8, labels)], data_dir, "GPS")
    expected = _ap_one_detection(gps)
    assert result["AP"] == pytest.approx(expected)
    assert result["APl"] == pytest.approx(expected)
    assert result["AR"] == pytest.approx(expected)  # recall 1 at the same thresholds, 0 elsewhere
    assert result["AP50"] == pytest.approx(1.0)


def test_two_detections_ap_by_hand(data_dir, distances):
    box, labels, gps = _jittered(distances)
    hits = sum(1 for t in THRESHOLDS if gps >= t)
    # At thresholds <= gps the first (jittered, higher score) is a hit: precision 1. Above, it is a false
    # positive followed by the exact detection's hit: precision 1/2 at every recall point.
    expected = (hits * 1.0 + (len(THRESHOLDS) - hits) * 0.5) / len(THRESHOLDS)
    records = [_record(box, 0.9, labels), _record(GT_BOX, 0.8, _labels_for(GT_BOX))]
    result = evaluate_densepose(_ground_truth([_person()]), records, data_dir, "GPS")
    assert result["AP"] == pytest.approx(expected)
    assert result["AR"] == pytest.approx(1.0)


def test_all_modes_at_once_read_the_distances_once(data_dir, distances, monkeypatch):
    box, labels, gps = _jittered(distances)
    records = [_record(box, 0.9, labels), _record(GT_BOX, 0.8, _labels_for(GT_BOX))]
    hits = sum(1 for t in THRESHOLDS if gps >= t)
    loads = []
    real_load = densepose_eval.load_geodesic_data
    monkeypatch.setattr(densepose_eval, "load_geodesic_data", lambda path: loads.append(path) or real_load(path))
    together = evaluate_densepose_modes(_ground_truth([_person()]), records, data_dir)
    assert len(loads) == 1
    assert together["GPS"]["AP"] == pytest.approx((hits + (len(THRESHOLDS) - hits) * 0.5) / len(THRESHOLDS))
    for mode in ("GPSm", "IOU"):
        assert together[mode] == evaluate_densepose(_ground_truth([_person()]), records, data_dir, mode)
    assert evaluate_densepose_modes(_ground_truth([_person()]), records, data_dir, ("IOU",))["IOU"] == together["IOU"]
    assert len(loads) == 2  # GPSm alone read them again; IOU alone never reads them


def test_empty_results_give_minus_one(data_dir):
    result = evaluate_densepose(_ground_truth([_person()]), [], data_dir, "GPSm")
    assert len(result) == 10 and all(value == -1 for value in result.values())


def _crowd():
    return {"id": 2, "image_id": 1, "category_id": 1, "bbox": [130.0, 20.0, 60.0, 60.0], "area": 3600.0,
            "iscrowd": 1, "segmentation": [[130, 20, 190, 20, 190, 80, 130, 80]]}


def test_detection_on_crowd_is_ignored(data_dir):
    inside = [135.0, 25.0, 40.0, 40.0]
    records = [_record(inside, 0.95, _labels_for(inside, [])), _record(GT_BOX, 0.9, _labels_for(GT_BOX))]
    for mode in ("GPS", "IOU"):
        result = evaluate_densepose(_ground_truth([_person(), _crowd()]), records, data_dir, mode)
        assert result["AP"] == pytest.approx(1.0), mode
    # Without the crowd region the higher-scored detection is a false positive before the hit: precision 1/2.
    result = evaluate_densepose(_ground_truth([_person()]), records, data_dir, "GPS")
    assert result["AP"] == pytest.approx(0.5)


def test_segmentation_fallback_without_dp_masks(data_dir):
    # The polygon covers x in [20, 86] of the box [20, 120): mask IoU about 0.66, so a hit at 0.50..0.65 only.
    person = _person(with_masks=False, segmentation=[[20, 30, 86, 30, 86, 150, 20, 150]])
    records = [_record(GT_BOX, 0.9, _labels_for(GT_BOX))]
    assert evaluate_densepose(_ground_truth([person]), records, data_dir, "IOU")["AP"] == pytest.approx(0.4)
    assert evaluate_densepose(_ground_truth([person]), records, data_dir, "GPS")["AP"] == pytest.approx(1.0)


def test_missing_data_file_is_named(data_dir):
    os.remove(os.path.join(data_dir, "SMPL_SUBDIV_TRANSFORM.mat"))
    with pytest.raises(DataError, match="SMPL_SUBDIV_TRANSFORM.mat"):
        evaluate_densepose(_ground_truth([_person()]), [_record(GT_BOX, 0.9, _labels_for(GT_BOX))], data_dir)


def test_truncated_pdist_is_named(data_dir, distances):
    path = os.path.join(data_dir, "Pdist_matrix.pkl")
    with open(path, "rb") as file:
        content = file.read()
    with open(path, "wb") as file:
        file.write(content[: len(content) // 2])
    records = [_record(GT_BOX, 0.9, _labels_for(GT_BOX))]
    with pytest.raises(DataError, match="Pdist_matrix.pkl"):
        evaluate_densepose(_ground_truth([_person()]), records, data_dir)
    with open(path, "wb") as file:  # a whole pickle, but of too few distances
        pickle.dump({"Pdist_matrix": _packed(distances)[:-5]}, file, protocol=2)
    with pytest.raises(DataError, match="Pdist_matrix"):
        evaluate_densepose(_ground_truth([_person()]), records, data_dir)


def test_real_challenge_results_round_trip():
    with open(os.path.join(SAMPLES, "example_results.json")) as file:
        records = json.load(file)
    assert len(records) == 21
    for record in records:
        labels = decode_labels_uv(record)
        assert labels.dtype == np.uint8 and list(labels.shape) == record["uv_shape"]
        assert labels.shape[1:] == (int(record["bbox"][3]), int(record["bbox"][2]))
        assert labels[0].max() <= 24 and (labels[0] > 0).mean() < 0.95  # charts only, never a filled box
        assert np.all(labels[1:][:, labels[0] == 0] == 0)  # U, V are written only on the body
        packed = {"densepose": {"shape_chw": list(labels.shape), "labels_uv_str": encode_labels_uv(labels)}}
        np.testing.assert_array_equal(decode_labels_uv(packed), labels)
    best = decode_labels_uv(max(records, key=lambda record: record["score"]))
    assert 0.2 < (best[0] > 0).mean() < 0.5  # the surest detection is a person covering part of its box


def test_decode_rejects_shape_mismatch():
    labels = np.zeros((3, 4, 5), dtype=np.uint8)
    with pytest.raises(DataError, match="uv_data"):
        decode_labels_uv({"uv_shape": [3, 5, 4], "uv_data": encode_labels_uv(labels)})


def test_rle_segmentation_at_exactly_the_threshold(data_dir):
    # Compressed-RLE segmentation of the left 50 columns of the 100-wide box: mask IoU exactly 0.5, a hit at
    # threshold 0.50 (score >= threshold) and a miss at the nine others.
    canvas = np.zeros((200, 200), dtype=np.uint8)
    canvas[30:150, 20:70] = 1
    rle = mask_utils.encode(np.asfortranarray(canvas))
    rle["counts"] = rle["counts"].decode("ascii")
    person = _person(with_masks=False, segmentation=rle)
    result = evaluate_densepose(_ground_truth([person]), [_record(GT_BOX, 0.9, _labels_for(GT_BOX))], data_dir,
                                "IOU")
    assert result["AP"] == pytest.approx(0.1) and result["AP50"] == pytest.approx(1.0)


def test_dp_masks_resampled_with_first_order_zoom(data_dir):
    # Pixel noise on the 256 x 256 canvas: only first-order zoom without prefiltering, thresholded at 0.5,
    # gives the detection's mask below (computed here with scipy directly), so only it scores mask IoU 1; other
    # orders or thresholds give IoU about 0.85-0.9 with it, below the 0.95 threshold.
    from scipy.ndimage import zoom
    canvas = (np.random.default_rng(1).random((256, 256)) < 0.5).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(canvas))
    rle["counts"] = rle["counts"].decode("ascii")
    person = _person(dp_masks=[[], [], rle] + [[] for _ in range(11)])
    expected = zoom(canvas.astype(float), (120 / 256, 100 / 256), order=1, prefilter=False) > 0.5
    labels = _labels_for(GT_BOX)
    labels[0] = expected
    result = evaluate_densepose(_ground_truth([person]), [_record(GT_BOX, 0.9, labels)], data_dir, "IOU")
    assert result["AP"] == pytest.approx(1.0)


def test_detections_in_images_without_scored_people_are_ignored(data_dir):
    gt = _ground_truth([_person(), dict(_person(ann_id=5, image_id=3), dp_x=None)])
    del gt["annotations"][1]["dp_x"]  # a person without DensePose points is ignored
    gt["images"] += [{"id": 2, "height": 200, "width": 200}, {"id": 3, "height": 200, "width": 200}]
    far = [150.0, 160.0, 30.0, 30.0]  # overlaps no annotated box
    records = [_record(GT_BOX, 0.9, _labels_for(GT_BOX))]
    for image_id in (2, 3):  # higher-scored detections that would otherwise be false positives
        records.append(dict(_record(far, 0.99, _labels_for(far, [])), image_id=image_id))
    assert evaluate_densepose(gt, records, data_dir, "GPS")["AP"] == pytest.approx(1.0)


def test_bad_records_are_named(data_dir):
    small = _record(GT_BOX, 0.9, np.zeros((3, 10, 10), dtype=np.uint8))  # labels smaller than the 100 x 120 box
    with pytest.raises(DataError, match="record 0.*do not cover"):
        evaluate_densepose(_ground_truth([_person()]), [small], data_dir)
    unlabeled = {"image_id": 1, "category_id": 1, "bbox": GT_BOX, "score": 0.5}
    with pytest.raises(DataError, match="record 0.*labels_uv_uint8"):
        evaluate_densepose(_ground_truth([_person()]), [unlabeled], data_dir)
    with pytest.raises(DataError, match="'image_id' 7"):
        evaluate_densepose(_ground_truth([_person()]), [dict(unlabeled, image_id=7)], data_dir)
