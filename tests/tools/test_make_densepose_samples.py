"""tools/make_densepose_samples.py: regenerating the sample set reproduces the committed files; the json's
points and masks agree with the source npz by checks worked out independently of the tool."""
import importlib.util
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(REPO, "data", "samples", "densepose", "demo_dp_single_ann.npz")
COMMITTED = os.path.join(REPO, "data", "samples", "densepose_coco")
JSON = os.path.join("annotations", "densepose_samples.json")
# Coarse part (dp_masks slot 1..14) -> its fine charts, as the DensePose-COCO release describes them.
CHARTS_OF_PART = {1: (1, 2), 2: (3,), 3: (4,), 4: (5,), 5: (6,), 6: (7, 9), 7: (8, 10), 8: (11, 13), 9: (12, 14),
                  10: (15, 17), 11: (16, 18), 12: (19, 21), 13: (20, 22), 14: (23, 24)}


def load_tool():
    spec = importlib.util.spec_from_file_location("make_densepose_samples",
                                                  os.path.join(REPO, "tools", "make_densepose_samples.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("densepose_coco")
    load_tool().make_samples(SOURCE, str(out))
    return out


def read_json(root):
    with open(os.path.join(root, JSON), encoding="utf-8") as handle:
        return json.load(handle)


def test_regeneration_reproduces_the_committed_files(regenerated):
    assert read_json(regenerated) == read_json(COMMITTED)
    names = sorted(os.listdir(os.path.join(COMMITTED, "images")))
    assert names == sorted(os.listdir(regenerated / "images")) and len(names) == 3
    for name in names:
        committed = cv2.imread(os.path.join(COMMITTED, "images", name)).astype(np.int16)
        fresh = cv2.imread(str(regenerated / "images" / name)).astype(np.int16)
        # JPEG: another libjpeg build may round a few values differently.
        assert committed.shape == fresh.shape and np.abs(committed - fresh).mean() < 1.0
    with open(os.path.join(COMMITTED, "LICENSE.densepose"), "rb") as handle:
        assert handle.read() == (regenerated / "LICENSE.densepose").read_bytes()


def test_points_are_the_npz_points_in_the_box_frame():
    person = np.load(SOURCE, allow_pickle=False)
    height, width = person["image_crop"].shape[:2]
    for ann in read_json(COMMITTED)["annotations"]:
        if "dp_x" not in ann:
            continue
        # The box frame spans 256: back in crop pixels dp * side / 256 must be the npz's x, y.
        np.testing.assert_allclose(np.asarray(ann["dp_x"]) * width / 256, person["x"], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(ann["dp_y"]) * height / 256, person["y"], rtol=1e-12)
        assert ann["dp_I"] == person["I"].tolist() and ann["dp_U"] == person["U"].tolist()


def test_each_part_mask_covers_its_points_and_absent_parts_are_empty():
    ann = read_json(COMMITTED)["annotations"][0]
    charts = np.asarray(ann["dp_I"]).astype(int)
    x, y = np.asarray(ann["dp_x"]), np.asarray(ann["dp_y"])
    for part, mask in enumerate(ann["dp_masks"], start=1):
        chosen = np.isin(charts, CHARTS_OF_PART[part])
        if chosen.sum() < 3:
            assert mask == []
            continue
        decoded = mask_utils.decode(mask)
        # Every point lies on its part's mask, and so does the points' centroid (inside their convex hull).
        assert decoded[np.floor(y[chosen]).astype(int), np.floor(x[chosen]).astype(int)].all(), part
        assert decoded[int(y[chosen].mean()), int(x[chosen].mean())] == 1, part
    # The person's points include no foot chart (5, 6): those masks are empty.
    assert ann["dp_masks"][3] == [] and ann["dp_masks"][4] == []


def test_pasted_crop_is_the_box():
    person = np.load(SOURCE, allow_pickle=False)
    image = cv2.imread(os.path.join(COMMITTED, "images", "densepose_sample_1.jpg"))[:, :, ::-1].astype(np.int16)
    x0, y0, width, height = (int(value) for value in read_json(COMMITTED)["annotations"][0]["bbox"])
    assert (height, width) == person["image_crop"].shape[:2]
    assert np.abs(image[y0:y0 + height, x0:x0 + width] - person["image_crop"]).mean() < 4


def test_missing_source_is_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "lib"))
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_densepose_samples.py"),
                             "--source", str(tmp_path / "none.npz"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'none.npz'}: file not found"
    assert not (tmp_path / "out").exists()
