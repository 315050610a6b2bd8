"""The detector's DatasetMapper on data/samples/coco: sizes, pixels (against Pillow called directly), boxes and
keypoints worked out by hand in the comments, seeded draws, crowd and empty handling, channel order, config."""
import copy
import logging

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from posekit.config import get_cfg
from posekit.data.catalog import load_coco_json
from posekit.data.detection_mapper import DetectionMapper, filter_images_without_instances
from posekit.data.mapped_dataset import MappedDataset
from posekit.data.metadata import COCO
from posekit.utils.errors import ConfigError, DataError

GT = "coco/annotations/person_keypoints_val2017.json"
IMAGE_785 = 0  # 000000000785.jpg: 425 x 640 (height x width), one person, annotation 442619
COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # the COCO left/right swap, written out


@pytest.fixture(scope="module")
def records(samples_dir):
    return load_coco_json(str(samples_dir / GT), str(samples_dir / "coco/images/val2017"))


def detector_cfg(**input_keys):
    """The detector family's tree (detectron2's defaults) with INPUT keys overridden."""
    cfg = get_cfg("detector")
    for key, value in input_keys.items():
        setattr(cfg.INPUT, key, value)
    return cfg


def mapper_with(is_train, **kwargs):
    """A mapper with detectron2's default sizes, flipping on, RGB output, unless overridden."""
    args = {"min_size_train": (800,), "max_size_train": 1333, "min_size_test": 800, "max_size_test": 1333,
            "random_flip": True, "image_format": "RGB", **kwargs}
    return DetectionMapper(is_train, **args)


def eval_mapper(**kwargs):
    return mapper_with(False, **kwargs)


def train_mapper(**kwargs):
    return mapper_with(True, **kwargs)


def pillow_rgb(path, size=None):
    """The image as Pillow decodes it, resized with Pillow's BILINEAR to size (height, width) when given."""
    image = Image.open(path).convert("RGB")
    if size is not None:
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(image)


def hwc(item):
    return item["image"].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("mapper, size", [
    # 800 / 425 scales the width to 640 * 800 / 425 = 1204.7 -> 1205, below 1333.
    (eval_mapper(), (800, 1205)),
    # Long side 1204.7 > 1000: both sides scaled to make it 1000, height 425 * 1000 / 640 = 664.06 -> 664.
    (eval_mapper(max_size_test=1000), (664, 1000)),
    # A shrink: 640 * 200 / 425 = 301.18 -> 301.
    (eval_mapper(min_size_test=200), (200, 301)),
    # detectron2: a test short side of 0 keeps the image as it is.
    (eval_mapper(min_size_test=0), (425, 640)),
    # Training reads MIN_SIZE_TRAIN: 640 * 640 / 425 = 963.76 -> 964.
    (train_mapper(min_size_train=(640,), random_flip=False), (640, 964)),
    # Training caps the long side at MAX_SIZE_TRAIN: 425 * 900 / 640 = 597.66 -> 598.
    (train_mapper(max_size_train=900, random_flip=False), (598, 900)),
])
def test_resized_sizes(records, mapper, size):
    item = mapper(records[IMAGE_785], np.random.SeedSequence(0))
    assert tuple(item["image"].shape) == (3, *size) and item["image"].dtype == torch.uint8
    assert item["instances"].image_size == size
    assert (item["height"], item["width"]) == (425, 640)  # the original size, for mapping predictions back
    assert item["image_id"] == 785 and item["file_name"].endswith("000000000785.jpg")


