"""DEKR on the user's own data (issue 22): keypoint sets from files or from the json's names, the json checked
against the set, ids and categories from the json, tolerant reading, direct paths, missing images, empty lists."""
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.apis.dekr.validation import evaluation_kind, single_image_batches
from posekit.config import family_of, load_cfg
from posekit.data import build_dataset, build_test_dataset
from posekit.data import metadata
from posekit.data.metadata import keypoint_set_from_cfg, load_keypoint_set_file
from posekit.evaluation.evaluator import inference_on_dataset
from posekit.evaluation.keypoints import KeypointEvaluator
from posekit.utils.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
HAND21 = str(REPO / "experiments" / "keypoint_sets" / "hand21.yaml")
# AP-10K's 17 animal keypoints, in its json's order.
AP10K_NAMES = ["left_eye", "right_eye", "nose", "neck", "root_of_tail", "left_shoulder", "left_elbow",
               "left_front_paw", "right_shoulder", "right_elbow", "right_front_paw", "left_hip", "left_knee",
               "left_back_paw", "right_hip", "right_knee", "right_back_paw"]
# AP-10K's json has several animal categories (ids 26 and 1 here), all with the same keypoints.
AP10K_CATEGORIES = [{"id": 26, "name": "dog", "keypoints": AP10K_NAMES}, {"id": 1, "name": "cat", "keypoints": AP10K_NAMES}]
# AI Challenger's 14 keypoints list right joints first; CrowdPose's (same count) left first.
AIC_NAMES = ["right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist", "right_hip",
             "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head_top", "neck"]


def person(ann_id, image_id, num_joints, category_id=1, offset=0.0, **fields):
    """A labelled person: joint j at (10 + 3 j + offset, 20 + 2 j), all visible, with a box."""
    keypoints = []
    for joint in range(num_joints):
        keypoints += [10 + 3 * joint + offset, 20 + 2 * joint, 2]
    record = {"id": ann_id, "image_id": image_id, "category_id": category_id, "keypoints": keypoints,
              "bbox": [5 + offset, 15, 3 * num_joints + 10, 2 * num_joints + 10], "iscrowd": 0,
              "num_keypoints": num_joints, "area": 900.0}
    record.update(fields)
    return {key: value for key, value in record.items() if value is not None}


def write_set(root: Path, split: str, file_names, annotations, categories) -> Path:
    """``custom`` layout: root/annotations/<split>.json and 96x128 images under root/images/<split>/."""
    images = []
    for index, name in enumerate(file_names):
        path = root / "images" / split / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            cv2.imwrite(str(path), np.full((96, 128, 3), 40 * index % 255, np.uint8))
        images.append({"id": 1000 + 7 * index, "file_name": name, "height": 96, "width": 128})
    json_path = root / "annotations" / f"{split}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return json_path


def custom_cfg(root: Path, num_joints: int, *opts):
    return load_cfg(None, ["DATASET.DATASET", "custom", "DATASET.ROOT", str(root), "DATASET.TRAIN", "train",
                           "DATASET.TEST", "val", "DATASET.NUM_JOINTS", str(num_joints), "MODEL.NUM_JOINTS",
                           str(num_joints), "DATASET.INPUT_SIZE", "64", "DATASET.OUTPUT_SIZE", "16", *map(str, opts)])


def hand_category(names=None):
    names = names or list(load_keypoint_set_file(HAND21).joint_names)
    return [{"id": 1, "name": "hand", "keypoints": names}]


def test_hand_set_file_gives_names_links_sigmas_and_colours():
    hand = load_keypoint_set_file(HAND21)
    assert hand.name == "hand21" and hand.num_joints == 21 and hand.flip_index == list(range(21))
    # Wrist, then four joints per finger: the links run wrist -> 1 -> 2 -> 3 -> 4 of each finger.
    expected = [pair for finger in range(5) for pair in zip([0] + [1 + 4 * finger + i for i in range(3)],
                                                            [1 + 4 * finger + i for i in range(4)])]
    assert list(hand.skeleton) == expected
    assert hand.sigmas[0] == 0.029 and hand.sigmas[-1] == 0.031 and len(hand.limb_colours) == 20


