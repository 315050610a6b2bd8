"""Data-set catalog: registration, lazy loading, standard names on data/samples, COCO-style records and
annotations -> Instances (expected values read off the sample json by hand)."""
import copy
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from posekit.data.annotations import load_keypoint_file
from posekit.data.catalog import (annotations_to_instances, dataset_metadata, get_dataset_records, load_coco_json,
                                  register_dataset, registered_datasets, unregister_dataset)
from posekit.utils.errors import ConfigError, DataError

COCO_VAL = "coco/annotations/person_keypoints_val2017.json"


@pytest.fixture
def scratch_name():
    """A data-set name that is unregistered again after the test."""
    name = "test_catalog_scratch"
    yield name
    if name in registered_datasets():
        unregister_dataset(name)


def test_registration_is_lazy_and_unique(scratch_name):
    calls = []

    def loader():
        calls.append(1)
        return [{"file_name": "a.jpg", "image_id": 1, "height": 2, "width": 3, "annotations": []}]

    register_dataset(scratch_name, loader, {"evaluator": "coco"})
    assert calls == [] and scratch_name in registered_datasets()
    assert get_dataset_records(scratch_name)[0]["image_id"] == 1 and calls == [1]
    metadata = dataset_metadata(scratch_name)
    metadata["evaluator"] = "changed"
    assert dataset_metadata(scratch_name) == {"evaluator": "coco"}
    with pytest.raises(ConfigError, match=f"'{scratch_name}' is already registered"):
        register_dataset(scratch_name, loader)


def test_unknown_names_suggest_the_closest():
    with pytest.raises(ConfigError) as info:
        get_dataset_records("coco_2017_vall")
    message = str(info.value)
    assert "unknown data set 'coco_2017_vall'" in message and "closest registered: coco_2017_val" in message
    with pytest.raises(ConfigError) as info:
        dataset_metadata("zzzz")
    # Nothing is close: every registered name is listed.
    assert "registered: coco_2017_train, coco_2017_train_samples, coco_2017_val, coco_2017_val_samples, " \
           "crowdpose_test" in str(info.value)


def test_loader_errors_name_the_data_set_and_the_file(scratch_name, tmp_path):
    missing = tmp_path / "nowhere.json"
    register_dataset(scratch_name, lambda: load_coco_json(str(missing), str(tmp_path)))
    with pytest.raises(DataError) as info:
        get_dataset_records(scratch_name)
    assert f"data set '{scratch_name}'" in str(info.value) and str(missing) in str(info.value)


def run_with_data_root(root, code):
    """Run ``code`` (which prints one json line) in a fresh interpreter whose POSEKIT_DATASETS is ``root``."""
    env = dict(os.environ, POSEKIT_DATASETS=str(root))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


STANDARD_PROBE = """
import json
from posekit.data.catalog import dataset_metadata, get_dataset_records
from posekit.utils.errors import DataError
out = {}
for name in ("coco_2017_val", "crowdpose_test", "densepose_coco_2014_minival"):
    try:
        records = get_dataset_records(name)
        out[name] = [[r["file_name"], r["image_id"], r["height"], r["width"], len(r["annotations"])] for r in records]
    except DataError as err:
        out[name] = "DataError: " + str(err)
out["metadata"] = dataset_metadata("densepose_coco_2014_train")
print(json.dumps(out))
"""


def test_standard_names_on_the_samples(samples_dir):
    out = run_with_data_root(samples_dir, STANDARD_PROBE)
    images = samples_dir / "coco/images/val2017"
    assert out["coco_2017_val"] == [[str(images / "000000000785.jpg"), 785, 425, 640, 1],
                                    [str(images / "000000040083.jpg"), 40083, 333, 500, 3],
                                    [str(images / "000000196141.jpg"), 196141, 429, 640, 5],
                                    [str(images / "000000197388.jpg"), 197388, 392, 640, 5]]
    crowd_images = samples_dir / "crowdpose/images"
    assert out["crowdpose_test"] == [[str(crowd_images / "106848.jpg"), 106848, 425, 640, 3],
                                     [str(crowd_images / "103319.jpg"), 103319, 480, 640, 2]]
    # No DensePose-COCO json among the samples: the error names the missing file and the data set.
    wanted = samples_dir / "coco/annotations/densepose_minival2014.json"
    assert out["densepose_coco_2014_minival"] == f"DataError: data set 'densepose_coco_2014_minival': " \
                                                 f"{wanted}: file not found"
    assert out["metadata"] == {"json_file": str(samples_dir / "coco/annotations/densepose_train2014.json"),
                               "image_root": str(samples_dir / "coco/images/train2014"),
                               "image_archive": str(samples_dir / "coco/images/train2014.zip"),
                               "keypoint_set": "coco", "evaluator": "densepose"}


