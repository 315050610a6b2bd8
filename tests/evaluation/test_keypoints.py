"""Keypoint evaluation against the official libraries called directly, and hand-worked CrowdPose cases."""
import contextlib
import io
import json

import numpy as np
import pycocotools.coco
import pycocotools.cocoeval
import pytest
import xtcocotools.coco
import xtcocotools.cocoeval

from posekit.data.metadata import CROWDPOSE
from posekit.evaluation import evaluate_keypoints, format_results_table, write_results
from posekit.utils.errors import DataError

COCO_GT = "coco/annotations/person_keypoints_val2017.json"
CROWDPOSE_GT = "crowdpose/json/crowdpose_test.json"


def gt_as_results(gt_path, jitter=0.0, seed=0):
    """One result per labelled, non-crowd person: its ground-truth joints (optionally jittered), score 1."""
    rng = np.random.RandomState(seed)
    results = []
    for ann in json.load(open(gt_path))["annotations"]:
        if ann["num_keypoints"] == 0 or ann["iscrowd"]:
            continue
        kpts = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        kpts[:, :2] += jitter * rng.randn(len(kpts), 2)
        kpts[:, 2] = 1.0
        results.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kpts.ravel().tolist(),
                        "score": float(rng.uniform(0.1, 1.0)), "bbox": [0, 0, 1, 1]})
    return results


def write(tmp_path, results, name="results.json"):
    path = str(tmp_path / name)
    write_results(path, results)
    return path


def direct_stats(gt_path, results_path, crowd):
    """Stats from the official library, called the documented way."""
    with contextlib.redirect_stdout(io.StringIO()):
        if crowd:
            gt = xtcocotools.coco.COCO(gt_path)
            ev = xtcocotools.cocoeval.COCOeval(gt, gt.loadRes(results_path), "keypoints_crowd",
                                               sigmas=np.array(CROWDPOSE.sigmas), use_area=False)
        else:
            gt = pycocotools.coco.COCO(gt_path)
            ev = pycocotools.cocoeval.COCOeval(gt, gt.loadRes(results_path), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("kind, gt", [("coco", COCO_GT), ("crowdpose", CROWDPOSE_GT)])
def test_ground_truth_scores_perfectly(tmp_path, samples_dir, kind, gt):
    gt_path = str(samples_dir / gt)
    results = evaluate_keypoints(gt_path, write(tmp_path, gt_as_results(gt_path)), kind)
    for name in ("AP", "AP50", "AP75", "AR"):
        assert results[name] == pytest.approx(1.0)


@pytest.mark.parametrize("kind, gt, indices", [
    ("coco", COCO_GT, range(10)), ("crowdpose", CROWDPOSE_GT, range(9))])
def test_jittered_results_match_the_official_library(tmp_path, samples_dir, kind, gt, indices):
    gt_path = str(samples_dir / gt)
    path = write(tmp_path, gt_as_results(gt_path, jitter=8.0))
    results = evaluate_keypoints(gt_path, path, kind)
    expected = direct_stats(gt_path, path, kind == "crowdpose")
    assert list(results.values()) == pytest.approx([expected[i] for i in indices])
    assert 0.0 < results["AP"] < 1.0


def test_empty_results_give_zeros(tmp_path, samples_dir):
    path = write(tmp_path, [])
    assert set(evaluate_keypoints(str(samples_dir / COCO_GT), path, "coco").values()) <= {0.0, -1.0}
    crowd = evaluate_keypoints(str(samples_dir / CROWDPOSE_GT), path, "crowdpose")
    assert crowd["AP"] == 0.0 and crowd["AR"] == 0.0


def test_image_without_people(tmp_path, samples_dir):
    data = json.load(open(samples_dir / COCO_GT))
    data["images"].append(dict(data["images"][0], id=1))
    gt_path = str(tmp_path / "gt.json")
    json.dump(data, open(gt_path, "w"))
    results = gt_as_results(str(samples_dir / COCO_GT), jitter=4.0)
    results.append(dict(results[0], image_id=1, score=0.95))  # a false positive on the empty image
    path = write(tmp_path, results)
    got = evaluate_keypoints(gt_path, path, "coco")
    assert list(got.values()) == pytest.approx(list(direct_stats(gt_path, path, False)))
    assert got["AP"] < 1.0


@pytest.mark.parametrize("content", ['{"not": "a list"}', '[{"image_id": 785}]', "[1, 2", "[]x"])
def test_malformed_results_name_the_file(tmp_path, samples_dir, content):
    path = tmp_path / "bad_results.json"
    path.write_text(content)
    with pytest.raises(DataError, match="bad_results.json"):
        evaluate_keypoints(str(samples_dir / COCO_GT), str(path), "coco")


def crowd_person(image_id, ann_id, x0):
    kpts = np.stack([x0 + 10.0 * np.arange(14), 50 + 20.0 * np.arange(14), np.full(14, 2.0)], axis=1)
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": 14,
            "keypoints": kpts.ravel().tolist(), "bbox": [x0, 50.0, 130.0, 260.0]}


