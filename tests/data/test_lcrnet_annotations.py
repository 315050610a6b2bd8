"""LCR-Net data: the committed Human3.6M sample json (checked by hand from the camera parameters), the json
reader's errors and rules, the writer, and the CSV reader (lcrnet.md 5)."""
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from posekit.data import lcrnet_annotations as lcr
from posekit.data.catalog import dataset_metadata
from posekit.models.safe_pickle import load_safe_pickle
from posekit.utils.errors import DataError

REPO = Path(__file__).resolve().parents[2]
H36M = REPO / "data" / "samples" / "h36m"
J = 13


def pose_parts(pose):
    """2D (J, 2) and 3D (J, 3) of a flat 5J pose, coordinate-major (lcrnet.md 1.2), written out here."""
    pose = np.asarray(pose, np.float64)
    return np.stack([pose[:J], pose[J:2 * J]], 1), np.stack([pose[2 * J:3 * J], pose[3 * J:4 * J], pose[4 * J:]], 1)


@pytest.fixture(scope="module")
def samples():
    return lcr.load_lcrnet_json(str(H36M / "h36m_lcrnet_samples.json"), str(H36M))


def test_committed_sample_json_is_what_the_tool_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("h36m_to_lcrnet", REPO / "tools" / "h36m_to_lcrnet.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "h36m.json"
    assert tool.main(["--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads((H36M / "h36m_lcrnet_samples.json").read_text())


def test_sample_poses_are_torso_centred_in_lcr_axes(samples):
    for record in samples:
        (ann,) = record["annotations"]
        _, pose3d = pose_parts(ann["pose"])
        assert np.abs(pose3d[[4, 5, 10, 11]].mean(axis=0)).max() < 1e-12
        # LCR axes: Y up, so the head (12) is above the ankles (0, 1) for these upright people ...
        assert pose3d[12, 1] > pose3d[[0, 1], 1].max() + 0.5 or record["image_id"] == 2  # 2 is sitting down
    # ... and the S1 frame, seen from behind, has the person's right on the image's right, so X (toward the
    # image's left) of the right shoulder is smaller than the left one's.
    _, s1 = pose_parts(samples[0]["annotations"][0]["pose"])
    assert s1[10, 0] < s1[11, 0]


def test_one_joint_by_hand_from_world_coordinates_and_the_camera(samples):
    cameras = load_safe_pickle(str(H36M / "cameras.pkl"))
    coco = json.loads((H36M / "h36m_coco.json").read_text())
    world = np.asarray(coco["annotations"][0]["keypoints_3d"], np.float64).reshape(17, 4)[:, :3]
    assert coco["images"][0]["file_name"] == os.path.basename(samples[0]["file_name"])
    camera = cameras[("S1", "54138969")]
    # Camera frame: R^T (X_world - T) (lcrnet.md 8.1), then LCR: X = -x, Y = -y, Z = z.
    in_camera = (camera["R"].T @ (world.T - camera["T"])).T
    lcr_axes = in_camera * [-1, 1, 1] * [1, -1, 1]
    # Torso centre from the H36M joints: right hip 1, left hip 4, left shoulder 11, right shoulder 14.
    centre = lcr_axes[[1, 4, 11, 14]].mean(axis=0)
    right_wrist = lcr_axes[16] - centre   # H36M 16 -> LCR 6
    pose2d, pose3d = pose_parts(samples[0]["annotations"][0]["pose"])
    np.testing.assert_allclose(pose3d[6], right_wrist, atol=1e-6)
    # 2D straight from the COCO file's keypoints (the annotated, distorted projection).
    keypoints = np.asarray(coco["annotations"][0]["keypoints"], np.float64).reshape(17, 3)
    np.testing.assert_allclose(pose2d[6], keypoints[16, :2], atol=1e-4)


def test_sample_boxes_and_fields(samples):
    ann = samples[0]["annotations"][0]
    pose2d, _ = pose_parts(ann["pose"])
    x, y, w, h = ann["bbox"]
    extent = pose2d.max(0) - pose2d.min(0)
    np.testing.assert_allclose([x, y], pose2d.min(0) - 0.1 * extent)
    np.testing.assert_allclose([w, h], 1.2 * extent)
    assert ann["area"] == pytest.approx((w + 1) * (h + 1)) and ann["category_id"] == 1 and ann["iscrowd"] == 0


def write_json(path, annotations, size=(100, 200)):
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": size[0], "width": size[1]}],
            "annotations": annotations, "categories": [lcr.PERSON_CATEGORY]}
    path.write_text(json.dumps(data))
    return str(path)


def test_reader_rejects_a_pose_of_the_wrong_length(tmp_path):
    bad = lcr.lcrnet_annotation(5, 1, [10, 10, 50, 90], [0.0] * 64)
    with pytest.raises(DataError, match=r"bad.json: annotation 5: field 'pose' must be a list of 65 finite numbers"
                                        r".*got 64 entries"):
        lcr.load_lcrnet_json(write_json(tmp_path / "bad.json", [bad]), str(tmp_path))
    with pytest.raises(DataError, match="list of 85 finite numbers"):
        lcr.load_lcrnet_json(write_json(tmp_path / "bad.json", [bad]), str(tmp_path), num_joints=17)


def test_reader_leaves_out_what_the_seed_leaves_out(tmp_path):
    pose = [1.0] * 65
    good = lcr.lcrnet_annotation(1, 1, [10, 10, 50, 90], pose)
    ignored = dict(lcr.lcrnet_annotation(2, 1, [10, 10, 50, 90], pose), ignore=1)
    outside = lcr.lcrnet_annotation(3, 1, [300, 10, 350, 90], pose)  # x beyond the 200 px wide image
    zero = dict(lcr.lcrnet_annotation(4, 1, [10, 10, 50, 90], pose), area=0)
    records = lcr.load_lcrnet_json(write_json(tmp_path / "a.json", [good, ignored, outside, zero]), str(tmp_path))
    assert [ann["id"] for ann in records[0]["annotations"]] == [1]


def test_annotation_fields_as_csv2coco_writes_them():
    ann = lcr.lcrnet_annotation(0, 3, [10, 20, 50, 100], [2.0] * 65)
    assert ann["bbox"] == [10, 20, 40, 80] and ann["area"] == 41 * 81
    assert ann["segmentation"] == [[10, 20, 10, 60, 10, 100, 30, 100, 50, 100, 50, 60, 50, 20, 30, 20]]


def csv_row(image, box, pose_value=1.5, label="person", joints=J):
    return ",".join([image] + [str(v) for v in box] + [str(pose_value)] * (5 * joints) + [label])


def test_csv_reader_groups_by_basename_and_names_bad_rows(tmp_path):
    good = tmp_path / "train.csv"
    good.write_text("\n".join([csv_row("x/b.jpg", [1, 2, 3, 4]), csv_row("y/a.jpg", [5, 6, 7, 8]),
                               csv_row("z/b.jpg", [9, 10, 11, 12])]) + "\n")
    people = lcr.read_pseudo_gt_csv(str(good))
    assert list(people) == ["b.jpg", "a.jpg"] and [p.box for p in people["b.jpg"]] == [[1, 2, 3, 4], [9, 10, 11, 12]]
    assert people["a.jpg"][0].pose == [1.5] * 65 and people["a.jpg"][0].image == "y/a.jpg"
    bad = tmp_path / "bad.csv"
    bad.write_text(csv_row("a.jpg", [1, 2, 3, 4]) + "\n" + csv_row("b.jpg", [1, 2, 3, 4], joints=12) + "\n")
    with pytest.raises(DataError, match=r"bad.csv: row 2 has 66 columns ending 'person'; expected 71"):
        lcr.read_pseudo_gt_csv(str(bad))
    text = tmp_path / "text.csv"
    text.write_text(csv_row("a.jpg", [1, "two", 3, 4]) + "\n")
    with pytest.raises(DataError, match=r"text.csv: row 1: could not convert string to float: 'two'"):
        lcr.read_pseudo_gt_csv(str(text))


def test_sample_set_is_registered():
    assert dataset_metadata("h36m_lcrnet_samples")["json_file"].endswith("samples/h36m/h36m_lcrnet_samples.json")