def test_standard_names_read_zipped_images(samples_dir, tmp_path):
    (tmp_path / "coco/annotations").mkdir(parents=True)
    (tmp_path / COCO_VAL).write_bytes((samples_dir / COCO_VAL).read_bytes())
    (tmp_path / "coco/images").mkdir()
    with zipfile.ZipFile(tmp_path / "coco/images/val2017.zip", "w") as archive:
        archive.write(samples_dir / "coco/images/val2017/000000000785.jpg", "000000000785.jpg")
    code = ("import json\nfrom posekit.data.catalog import get_dataset_records\n"
            "from posekit.data.image_io import read_rgb\n"
            "record = get_dataset_records('coco_2017_val')[0]\n"
            "print(json.dumps([record['file_name'], list(read_rgb(record['file_name']).shape)]))")
    file_name, shape = run_with_data_root(tmp_path, code)
    assert file_name == f"{tmp_path}/coco/images/val2017.zip@000000000785.jpg" and shape == [425, 640, 3]
    # Neither the folder nor the zip: the error names both.
    os.remove(tmp_path / "coco/images/val2017.zip")
    with pytest.raises(subprocess.CalledProcessError) as info:
        run_with_data_root(tmp_path, code)
    assert f"image folder not found: {tmp_path}/coco/images/val2017 (nor {tmp_path}/coco/images/val2017.zip)" \
        in info.value.stderr


def test_records_keep_every_annotation_field(samples_dir):
    json_file = samples_dir / COCO_VAL
    original = json.loads(json_file.read_text())
    records = load_coco_json(str(json_file), "imgs")
    assert [r["file_name"] for r in records] == [os.path.join("imgs", i["file_name"]) for i in original["images"]]
    loaded = [ann for record in records for ann in record["annotations"]]
    assert sorted(loaded, key=lambda a: a["id"]) == sorted(original["annotations"], key=lambda a: a["id"])
    assert all(set(ann) == set(original["annotations"][0]) for ann in loaded)


def densepose_file(samples_dir, tmp_path):
    """The COCO sample turned DensePose-COCO-like: person 198196 carries DensePose, 230195 has no keypoints,
    1202706 is a crowd, 1 (made up) has five dp fields but no dp_masks."""
    data = json.loads((samples_dir / COCO_VAL).read_text())
    by_id = {ann["id"]: ann for ann in data["annotations"]}
    canvas = np.zeros((256, 256), np.uint8)
    canvas[10:20, 30:40] = 1
    torso = mask_utils.encode(np.asfortranarray(canvas))
    torso["counts"] = torso["counts"].decode()
    by_id[198196].update(dp_x=[10.0, 128.5, 250.0], dp_y=[5.0, 60.0, 255.0], dp_I=[1.0, 3.0, 24.0],
                         dp_U=[0.1, 0.5, 0.9], dp_V=[0.2, 0.4, 0.6], dp_masks=[torso] + [[]] * 13)
    del by_id[230195]["keypoints"], by_id[230195]["num_keypoints"]
    by_id[1202706]["iscrowd"] = 1
    partial = dict(copy.deepcopy(by_id[198196]), id=1)
    del partial["dp_masks"]
    data["annotations"].append(partial)
    path = tmp_path / "densepose_minival2014.json"
    path.write_text(json.dumps(data))
    return path


def test_densepose_records_to_instances(samples_dir, tmp_path):
    records = load_coco_json(str(densepose_file(samples_dir, tmp_path)), str(samples_dir / "coco/images/val2017"))
    record = records[1]
    assert record["image_id"] == 40083 and [a["id"] for a in record["annotations"]] == [198196, 230195, 1202706, 1]
    assert "keypoints" not in record["annotations"][1] and record["annotations"][0]["dp_I"] == [1.0, 3.0, 24.0]
    people = annotations_to_instances(record["annotations"], (record["height"], record["width"]))
    assert people.image_size == (333, 500) and len(people) == 3  # the crowd is left out
    # bbox [38.08, 110.95, 174.71, 174.71] -> (38.08, 110.95, 212.79, 285.66); [257.76, 139.06, 140.05, 154.21]
    # -> (257.76, 139.06, 397.81, 293.27).
    assert torch.allclose(people.gt_boxes[:2], torch.tensor([[38.08, 110.95, 212.79, 285.66],
                                                             [257.76, 139.06, 397.81, 293.27]]))
    assert people.gt_classes.tolist() == [1, 1, 1] and people.gt_classes.dtype == torch.int64
    # Person 198196's first joints (99, 144, 2), (104, 141, 2) move to the pixel centres; 230195 has none.
    assert people.gt_keypoints.shape == (3, 17, 3)
    assert people.gt_keypoints[0, :2].tolist() == [[99.5, 144.5, 2.0], [104.5, 141.5, 2.0]]
    assert not people.gt_keypoints[1].any()
    assert people.gt_masks[0][0][:4] == [98.56, 273.72, 132.9, 267]
    dense, none_without_fields, none_without_masks = people.gt_densepose
    assert none_without_fields is None and none_without_masks is None
    assert dense.x.tolist() == [10.0, 128.5, 250.0] and dense.y.tolist() == [5.0, 60.0, 255.0]
    assert dense.chart.tolist() == [1, 3, 24] and torch.allclose(dense.u, torch.tensor([0.1, 0.5, 0.9]))
    assert mask_utils.decode(dense.part_masks[0]).sum() == 100 and dense.part_masks[1] == []


