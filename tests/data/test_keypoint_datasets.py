"""Data sets on data/samples and on generated data: item layout, loss mask, zip reading, errors, seeding."""
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from posekit.config import get_cfg, load_cfg
from posekit.data import build_dataset, build_test_dataset
from posekit.models.dekr.model import IMAGENET_MEAN, IMAGENET_STD, PIXEL_SCALE
from posekit.models.preprocess import PixelNormalizer
from posekit.utils.errors import DataError


def coco_cfg(root, **dataset):
    cfg = get_cfg()
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.INPUT_SIZE, cfg.DATASET.OUTPUT_SIZE = 256, 64
    for key, value in dataset.items():
        setattr(cfg.DATASET, key, value)
    return cfg


def crowdpose_cfg(root):
    return coco_cfg(root, DATASET="crowd_pose_kpt", DATASET_TEST="crowd_pose", NUM_JOINTS=14, TRAIN="trainval",
                    TEST="test")


def test_coco_sample_items(samples_dir):
    dataset = build_dataset(coco_cfg(samples_dir / "coco"), is_train=True)
    assert len(dataset) == 4
    image, heatmap, mask, offset, offset_weight = dataset[0].values()
    assert list(dataset[0]) == ["image", "heatmap", "mask", "offset", "offset_weight"]
    assert image.shape == (3, 256, 256) and heatmap.shape == mask.shape == (18, 64, 64)
    assert offset.shape == offset_weight.shape == (34, 64, 64)
    assert image.dtype == torch.uint8
    assert all(t.dtype == torch.float32 for t in (heatmap, mask, offset, offset_weight))
    assert heatmap.max() <= 1 and set(np.unique(mask.numpy())) <= {0.0, np.float32(0.1), 1.0}
    assert (offset_weight > 0).any() and heatmap[17].max() > 0.5


def test_crowdpose_sample_items(samples_dir):
    dataset = build_dataset(crowdpose_cfg(samples_dir / "crowdpose"), is_train=True)
    assert len(dataset) == 2
    shapes = [tuple(t.shape) for t in dataset[1].values()]
    assert shapes == [(3, 256, 256), (15, 64, 64), (15, 64, 64), (28, 64, 64), (28, 64, 64)]


def test_test_sets_expose_ground_truth_and_results_ids(samples_dir, tmp_path):
    coco = build_test_dataset(coco_cfg(samples_dir / "coco"))
    assert coco.gt_json.endswith("annotations/person_keypoints_val2017.json") and coco.has_annotations
    image_id, image = coco[0]
    assert image_id == 785 and image.shape == (425, 640, 3) and image.dtype == np.uint8
    assert [coco[i][0] for i in range(len(coco))] == [image["id"] for image in coco.images]
    crowdpose = build_test_dataset(crowdpose_cfg(samples_dir / "crowdpose"))
    assert len(crowdpose) == 2 and crowdpose.category_id(0) == 1
    # test-dev: image information only, images in images/test2017.
    (tmp_path / "annotations").mkdir()
    shutil.copytree(samples_dir / "coco/images/val2017", tmp_path / "images/test2017")
    images = json.loads((samples_dir / "coco/annotations/person_keypoints_val2017.json").read_text())["images"]
    (tmp_path / "annotations/image_info_test-dev2017.json").write_text(json.dumps({"images": images}))
    test_dev = build_test_dataset(coco_cfg(tmp_path, TEST="test-dev2017"))
    assert not test_dev.has_annotations and len(test_dev) == 4


def test_rgb_channel_order(samples_dir):
    coco = build_test_dataset(coco_cfg(samples_dir / "coco"))
    bgr = cv2.imread(str(samples_dir / "coco/images/val2017/000000000785.jpg"))
    assert (coco[0][1] == bgr[..., ::-1]).all()


