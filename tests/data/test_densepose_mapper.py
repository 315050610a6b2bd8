"""The DensePose mapper: points kept through resize, flipped per densepose.md §5.3 with a generated stand-in
symmetry file (expected values worked out by hand in the comments), the missing-file error, the sample set
through the catalog and the training setup."""
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from scipy.io import savemat

from posekit.apis.densepose.training import densepose_training
from posekit.config import load_cfg
from posekit.data.catalog import annotations_to_instances, get_dataset_records
from posekit.data.densepose_mapper import DensePoseMapper, load_densepose_flip
from posekit.utils.errors import ConfigError, DataError

TINY = "experiments/samples/densepose_tiny.yaml"
SAMPLES = "densepose_coco_samples"


def stand_in_tables(chart, table_index):
    """Stand-in table of ``chart``: chart / 100 + index / 1000, the index being û (U table) or v̂ (V table)."""
    return chart / 100 + table_index / 1000


@pytest.fixture(scope="module")
def symmetry_file(tmp_path_factory):
    """A UV_symmetry_transforms.mat stand-in: U_t[c][v̂, û] = c/100 + û/1000, V_t[c][v̂, û] = c/100 + v̂/1000."""
    rows, cols = np.mgrid[0:256, 0:256]
    u_cells = np.empty((1, 24), object)
    v_cells = np.empty((1, 24), object)
    for chart in range(1, 25):
        u_cells[0, chart - 1] = stand_in_tables(chart, cols)
        v_cells[0, chart - 1] = stand_in_tables(chart, rows)
    path = tmp_path_factory.mktemp("uv") / "UV_symmetry_transforms.mat"
    savemat(str(path), {"U_transforms": u_cells, "V_transforms": v_cells})
    return path


def single_pixel_rle(row, col):
    mask = np.zeros((256, 256), np.uint8)
    mask[row, col] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [256, 256], "counts": rle["counts"].decode("ascii")}


def hand_record():
    """A 100 x 120 (height x width) image: one DensePose person, one box-only person."""
    masks = [[] for _ in range(14)]
    masks[0] = single_pixel_rle(5, 10)  # torso
    masks[1] = single_pixel_rle(7, 3)  # right hand
    person = {"id": 1, "bbox": [10, 20, 40, 60], "category_id": 1, "iscrowd": 0,
              "dp_x": [10, 200.5, 0], "dp_y": [20, 100, 255], "dp_I": [3, 23, 1], "dp_U": [0.5, 0.1, 1.0],
              "dp_V": [0.25, 0.9, 0.0], "dp_masks": masks}
    other = {"id": 2, "bbox": [70, 10, 30, 50], "category_id": 1, "iscrowd": 0}
    return {"file_name": "hand.jpg", "image_id": 1, "height": 100, "width": 120, "annotations": [person, other]}