def test_json_set_file_maps_names_to_indices_and_checks_them(tmp_path):
    spec = {"name": "stick", "keypoints": ["head", "left_foot", "right_foot"],
            "flip_pairs": [["left_foot", "right_foot"]],
            "sigmas": [0.1, 0.2, 0.2], "skeleton": [["head", "left_foot"], ["head", "right_foot"]]}
    path = tmp_path / "stick.json"
    path.write_text(json.dumps(spec))
    stick = load_keypoint_set_file(str(path))
    assert stick.flip_index == [0, 2, 1] and stick.skeleton == ((0, 1), (0, 2)) and stick.rescore_links == ()
    path.write_text(json.dumps(dict(spec, flip_pairs=[["left_foot", "right_hand"]])))
    with pytest.raises(ConfigError, match=r"stick.json: 'flip_pairs' entry \['left_foot', 'right_hand'\] names "
                                          r"right_hand, not in 'keypoints'"):
        load_keypoint_set_file(str(path))
    path.write_text(json.dumps(dict(spec, sigmas=[0.1])))
    with pytest.raises(ConfigError, match="1 sigmas for 3 joints"):
        load_keypoint_set_file(str(path))


def test_hand_training_and_test_sets_from_a_set_file(tmp_path):
    names = ["seq/a.png", "b.jpg"]
    write_set(tmp_path, "train", names, [person(1, 1000, 21), person(2, 1007, 21)], hand_category())
    cfg = custom_cfg(tmp_path, 21, "DATASET.KEYPOINT_SET", HAND21)
    item = build_dataset(cfg, is_train=True)[0]
    assert item["heatmap"].shape == (22, 16, 16) and item["offset"].shape == (42, 16, 16)
    assert keypoint_set_from_cfg(cfg).name == "hand21"
    # A wrong count is refused before any data is read.
    with pytest.raises(ConfigError, match="DATASET.NUM_JOINTS is 17 but keypoint set 'hand21' has 21 joints"):
        keypoint_set_from_cfg(custom_cfg(tmp_path, 17, "DATASET.KEYPOINT_SET", HAND21))


def test_json_keypoint_names_must_match_the_set(tmp_path, samples_dir):
    # AIC's json with the CrowdPose set (same count, other order): flip pairs and sigmas would be wrong.
    write_set(tmp_path, "train", ["a.jpg"], [person(1, 1000, 14)], [{"id": 1, "name": "person",
                                                                      "keypoints": AIC_NAMES}])
    cfg = custom_cfg(tmp_path, 14, "DATASET.KEYPOINT_SET", "crowdpose")
    with pytest.raises(DataError) as error:
        build_dataset(cfg, is_train=True)
    message = str(error.value)
    assert "train.json: category 1 ('person') lists keypoints ['right_shoulder'," in message
    assert "but keypoint set 'crowdpose' has ['left_shoulder', 'right_shoulder'," in message


def test_set_built_from_the_json_names_with_one_warning(tmp_path, caplog, monkeypatch):
    categories = AP10K_CATEGORIES
    write_set(tmp_path, "train", ["a.jpg"], [person(1, 1000, 17, category_id=26)], categories)
    cfg = custom_cfg(tmp_path, 17)
    reads = []
    monkeypatch.setattr(metadata, "load_json", lambda path: reads.append(path) or json.loads(Path(path).read_text()))
    with caplog.at_level(logging.WARNING):
        first, again = keypoint_set_from_cfg(cfg), keypoint_set_from_cfg(cfg)
    assert first == again and first.joint_names == tuple(AP10K_NAMES)
    assert len(reads) == 1  # the json is read once, however many parts ask for the set
    # Left/right pairs by name: eyes, shoulders, elbows, front paws, hips, knees, back paws.
    assert sorted(first.flip_pairs) == [(0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16)]
    assert set(first.sigmas) == {0.05}
    warnings = [r.getMessage() for r in caplog.records if "keypoint set built from" in r.getMessage()]
    assert len(warnings) == 1 and "every OKS sigma 0.05" in warnings[0]