def test_crowdpose_easy_medium_hard_by_hand(tmp_path):
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 400, "height": 400, "crowdIndex": c}
              for i, c in [(1, 0.1), (2, 0.5), (3, 0.9)]]
    anns = [crowd_person(i, i, 20.0 * i) for i in (1, 2, 3)]
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    gt_path = str(tmp_path / "gt.json")
    json.dump(gt, open(gt_path, "w"))
    results = []
    for ann, score, shift in [(anns[0], 0.9, 0.0), (anns[1], 0.7, 500.0), (anns[2], 0.8, 0.0)]:
        kpts = np.array(ann["keypoints"]).reshape(-1, 3)
        kpts[:, 0] += shift
        kpts[:, 2] = 0.6
        results.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kpts.ravel().tolist(),
                        "score": score})
    # Image 3's detection has all joint scores 0: the CrowdPose API still counts it (xtcocotools would drop it).
    results[2]["keypoints"][2::3] = [0.0] * 14
    got = evaluate_keypoints(gt_path, write(tmp_path, results), "crowdpose")
    # Two of three persons found, both ranked above the miss: precision 1 up to recall 2/3, i.e. on the
    # 67 recall thresholds 0.00 .. 0.66 of 101.
    assert got["AP"] == pytest.approx(67 / 101)
    assert got["AR"] == pytest.approx(2 / 3)
    assert (got["AP_easy"], got["AP_medium"], got["AP_hard"]) == (1.0, 0.0, 1.0)


def test_results_table_format():
    table = format_results_table("hrnet_dekr_w32_long_name", {"AP": 0.71234, "AR": 0.5})
    assert table.splitlines() == ["| Arch | AP | AR |", "|---|---|---|", "| hrnet_de... | 0.712 | 0.500 |"]


def test_results_writer_is_sorted_json(tmp_path):
    path = write(tmp_path, [{"score": 0.5, "image_id": 1}])
    assert json.load(open(path)) == [{"image_id": 1, "score": 0.5}]
    assert open(path).read().index("image_id") < open(path).read().index("score")


def test_other_keypoint_sets_use_their_own_sigmas(tmp_path):
    """A 25-joint set (DeepFashion2 category 1) is scored with the COCO protocol and its own sigmas."""
    from posekit.data.metadata import get_keypoint_set

    fashion = get_keypoint_set("deepfashion2_cat1")
    rng = np.random.RandomState(1)
    images, annotations = [], []
    for index in range(3):
        kpts = np.concatenate([rng.uniform(100, 300, (25, 2)), np.full((25, 1), 2.0)], axis=1)
        images.append({"id": index + 1, "file_name": f"{index + 1:06d}.jpg", "width": 400, "height": 400})
        annotations.append({"id": index + 1, "image_id": index + 1, "category_id": 1, "iscrowd": 0,
                            "num_keypoints": 25, "keypoints": kpts.ravel().tolist(), "area": 40000.0,
                            "bbox": [100, 100, 200, 200]})
    gt_path = str(tmp_path / "gt.json")
    json.dump({"images": images, "annotations": annotations,
               "categories": [{"id": 1, "name": "short_sleeved_shirt"}]}, open(gt_path, "w"))
    assert evaluate_keypoints(gt_path, write(tmp_path, gt_as_results(gt_path)), "coco", fashion)["AP"] == 1.0

    results_path = write(tmp_path, gt_as_results(gt_path, jitter=6.0), "jittered.json")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = pycocotools.coco.COCO(gt_path)
        direct = pycocotools.cocoeval.COCOeval(gt, gt.loadRes(results_path), "keypoints")
        direct.params.kpt_oks_sigmas = np.array(fashion.sigmas)
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
    ours = evaluate_keypoints(gt_path, results_path, "coco", fashion)
    np.testing.assert_allclose(list(ours.values()), direct.stats[:10], atol=1e-6)
    assert 0.0 < ours["AP"] < 1.0