def flip_drawn(seed):
    """Whether a one-size training mapper flips under ``seed``: draws are the size index, then the flip."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    rng.integers(1)
    return rng.random() < 0.5


def seed_with(flip):
    return next(seed for seed in range(100) if flip_drawn(seed) == flip)


def train_mapper(symmetry_file):
    return DensePoseMapper(True, 100, 1333, 100, 1333, random_flip=True, image_format="RGB",
                           densepose_flip=load_densepose_flip(str(symmetry_file)))


def test_flip_mirrors_points_charts_uv_and_masks(symmetry_file):
    item = train_mapper(symmetry_file).map_image(np.zeros((100, 120, 3), np.uint8), hand_record(),
                                                 np.random.SeedSequence(seed_with(True)))
    instances = item["instances"]
    # Boxes: x -> 120 - x, so [10, 20, 50, 80] -> [70, 20, 110, 80] and [70, 10, 100, 60] -> [20, 10, 50, 60].
    assert instances.gt_boxes.tolist() == [[70, 20, 110, 80], [20, 10, 50, 60]]
    points, no_points = instances.gt_densepose
    assert no_points is None
    assert points.x.tolist() == [246, 55.5, 256] and points.y.tolist() == [20, 100, 255]
    # Charts 3 (right hand) -> 4, 23 (head) -> 24, 1 (torso back) stays.
    assert points.chart.tolist() == [4, 24, 1]
    # û = floor(255 U) = 127, 25, 255 and v̂ = floor(255 V) = 63, 229, 0, read on the original charts 3, 23, 1.
    assert points.u.tolist() == pytest.approx([0.03 + 0.127, 0.23 + 0.025, 0.01 + 0.255], abs=1e-6)
    assert points.v.tolist() == pytest.approx([0.03 + 0.063, 0.23 + 0.229, 0.01 + 0.0], abs=1e-6)
    # Torso stays part 1 with its pixel at column 255 - 10; the right hand's mask becomes the left hand's (3).
    decoded = [None if mask == [] else mask_utils.decode(mask) for mask in points.part_masks]
    assert np.argwhere(decoded[0]).tolist() == [[5, 245]]
    assert decoded[1] is None and np.argwhere(decoded[2]).tolist() == [[7, 252]]
    assert all(mask is None for mask in decoded[3:])


def test_unflipped_training_item_keeps_the_points(symmetry_file):
    item = train_mapper(symmetry_file).map_image(np.zeros((100, 120, 3), np.uint8), hand_record(),
                                                 np.random.SeedSequence(seed_with(False)))
    points = item["instances"].gt_densepose[0]
    assert item["instances"].gt_boxes.tolist()[0] == [10, 20, 50, 80]
    assert points.x.tolist() == [10, 200.5, 0] and points.chart.tolist() == [3, 23, 1]
    assert points.u.tolist() == pytest.approx([0.5, 0.1, 1.0])


@pytest.fixture
def sample_records(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    return get_dataset_records(SAMPLES)


def test_resize_scales_boxes_and_keeps_box_relative_points(sample_records):
    record = sample_records[1]  # 240 x 420: a DensePose person at [20, 30, 171, 178], a box-only one
    mapper = DensePoseMapper(False, 120, 1333, 120, 1333, random_flip=False, image_format="RGB")
    item = mapper(record, None)
    instances = item["instances"]
    # Short side 240 -> 120: every coordinate halves.
    assert tuple(item["image"].shape) == (3, 120, 210)
    assert instances.gt_boxes.tolist() == [[10, 15, 95.5, 104], [115, 20, 200.5, 109]]
    points, no_points = instances.gt_densepose
    ann = record["annotations"][0]
    assert no_points is None
    assert torch.equal(points.x, torch.tensor(ann["dp_x"], dtype=torch.float32))
    assert torch.equal(points.y, torch.tensor(ann["dp_y"], dtype=torch.float32))
    assert points.chart.tolist() == [int(chart) for chart in ann["dp_I"]]
    assert points.part_masks == ann["dp_masks"]


def test_training_without_flip_needs_no_symmetry_file(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    setup = densepose_training(load_cfg(TINY, []))
    instances = setup.dataset[0]["instances"]
    assert len(setup.dataset) == 3
    assert instances.has("gt_densepose") and len(instances.gt_densepose[0]) == 125


def flipping_cfg(repo_root, symmetry_path=None):
    opts = ["INPUT.RANDOM_FLIP", "horizontal"]
    if symmetry_path is not None:
        opts += ["DENSEPOSE_DATA.UV_SYMMETRY_FILE", str(symmetry_path)]
    return load_cfg(str(repo_root / TINY), opts)


def test_missing_symmetry_file_names_it_and_the_way_out(repo_root, tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.mat"
    with pytest.raises(DataError, match=f"{missing}: UV symmetry file not found.*INPUT.RANDOM_FLIP none"):
        DensePoseMapper.from_config(flipping_cfg(repo_root, missing), is_train=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="data/densepose/UV_symmetry_transforms.mat: UV symmetry file not found"):
        DensePoseMapper.from_config(flipping_cfg(repo_root), is_train=True)
    # Test mappers never flip, so they need no file.
    assert DensePoseMapper.from_config(flipping_cfg(repo_root), is_train=False).densepose_flip is None
    with pytest.raises(ConfigError, match="UV symmetry tables"):
        DensePoseMapper(True, 100, 1333, 100, 1333, random_flip=True)


def test_config_key_loads_the_symmetry_file(repo_root, symmetry_file):
    mapper = DensePoseMapper.from_config(flipping_cfg(repo_root, symmetry_file), is_train=True)
    # U table of chart 5 at (v̂, û) = (2, 7): 5 / 100 + 7 / 1000.
    assert mapper.densepose_flip.u_transforms[4, 2, 7] == pytest.approx(0.057)


def test_sample_set_loads_with_densepose_on_the_annotated_people(sample_records):
    assert [(record["height"], record["width"]) for record in sample_records] == [(400, 400), (240, 420),
                                                                                  (320, 300)]
    entries = []
    for record in sample_records:
        instances = annotations_to_instances(record["annotations"], (record["height"], record["width"]))
        entries.extend(instances.gt_densepose)
    assert [entry is None for entry in entries] == [False, False, True, False]
    assert all(len(entry) == 125 and len(entry.part_masks) == 14 for entry in entries if entry is not None)