def test_fixed_joint_count_and_empty_images():
    people = annotations_to_instances([], (10, 20), num_joints=17)
    assert people.gt_boxes.shape == (0, 4) and people.gt_keypoints.shape == (0, 17, 3)
    assert not annotations_to_instances([], (10, 20)).has("gt_keypoints")
    boxes_only = annotations_to_instances([{"id": 5, "bbox": [1, 2, 3, 4], "category_id": 7}], (10, 20))
    assert boxes_only.gt_boxes.tolist() == [[1.0, 2.0, 4.0, 6.0]] and boxes_only.gt_classes.tolist() == [7]
    assert not boxes_only.has("gt_keypoints") and not boxes_only.has("gt_masks")
    with pytest.raises(DataError, match="annotation 5: field 'keypoints' must be a list of 42 numbers"):
        annotations_to_instances([{"id": 5, "bbox": [1, 2, 3, 4], "category_id": 7, "keypoints": [0] * 51}],
                                 (10, 20), num_joints=14)
    with pytest.raises(DataError, match="annotation 6: missing field 'category_id'"):
        annotations_to_instances([{"id": 6, "bbox": [1, 2, 3, 4]}], (10, 20))


def write_json(tmp_path, annotations, images=None):
    path = tmp_path / "file.json"
    images = images or [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 20}]
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return str(path)


def box(ann_id, **fields):
    return dict({"id": ann_id, "image_id": 1, "bbox": [0, 0, 5, 5], "category_id": 1}, **fields)


@pytest.mark.parametrize("annotations, images, message", [
    ([{"id": 3, "image_id": 1, "category_id": 1}], None, "annotation 3: missing field 'bbox'"),
    ([box(3, bbox=[0, 0, 5])], None, "annotation 3: field 'bbox' must be a list of 4 numbers"),
    ([box(3, keypoints=[0] * 6), box(4, keypoints=[0] * 9)], None,
     "annotation 4: field 'keypoints' must be a list of 6 numbers"),
    ([box(3, dp_x=[1.0], dp_y=[1.0, 2.0], dp_I=[1], dp_U=[0.5], dp_V=[0.5], dp_masks=[[]] * 14)], None,
     "annotation 3: fields dp_x, dp_y, dp_I, dp_U, dp_V must be lists of one length, got dp_x: 1, dp_y: 2"),
    ([box(3, dp_x=[1.0], dp_y=[1.0], dp_I=[25], dp_U=[0.5], dp_V=[0.5], dp_masks=[[]] * 14)], None,
     "annotation 3: field 'dp_I' must hold charts 1..24"),
    ([box(3, dp_x=[1.0], dp_y=[1.0], dp_I=[2], dp_U=[0.5], dp_V=[0.5], dp_masks=[[]] * 15)], None,
     "annotation 3: field 'dp_masks' must be a list of 14 entries"),
    ([], [{"id": 1, "file_name": "a.jpg", "width": 20}], r"images\[0\]: missing field 'height'"),
])
def test_file_checks_name_file_annotation_and_field(tmp_path, annotations, images, message):
    path = write_json(tmp_path, annotations, images)
    with pytest.raises(DataError, match=message) as info:
        load_coco_json(path, "imgs")
    assert str(info.value).startswith(path)


def test_joint_counts_and_zip_roots(tmp_path):
    path = write_json(tmp_path, [box(3, keypoints=[0] * 6), box(4)])
    assert [len(r["annotations"]) for r in load_coco_json(path, "imgs")] == [2]
    assert load_keypoint_file(path, None).num_joints == 2
    # An int joint count keeps the DEKR rule: every annotation carries keypoints (iscrowd and num_keypoints
    # are derived when absent).
    with pytest.raises(DataError, match="annotation 4: missing field 'keypoints'"):
        load_coco_json(path, "imgs", num_joints=2)
    assert load_coco_json(path, "images.zip", zipped=True)[0]["file_name"] == "images.zip@a.jpg"
    with pytest.raises(ConfigError, match="'.zip' archive"):
        load_coco_json(path, "images", zipped=True)
