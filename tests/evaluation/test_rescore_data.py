"""Rescore training data: best OKS per detection by the official rules, and the .npz round trip."""
import json

import numpy as np
import pytest

from posekit.data.metadata import COCO
from posekit.evaluation import collect_rescore_data, load_rescore_data, save_rescore_data, write_results
from posekit.utils.errors import DataError

SIGMAS = np.array(COCO.sigmas)


def person(ann_id, image_id, x0, labelled=True):
    kpts = np.stack([x0 + 5.0 * np.arange(17), 40 + 10.0 * np.arange(17), np.full(17, 2.0 if labelled else 0)], 1)
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "area": 5000.0,
            "num_keypoints": 17 if labelled else 0, "keypoints": kpts.ravel().tolist(),
            "bbox": [x0, 40.0, 80.0, 160.0]}


def oks(det, gt):
    """COCO OKS by its published formula (labelled gt joints only)."""
    d, g = np.array(det).reshape(-1, 3), np.array(gt["keypoints"]).reshape(-1, 3)
    e = ((d[:, :2] - g[:, :2]) ** 2).sum(1) / (2 * SIGMAS) ** 2 / (gt["area"] + np.spacing(1)) / 2
    return np.exp(-e)[g[:, 2] > 0].mean()


def detection(image_id, gt, shift, score):
    kpts = np.array(gt["keypoints"]).reshape(-1, 3)
    kpts[:, 0] += shift
    kpts[:, 2] = 0.5
    return {"image_id": image_id, "category_id": 1, "keypoints": kpts.ravel().tolist(), "score": score}


@pytest.fixture
def files(tmp_path):
    gts = [person(1, 10, 0.0), person(2, 10, 200.0), person(3, 20, 0.0, labelled=False)]
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 400, "height": 400} for i in (10, 20, 30)]
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps({"images": images, "annotations": gts, "categories": [{"id": 1}]}))
    dets = [detection(10, gts[0], 3.0, 0.5), detection(10, gts[1], -150.0, 0.9),  # near neither exactly
            detection(20, gts[2], 1.0, 0.4),                                      # only an unlabelled gt
            detection(30, gts[0], 0.0, 0.8)]                                      # image without gt
    dets += [detection(10, gts[0], 50.0 + i, 0.01 * i) for i in range(20)]        # 22 on image 10
    results_path = tmp_path / "results.json"
    write_results(str(results_path), dets)
    return str(gt_path), str(results_path), gts, dets


def test_best_oks_and_recording_rules(files):
    gt_path, results_path, gts, dets = files
    data = collect_rescore_data(gt_path, results_path, "coco")
    image10 = sorted([d for d in dets if d["image_id"] == 10], key=lambda d: -d["score"])[:20]
    expected = [max(oks(d["keypoints"], gts[0]), oks(d["keypoints"], gts[1])) for d in image10]
    # Against only an ignored gt, the best over ignored gts counts: the bbox-distance OKS (dekr.md 7.6).
    bb = gts[2]["bbox"]
    assert data.keypoints.shape == (21, 17, 3) and data.oks.shape == (21,)
    np.testing.assert_allclose(data.oks[:20], expected, rtol=1e-9)
    np.testing.assert_allclose(data.keypoints[0].ravel(), image10[0]["keypoints"])
    x = np.array(dets[2]["keypoints"][0::3])
    outside = np.maximum(0, bb[0] - x) + np.maximum(0, x - (bb[0] + 2 * bb[2]))
    y = np.array(dets[2]["keypoints"][1::3])
    outside_y = np.maximum(0, bb[1] - y) + np.maximum(0, y - (bb[1] + 2 * bb[3]))
    e = (outside ** 2 + outside_y ** 2) / (2 * SIGMAS) ** 2 / (gts[2]["area"] + np.spacing(1)) / 2
    assert data.oks[20] == pytest.approx(np.exp(-e).mean())


def test_save_and_load_to_the_exact_path(tmp_path, files):
    data = collect_rescore_data(*files[:2], "coco")
    path = tmp_path / "rescore_dataset_train_coco_kpt"
    save_rescore_data(str(path), data)
    assert path.exists() and not (tmp_path / "rescore_dataset_train_coco_kpt.npz").exists()
    loaded = load_rescore_data(str(path))
    np.testing.assert_array_equal(loaded.keypoints, data.keypoints)
    np.testing.assert_array_equal(loaded.oks, data.oks)
    path.write_text("garbage")
    with pytest.raises(DataError, match="rescore_dataset_train_coco_kpt"):
        load_rescore_data(str(path))
