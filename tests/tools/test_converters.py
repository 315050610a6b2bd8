"""tools/deepfashion2_cat1_to_coco.py and tools/crowdpose_concat_train_val.py on generated and malformed data."""
import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from posekit.utils.errors import DataError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deepfashion2 = load_tool("deepfashion2_cat1_to_coco")
crowdpose = load_tool("crowdpose_concat_train_val")


def run_tool_process(name, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "lib"))
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, env=env)


def short_sleeve_top(labelled):
    landmarks = [0] * 75
    for index, (x, y, v) in labelled.items():
        landmarks[3 * index: 3 * index + 3] = [x, y, v]
    return {"category_id": 1, "category_name": "short sleeve top", "style": 1, "landmarks": landmarks,
            "bounding_box": [10, 20, 50, 80], "segmentation": [[10, 20, 50, 20, 50, 80, 10, 80]]}


def write_split(root, split, files, sizes):
    os.makedirs(root / split / "annos")
    os.makedirs(root / split / "image")
    for stem, record in files.items():
        (root / split / "annos" / f"{stem}.json").write_text(json.dumps(record))
        height, width = sizes[stem]
        cv2.imwrite(str(root / split / "image" / f"{stem}.jpg"), np.zeros((height, width, 3), np.uint8))


@pytest.fixture
def deepfashion2_root(tmp_path):
    root = tmp_path / "deepfashion2"
    dress = {"category_id": 11, "landmarks": [0] * 111, "bounding_box": [0, 0, 5, 5], "segmentation": []}
    write_split(root, "train", {
        "000001": {"source": "shop", "pair_id": 1, "item1": dress,
                   "item2": short_sleeve_top({0: (30, 25, 2), 24: (12, 70, 1)})},
        "000002": {"source": "user", "pair_id": 1, "item1": dress},
    }, {"000001": (90, 60), "000002": (10, 10)})
    write_split(root, "validation", {"000003": {"source": "user", "pair_id": 2,
                                                "item1": short_sleeve_top({3: (20, 30, 2)}),
                                                "item2": short_sleeve_top({})}},
                {"000003": (100, 70)})
    return root


def test_category1_items_become_coco_annotations(deepfashion2_root, tmp_path):
    out = tmp_path / "out"
    assert deepfashion2.main(["--input-root", str(deepfashion2_root), "--output-dir", str(out)]) == 0
    train = json.loads((out / "person_keypoints_train2017.json").read_text())
    assert train["images"] == [{"id": 1, "file_name": "000001.jpg", "width": 60, "height": 90}]
    [annotation] = train["annotations"]
    assert annotation["bbox"] == [10, 20, 40, 60] and annotation["area"] == 2400
    assert annotation["num_keypoints"] == 2 and annotation["iscrowd"] == 0 and annotation["category_id"] == 1
    assert annotation["keypoints"][:3] == [30, 25, 2] and annotation["keypoints"][72:] == [12, 70, 1]
    assert annotation["id"] == 1 and annotation["image_id"] == 1
    assert len(train["categories"][0]["keypoints"]) == 25
    val = json.loads((out / "person_keypoints_val2017.json").read_text())
    assert [a["num_keypoints"] for a in val["annotations"]] == [1, 0] and [a["id"] for a in val["annotations"]] == [1, 2]
    assert val["images"][0]["width"] == 70 and val["images"][0]["height"] == 100


def test_sample_has_no_category1_items(samples_dir, tmp_path):
    deepfashion2.main(["--input-root", str(samples_dir / "deepfashion2"), "--output-dir", str(tmp_path)])
    val = json.loads((tmp_path / "person_keypoints_val2017.json").read_text())
    assert val["images"] == [] and val["annotations"] == []


@pytest.mark.parametrize("field, value", [("landmarks", [0] * 74), ("bounding_box", [1, 2, 3]),
                                          ("segmentation", "polygon")])
def test_malformed_deepfashion2_item_is_refused(deepfashion2_root, tmp_path, field, value):
    path = deepfashion2_root / "validation/annos/000003.json"
    record = json.loads(path.read_text())
    record["item1"][field] = value
    path.write_text(json.dumps(record))
    result = run_tool_process("deepfashion2_cat1_to_coco", "--input-root", deepfashion2_root,
                              "--output-dir", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "000003.json: item1" in result.stderr and f"'{field}'" in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_category_id_is_refused(deepfashion2_root, tmp_path):
    (deepfashion2_root / "train/annos/000002.json").write_text(json.dumps({"item1": {"landmarks": []}}))
    with pytest.raises(DataError, match="000002.json: item1: missing field 'category_id'"):
        deepfashion2.main(["--input-root", str(deepfashion2_root), "--output-dir", str(tmp_path)])


def write_crowdpose(path, image_ids, annotation_ids):
    path.write_text(json.dumps({
        "categories": [{"id": 1, "name": "person"}],
        "images": [{"id": i, "file_name": f"{i}.jpg"} for i in image_ids],
        "annotations": [{"id": a, "image_id": image_ids[0]} for a in annotation_ids]}))


def test_crowdpose_concatenation(tmp_path):
    write_crowdpose(tmp_path / "crowdpose_train.json", [5, 6], [50, 51])
    write_crowdpose(tmp_path / "crowdpose_val.json", [1], [10])
    assert crowdpose.main(["--data_dir", str(tmp_path)]) == 0
    merged = json.loads((tmp_path / "crowdpose_trainval.json").read_text())
    assert [i["id"] for i in merged["images"]] == [5, 6, 1]
    assert [a["id"] for a in merged["annotations"]] == [50, 51, 10]
    assert merged["categories"] == [{"id": 1, "name": "person"}]


@pytest.mark.parametrize("val_images, val_annotations, section", [([6], [10], "images"),
                                                                  ([1], [51], "annotations")])
def test_crowdpose_duplicate_ids_are_refused(tmp_path, val_images, val_annotations, section):
    write_crowdpose(tmp_path / "t.json", [5, 6], [50, 51])
    write_crowdpose(tmp_path / "v.json", val_images, val_annotations)
    result = run_tool_process("crowdpose_concat_train_val", "--train", tmp_path / "t.json",
                              "--val", tmp_path / "v.json", "--out", tmp_path / "tv.json")
    assert result.returncode == 2 and f"{section} ids occur more than once" in result.stderr
    assert not (tmp_path / "tv.json").exists()


def test_crowdpose_malformed_input_is_refused(tmp_path):
    write_crowdpose(tmp_path / "crowdpose_train.json", [5], [50])
    (tmp_path / "crowdpose_val.json").write_text(json.dumps({"categories": [], "images": [{"file_name": "x"}]}))
    with pytest.raises(DataError, match=r"crowdpose_val.json: images\[0\]: missing field 'id'"):
        crowdpose.main(["--data_dir", str(tmp_path)])


def test_sample_trainval_is_train_then_val(samples_dir):
    folder = samples_dir / "crowdpose/json"
    train, val, trainval = (json.loads((folder / f"crowdpose_{s}.json").read_text())
                            for s in ("train", "val", "trainval"))
    assert trainval["images"] == train["images"] + val["images"]
    assert trainval["annotations"] == train["annotations"] + val["annotations"]