def test_missing_fields_are_derived_with_one_warning_each(tmp_path, caplog):
    bare = [person(i, 1000, 21, iscrowd=None, num_keypoints=None, area=None) for i in (1, 2)]
    bare[1]["keypoints"][2::3] = [2] * 10 + [0] * 11  # 10 labelled joints
    write_set(tmp_path, "train", ["a.jpg"], bare, hand_category())
    with caplog.at_level(logging.WARNING):
        records = build_dataset(custom_cfg(tmp_path, 21, "DATASET.KEYPOINT_SET", HAND21), is_train=True).records
    annotations = records[0]["annotations"]
    assert [ann["num_keypoints"] for ann in annotations] == [21, 10]
    assert [ann["iscrowd"] for ann in annotations] == [0, 0]
    assert [ann["area"] for ann in annotations] == [(3 * 21 + 10) * (2 * 21 + 10)] * 2  # box width x height
    warnings = [r.getMessage() for r in caplog.records if "annotation(s) without" in r.getMessage()]
    assert sorted(w.split("'")[1] for w in warnings) == ["area", "iscrowd", "num_keypoints"]
    assert all("2 annotation(s)" in w for w in warnings)
    # Test ground truth without a box or a category (COCO's evaluation reads both): the labelled joints'
    # extent, the json's only category (with several, an error naming the annotation).
    del bare[1]["bbox"], bare[1]["category_id"]
    categories = [dict(hand_category()[0], id=4)]
    write_set(tmp_path, "val", ["a.jpg"], bare, categories)
    caplog.clear()
    cfg = custom_cfg(tmp_path, 21, "DATASET.KEYPOINT_SET", HAND21)
    with caplog.at_level(logging.WARNING):
        scored = build_test_dataset(cfg)
    derived = scored.keypoint_file.annotations_by_image[1000][1]
    # Labelled joints 0..9 at x = 10 + 3 j, y = 20 + 2 j: the box from (10, 20) to (37, 38).
    assert derived["bbox"] == [10, 20, 27, 18] and derived["area"] == 27 * 18 and derived["category_id"] == 4
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 annotation(s) without 'bbox': using the labelled keypoints' extent" in m for m in messages)
    assert any("1 annotation(s) without 'category_id': using the json's only category" in m for m in messages)
    write_set(tmp_path, "val", ["a.jpg"], bare, categories + [dict(categories[0], id=5)])
    with pytest.raises(DataError, match=r"val.json: annotation 2: missing field 'category_id'"):
        build_test_dataset(cfg)


def test_files_given_directly_and_layout_errors_name_both_paths(tmp_path):
    json_path = write_set(tmp_path / "elsewhere", "labels", ["x.jpg"], [person(1, 1000, 21)], hand_category())
    opts = ["DATASET.KEYPOINT_SET", HAND21, "DATASET.TRAIN_ANNOTATIONS", json_path,
            "DATASET.TRAIN_IMAGES", tmp_path / "elsewhere/images/labels"]
    assert len(build_dataset(custom_cfg(tmp_path / "root", 21, *opts), is_train=True)) == 1
    with pytest.raises(DataError, match=r"annotation file and image folder not found: looked for annotations "
                                        r".*root/annotations/train.json and images .*root/images/train"):
        build_dataset(custom_cfg(tmp_path / "root", 21, "DATASET.KEYPOINT_SET", HAND21), is_train=True)


def test_missing_images_fail_before_the_job_or_are_skipped(tmp_path, caplog):
    names = [f"f{i}.jpg" for i in range(5)]
    write_set(tmp_path, "train", names, [person(i, 1000 + 7 * i, 21) for i in range(5)], hand_category())
    for name in names[1:]:
        (tmp_path / "images/train" / name).unlink()
    cfg = custom_cfg(tmp_path, 21, "DATASET.KEYPOINT_SET", HAND21)
    with pytest.raises(DataError, match=r"train.json: 4 of 5 listed images are missing from .*images/train: "
                                        r"f1.jpg, f2.jpg, f3.jpg, \.\.\. \(set DATASET.SKIP_MISSING_IMAGES True"):
        build_dataset(cfg, is_train=True)
    with pytest.raises(DataError, match="4 of 5 listed images are missing"):
        build_test_dataset(custom_cfg(tmp_path, 21, "DATASET.KEYPOINT_SET", HAND21, "DATASET.TEST", "train"))
    skipping = custom_cfg(tmp_path, 21, "DATASET.KEYPOINT_SET", HAND21, "DATASET.SKIP_MISSING_IMAGES", "True")
    with caplog.at_level(logging.WARNING):
        assert [r["image_id"] for r in build_dataset(skipping, is_train=True).records] == [1000]
    assert sum("leaving them out" in r.getMessage() for r in caplog.records) == 1