@pytest.mark.parametrize("short, size", [(800, (800, 1205)), (200, (200, 301))])
def test_pixels_equal_pillow_bilinear(records, short, size):
    record = records[IMAGE_785]
    item = eval_mapper(min_size_test=short)(record, None)
    expected = pillow_rgb(record["file_name"], size)
    assert np.array_equal(hwc(item), expected)
    # OpenCV's bilinear differs from Pillow's (most of all when shrinking), so the equality above has teeth.
    opencv = cv2.resize(pillow_rgb(record["file_name"]), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    assert not np.array_equal(opencv, expected)


def test_channel_order_bgr_and_rgb(records):
    record = records[IMAGE_785]
    rgb = hwc(eval_mapper(image_format="RGB")(record, None))
    bgr = hwc(eval_mapper(image_format="BGR")(record, None))
    assert not np.array_equal(rgb[..., 0], rgb[..., 2])  # a colour image: the order matters
    assert np.array_equal(bgr, rgb[..., ::-1])
    assert np.array_equal(rgb, pillow_rgb(record["file_name"], (800, 1205)))


# Annotation 442619: bbox x, y, w, h = 280.79, 44.73, 218.7, 346.68 -> XYXY (280.79, 44.73, 499.49, 391.41). At
# 800 x 1205 x scales by 1205 / 640 = 1.8828125 and y by 800 / 425: (528.67492, 84.19765, 940.44602, 736.77176).
SCALED_BOX = [528.67492, 84.19765, 940.44602, 736.77176]
# Mirrored in a 1205-wide image: x1' = 1205 - 940.44602, x2' = 1205 - 528.67492.
FLIPPED_BOX = [264.55398, 84.19765, 676.32508, 736.77176]
# Keypoints (json + 0.5): nose (367.5, 81.5) -> (691.93359, 153.41176), mirrored x 1205 - 691.93359 = 513.06641.
# Left eye after the flip is the right eye (360.5, 75.5) -> (678.75391, 142.11765), mirrored x 526.24609.
SCALED_NOSE, FLIPPED_NOSE = [691.93359, 153.41176, 2.0], [513.06641, 153.41176, 2.0]
FLIPPED_LEFT_EYE = [526.24609, 142.11765, 2.0]


def test_boxes_and_keypoints_scaled_by_hand(records):
    item = eval_mapper(keypoint_flip_index=COCO_FLIP, num_joints=17)(records[IMAGE_785], None)
    instances = item["instances"]
    assert instances.gt_boxes[0].tolist() == pytest.approx(SCALED_BOX, abs=1e-3)
    assert instances.gt_classes.tolist() == [0]  # COCO person (category_id 1) is contiguous class 0
    assert instances.gt_keypoints.shape == (1, 17, 3)
    assert instances.gt_keypoints[0, 0].tolist() == pytest.approx(SCALED_NOSE, abs=1e-3)


def test_training_flips_by_seed_and_by_hand(records):
    record = records[IMAGE_785]
    mapper = train_mapper(keypoint_flip_index=COCO_FLIP, num_joints=17)
    unflipped = pillow_rgb(record["file_name"], (800, 1205))
    flipped_count = 0
    for seed in range(12):
        item = mapper(record, np.random.SeedSequence(seed))
        flipped = np.array_equal(hwc(item), unflipped[:, ::-1])
        assert flipped or np.array_equal(hwc(item), unflipped)
        instances = item["instances"]
        assert instances.gt_boxes[0].tolist() == pytest.approx(FLIPPED_BOX if flipped else SCALED_BOX, abs=1e-3)
        if flipped:
            assert instances.gt_keypoints[0, 0].tolist() == pytest.approx(FLIPPED_NOSE, abs=1e-3)
            assert instances.gt_keypoints[0, 1].tolist() == pytest.approx(FLIPPED_LEFT_EYE, abs=1e-3)
        flipped_count += flipped
    assert 0 < flipped_count < 12  # p = 0.5: twelve draws neither all flip nor none


def test_draws_are_reproducible_from_the_seed_sequence(records):
    mapper = train_mapper(min_size_train=(100, 120, 140))
    dataset = MappedDataset(records, mapper, seed=7)
    first, again = dataset[2], dataset[2]
    assert torch.equal(first["image"], again["image"])
    assert torch.equal(first["instances"].gt_boxes, again["instances"].gt_boxes)
    shorts = {mapper(records[IMAGE_785], np.random.SeedSequence(seed))["image"].shape[1] for seed in range(20)}
    assert shorts == {100, 120, 140}  # every listed short side is drawn, and only those


def test_test_mode_never_flips_and_needs_no_seed(records):
    item = eval_mapper(random_flip=True)(records[IMAGE_785], None)
    assert item["instances"].gt_boxes[0].tolist() == pytest.approx(SCALED_BOX, abs=1e-3)
    with pytest.raises(ValueError, match="seed sequence"):
        train_mapper()(records[IMAGE_785], None)


def test_crowd_annotations_are_excluded(records):
    record = copy.deepcopy(records[IMAGE_785])
    crowd = dict(record["annotations"][0], id=1, bbox=[10.0, 10.0, 50.0, 50.0], iscrowd=1)
    record["annotations"].append(crowd)
    record["annotations"].append(dict(crowd, id=2, category_id=99))  # a crowd region of any category is ignored
    instances = eval_mapper()(record, None)["instances"]
    assert len(instances) == 1
    assert instances.gt_boxes[0].tolist() == pytest.approx(SCALED_BOX, abs=1e-3)


def test_other_categories_are_refused(records):
    record = copy.deepcopy(records[IMAGE_785])
    record["annotations"][0]["category_id"] = 3
    with pytest.raises(DataError, match="000000000785.jpg: annotation 442619 has category_id 3"):
        eval_mapper()(record, None)


def test_boxes_clipped_empty_dropped_outside_keypoints_unlabelled(records):
    record = copy.deepcopy(records[IMAGE_785])
    keypoints = [0.0] * 51
    keypoints[0:3] = [650.0, 10.0, 2.0]  # nose: x 650.5 lies right of the 640-wide image
    keypoints[3:6] = [100.0, 20.0, 2.0]  # left eye inside
    partly_outside = dict(record["annotations"][0], id=10, bbox=[600.0, 400.0, 100.0, 50.0], keypoints=keypoints)
    fully_outside = dict(record["annotations"][0], id=11, bbox=[700.0, 10.0, 20.0, 20.0])
    record["annotations"] = [partly_outside, fully_outside]
    instances = eval_mapper(min_size_test=0, keypoint_flip_index=COCO_FLIP, num_joints=17)(record, None)["instances"]
    # (600, 400, 700, 450) clipped to the 640 x 425 image; (700, 10, 720, 30) clips to width 0 and is dropped.
    assert instances.gt_boxes.tolist() == [[600.0, 400.0, 640.0, 425.0]]
    assert instances.gt_keypoints[0, 0].tolist() == [0.0, 0.0, 0.0]
    assert instances.gt_keypoints[0, 1].tolist() == [100.5, 20.5, 2.0]
    assert instances.gt_keypoints[0, 2].tolist() == [0.0, 0.0, 0.0]  # unlabelled (v = 0): all zeros


def test_images_without_instances(records, caplog):
    only_crowd = dict(records[1], annotations=[dict(records[1]["annotations"][0], iscrowd=1)])
    no_annotations = dict(records[2], annotations=[])
    with caplog.at_level(logging.INFO, logger="posekit.data.detection_mapper"):
        kept = filter_images_without_instances([records[0], only_crowd, no_annotations, records[3]])
    assert [record["image_id"] for record in kept] == [785, 197388]
    assert "Removed 2 images" in caplog.text
    # At test time an image without people still maps, with empty instances of its resized size.
    item = eval_mapper(keypoint_flip_index=COCO_FLIP, num_joints=17)(no_annotations, None)
    assert len(item["instances"]) == 0 and item["instances"].gt_boxes.shape == (0, 4)
    assert item["instances"].gt_keypoints.shape == (0, 17, 3)


def test_exif_orientation_applied_and_size_checked(tmp_path):
    raw = (np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.png"
    Image.fromarray(raw).save(path, exif=exif.tobytes())
    record = {"file_name": str(path), "image_id": 1, "height": 3, "width": 2, "annotations": []}
    item = eval_mapper(min_size_test=0)(record, None)
    assert np.array_equal(hwc(item), np.rot90(raw, -1))
    with pytest.raises(DataError, match="rotated.png: the image is 3x2 .* record says 2x3"):
        eval_mapper(min_size_test=0)(dict(record, height=2, width=3), None)


def test_from_config_reads_detectron2_keys(records):
    mapper = DetectionMapper.from_config(detector_cfg(MIN_SIZE_TRAIN=(640, 800), FORMAT="RGB"), is_train=True)
    assert mapper.min_size_train == (640, 800) and mapper.max_size_train == 1333 and mapper.random_flip
    assert mapper.image_format == "RGB" and mapper.num_joints is None
    assert not mapper(records[IMAGE_785], np.random.SeedSequence(0))["instances"].has("gt_keypoints")
    keypoint_cfg = detector_cfg(RANDOM_FLIP="none")
    keypoint_cfg.MODEL.KEYPOINT_ON = True
    mapper = DetectionMapper.from_config(keypoint_cfg, is_train=False)
    assert mapper.keypoint_flip_index == COCO_FLIP and mapper.num_joints == COCO.num_joints
    assert not mapper.random_flip and mapper.image_format == "BGR"
    assert mapper(records[IMAGE_785], None)["instances"].gt_keypoints.shape == (1, 17, 3)


@pytest.mark.parametrize("key, value, message", [
    ("MIN_SIZE_TRAIN_SAMPLING", "range", "INPUT.MIN_SIZE_TRAIN_SAMPLING: only 'choice'"),
    ("RANDOM_FLIP", "vertical", "INPUT.RANDOM_FLIP must be one of horizontal, none"),
    ("FORMAT", "L", "INPUT.FORMAT must be one of BGR, RGB"),
    ("MIN_SIZE_TRAIN", (), "INPUT.MIN_SIZE_TRAIN must be one or more positive ints"),
    ("MAX_SIZE_TEST", 0, "INPUT.MAX_SIZE_TEST must be a positive int"),
])
def test_bad_config_values_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        DetectionMapper.from_config(detector_cfg(**{key: value}), is_train=True)


def test_missing_config_key_is_named():
    cfg = detector_cfg()
    del cfg.INPUT["FORMAT"]
    with pytest.raises(ConfigError, match="config has no key INPUT.FORMAT"):
        DetectionMapper.from_config(cfg, is_train=False)