def _one_image_root(tmp_path, samples_dir, annotations):
    """A COCO root with one sample image (425 x 640) and the given annotations."""
    (tmp_path / "annotations").mkdir(parents=True)
    (tmp_path / "images/train2017").mkdir(parents=True)
    shutil.copy(samples_dir / "coco/images/val2017/000000000785.jpg", tmp_path / "images/train2017")
    data = {"images": [{"id": 785, "file_name": "000000000785.jpg", "height": 425, "width": 640}],
            "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "annotations/person_keypoints_train2017.json").write_text(json.dumps(data))
    return tmp_path


def _person(ann_id, points, **fields):
    keypoints = [0] * 51
    for joint, (x, y) in points.items():
        keypoints[3 * joint: 3 * joint + 3] = [x, y, 2]
    record = {"id": ann_id, "image_id": 785, "iscrowd": 0, "num_keypoints": len(points), "area": 5000.0,
              "keypoints": keypoints, "segmentation": [], "category_id": 1}
    record.update(fields)
    return record


def test_mask_is_zero_under_crowd_regions(tmp_path, samples_dir):
    # Crowd RLE covering image columns 0..159 (column-major runs: 0 background, 160*425 crowd, rest background).
    crowd = {"id": 2, "image_id": 785, "iscrowd": 1, "num_keypoints": 0, "area": 1.0, "keypoints": [0] * 51,
             "category_id": 1, "segmentation": {"size": [425, 640], "counts": [0, 160 * 425, 480 * 425]}}
    root = _one_image_root(tmp_path, samples_dir, [_person(1, {0: (400, 200), 5: (450, 300)}), crowd])
    cfg = coco_cfg(root, MAX_ROTATION=0, MIN_SCALE=1.0, MAX_SCALE=1.0, MAX_TRANSLATE=0, FLIP=0.0)
    mask = build_dataset(cfg, is_train=True)[0]["mask"]
    # Crop: side 425 centred at (320, 212.5); output pixel u sits at image x = (u - 32) * 425 / 64 + 320.
    crowd_columns = [u for u in range(64) if (u - 32) * 425 / 64 + 320 < 158]
    free_columns = [u for u in range(64) if (u - 32) * 425 / 64 + 320 > 162]
    assert crowd_columns and free_columns
    assert (mask[:, :, crowd_columns] == 0).all()
    assert (mask[:, 1:63, free_columns] > 0).all()


def test_zip_images_and_folder_fallback(tmp_path, samples_dir):
    root = _one_image_root(tmp_path, samples_dir, [_person(1, {0: (400, 200)})])
    folder = build_test_dataset(coco_cfg(root, DATA_FORMAT="zip", TEST="train2017"))
    assert not folder.layout.zipped
    with zipfile.ZipFile(root / "images/train2017.zip", "w") as archive:
        archive.write(root / "images/train2017/000000000785.jpg", "000000000785.jpg")
    zipped = build_test_dataset(coco_cfg(root, DATA_FORMAT="zip", TEST="train2017"))
    assert zipped.layout.zipped and (zipped[0][1] == folder[0][1]).all()


@pytest.mark.parametrize("field, value, message", [
    ("keypoints", [0] * 50, "field 'keypoints'"),
    ("area", None, "missing field 'area'"),
])
def test_malformed_annotations_name_file_and_field(tmp_path, samples_dir, field, value, message):
    person = _person(7, {0: (400, 200)})
    if value is None:
        del person[field]  # no box either, so the area cannot be derived
    else:
        person[field] = value
    root = _one_image_root(tmp_path, samples_dir, [person])
    with pytest.raises(DataError, match=rf"person_keypoints_train2017.json: annotation 7: {message}"):
        build_dataset(coco_cfg(root), is_train=True)


def test_missing_files_raise_data_error(tmp_path, samples_dir):
    with pytest.raises(DataError, match="annotation file and image folder not found: looked for annotations .*"
                                         "person_keypoints_train2017.json and images .*images/train2017"):
        build_dataset(coco_cfg(tmp_path), is_train=True)
    (tmp_path / "images/train2017").mkdir(parents=True)
    with pytest.raises(DataError, match="^annotation file not found: .*person_keypoints_train2017.json"):
        build_dataset(coco_cfg(tmp_path), is_train=True)
    root = _one_image_root(tmp_path / "r", samples_dir, [_person(1, {0: (400, 200)})])
    (root / "images/train2017/000000000785.jpg").unlink()
    # Found when the data set is built, before any training step.
    with pytest.raises(DataError, match="1 of 1 listed images are missing from .*train2017: 000000000785.jpg"):
        build_dataset(coco_cfg(root), is_train=True)


def _batches(dataset, workers):
    loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(3))
    return [batch for batch in loader]


def test_samples_depend_only_on_seed_epoch_and_index(samples_dir):
    dataset = build_dataset(coco_cfg(samples_dir / "coco"), is_train=True)
    dataset.set_epoch(1)
    serial, parallel = _batches(dataset, 0), _batches(dataset, 2)
    for batch_a, batch_b in zip(serial, parallel):
        assert batch_a.keys() == batch_b.keys()
        assert all(torch.equal(batch_a[key], batch_b[key]) for key in batch_a)
    epoch1_image = dataset[0]["image"]
    dataset.set_epoch(2)
    assert not torch.equal(dataset[0]["image"], epoch1_image)
    dataset.set_epoch(1)
    assert torch.equal(dataset[0]["image"], epoch1_image)


def test_training_items_equal_those_before_the_shared_foundation(samples_dir):
    """SHA-256 prefixes of every sample item (epochs 0 and 1) recorded with posekit 0e8590d, whose items
    carried the ImageNet-normalised image: the network's normalised input and all targets are unchanged.
    Recorded per OpenCV version: its JPEG decoding and warping change the pixels between versions."""
    records = json.loads((Path(__file__).parent / "dekr_items_before_foundation.json").read_text())
    if cv2.__version__ not in records:
        pytest.skip(f"no pre-foundation record for OpenCV {cv2.__version__} (recorded: {', '.join(records)})")
    recorded = records[cv2.__version__]
    cfg = load_cfg(str(samples_dir.parents[1] / "experiments/samples/dekr_tiny_coco.yaml"),
                   ["DATASET.ROOT", str(samples_dir / "coco")])
    dataset = build_dataset(cfg, is_train=True)
    normalize = PixelNormalizer(IMAGENET_MEAN, IMAGENET_STD, PIXEL_SCALE, "RGB")
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            item = dataset[index]
            tensors = [normalize(item["image"][None])[0]] + [item[key] for key in list(item)[1:]]
            digests = [hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()[:16] for t in tensors]
            assert digests == recorded[f"{epoch}/{index}"], f"epoch {epoch}, item {index}"