def test_empty_sets_are_errors_naming_the_file(tmp_path):
    write_set(tmp_path, "train", ["a.jpg"], [], hand_category())
    write_set(tmp_path, "val", [], [], hand_category())
    (tmp_path / "images/val").mkdir(parents=True)
    cfg = custom_cfg(tmp_path, 21, "DATASET.KEYPOINT_SET", HAND21)
    with pytest.raises(DataError, match=r"train.json: no image has an annotation: nothing to train on"):
        build_dataset(cfg, is_train=True)
    with pytest.raises(DataError, match=r"val.json: the json lists no images: nothing to test on"):
        build_test_dataset(cfg)
    # Images but an empty annotation list: nothing to score (validation printed -1 and exited 0).
    with pytest.raises(DataError, match=r"train.json: 'annotations' is empty: nothing to score against"):
        build_test_dataset(custom_cfg(tmp_path, 21, "DATASET.KEYPOINT_SET", HAND21, "DATASET.TEST", "train"))


def test_ids_and_categories_come_from_the_json(tmp_path):
    # Non-numeric, nested and repeated file names; two keypoint categories (AP-10K: 26 and 1).
    names = ["seqA/000000.jpg", "seqB/000000.jpg", "img_ab12f.png", "OCHuman-like name.jpg"]
    categories = AP10K_CATEGORIES
    annotations = [person(1, 1000, 17, category_id=26), person(2, 1007, 17, category_id=1),
                   person(3, 1014, 17, category_id=26), person(4, 1014, 17, category_id=26, offset=40.0),
                   person(5, 1021, 17, category_id=1)]
    gt_json = write_set(tmp_path, "val", names, annotations, categories)
    # A DATASET_TEST left over from a CrowdPose yaml neither moves the test json nor selects CrowdPose scoring.
    leftover = custom_cfg(tmp_path, 17, "DATASET.DATASET_TEST", "crowd_pose")
    dataset = build_test_dataset(leftover)
    assert dataset.gt_json == str(gt_json) and evaluation_kind(leftover) == "coco"
    assert [dataset[i][0] for i in range(4)] == [1000, 1007, 1014, 1021]
    assert [dataset.category_id(i) for i in range(4)] == [26, 1, 26, 1]
    assert (dataset[0][1] != dataset[1][1]).any()  # the two 000000.jpg are different images

    # The ground truth fed back as predictions scores AP 1.0 (0.5 when every result says category 1).
    by_image = {}
    for ann in annotations:
        by_image.setdefault(ann["image_id"], []).append(np.asarray(ann["keypoints"], float).reshape(17, 3))

    def ground_truth_as_predictions(inputs):
        return [(np.stack(by_image[item["image_id"]]), np.ones(len(by_image[item["image_id"]])))
                for item in inputs]

    evaluator = KeypointEvaluator(str(gt_json), str(tmp_path / "results.json"), "coco", keypoint_set_from_cfg(
        custom_cfg(tmp_path, 17)))
    metrics = inference_on_dataset(ground_truth_as_predictions, single_image_batches(dataset, len(dataset)),
                                   evaluator, len(dataset), False)
    assert metrics["AP"] == pytest.approx(1.0)
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted({(r["image_id"], r["category_id"]) for r in results}) == [(1000, 26), (1007, 1), (1014, 26),
                                                                            (1021, 1)]


def test_custom_runs_are_named_after_the_data_root():
    def folder(root):
        cfg = load_cfg(None, ["DATASET.DATASET", "custom", "DATASET.ROOT", root])
        return family_of(cfg).run_folders(cfg)[0]
    assert folder("data/mpii/") == "mpii" and folder("/data/hands") == "hands"
    # A root that names no folder (files given directly, relative to the working directory): not '.' or ''.
    assert [folder(root) for root in ("", ".", "/")] == ["custom"] * 3
