"""DensePose result records: the real challenge example round-trips; the PNG layout is checked by decoding with
OpenCV (an independent PNG reader, B G R order) rather than the code under test."""
import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.evaluation.densepose_results import (from_challenge_record, from_detectron2_record,
                                                   to_challenge_record, to_detectron2_record, write_results)
from posekit.utils.errors import DataError

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "densepose"
RECORDS = json.loads((SAMPLES / "example_results.json").read_text())


def png_pixels_rgb(text):
    """(3, h, w) uint8 planes R, G, B of a base64 PNG, read with OpenCV."""
    bgr = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED)
    return np.moveaxis(bgr[..., ::-1], -1, 0)


def test_the_example_has_21_records():
    assert len(RECORDS) == 21


@pytest.mark.parametrize("index", range(len(RECORDS)))
def test_every_example_record_round_trips(index):
    record = RECORDS[index]
    det = from_challenge_record(record)
    pixels = png_pixels_rgb(record["uv_data"])
    assert det["labels"].dtype == np.uint8 and det["uv"].dtype == np.float32
    assert np.array_equal(det["labels"], pixels[0])  # red plane = I
    assert np.allclose(det["uv"] * 255, pixels[1:], atol=1e-3)  # green = U * 255, blue = V * 255
    x, y, w, h = record["bbox"]
    assert np.allclose(det["bbox"], [x, y, x + w, y + h])
    again = to_challenge_record(record["image_id"], det)
    assert again["uv_shape"] == record["uv_shape"]
    assert np.array_equal(png_pixels_rgb(again["uv_data"]), pixels)
    assert np.allclose(again["bbox"], record["bbox"]) and again["score"] == record["score"]
    assert again["image_id"] == record["image_id"] and again["category_id"] == 1
    back = from_challenge_record(again)
    assert np.array_equal(back["labels"], det["labels"]) and np.array_equal(back["uv"], det["uv"])


def test_uv_data_is_mime_base64_like_the_example():
    again = to_challenge_record(1, from_challenge_record(RECORDS[0]))["uv_data"]
    lines = again.split("\n")
    assert again.endswith("\n") and all(len(line) == 76 for line in lines[:-2])
    assert len(RECORDS[0]["uv_data"].split("\n")[0]) == 76


def small_detection():
    # Box 4.5 wide, 3.2 high -> w = 4, h = 3. U = 0.5 -> floor(127.5) = 127; V = 1.2 -> clipped to 255.
    labels = np.array([[0, 1, 2, 24], [3, 3, 0, 0], [5, 6, 7, 8]], np.uint8)
    uv = np.stack([np.full((3, 4), 0.5, np.float32), np.full((3, 4), 1.2, np.float32)])
    return {"bbox": np.array([10.0, 20.0, 14.5, 23.2]), "score": 0.9, "labels": labels, "uv": uv}


def test_quantisation_truncates_and_clips_by_hand():
    record = to_challenge_record(7, small_detection(), category_id=1)
    assert record["uv_shape"] == [3, 3, 4]
    assert np.allclose(record["bbox"], [10.0, 20.0, 4.5, 3.2])
    pixels = png_pixels_rgb(record["uv_data"])
    assert np.array_equal(pixels[0], small_detection()["labels"])
    assert (pixels[1] == 127).all() and (pixels[2] == 255).all()


def test_detectron2_record_layout_and_round_trip():
    record = to_detectron2_record(3, small_detection())
    assert set(record) == {"image_id", "category_id", "bbox", "score", "densepose"}
    assert record["densepose"]["shape_chw"] == [3, 3, 4]
    pixels = png_pixels_rgb(record["densepose"]["labels_uv_str"])
    assert (pixels[1] == 127).all()
    back = from_detectron2_record(record)
    assert np.array_equal(back["labels"], small_detection()["labels"])
    assert np.allclose(back["uv"][0], 127 / 255)


def test_write_results_writes_json_atomically(tmp_path):
    path = tmp_path / "out" / "coco_densepose_results.json"
    write_results(path, RECORDS[:2])
    assert json.loads(path.read_text()) == RECORDS[:2]
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_bad_records_name_the_field():
    record = dict(RECORDS[0], uv_shape=[3, 10, 10])
    with pytest.raises(DataError, match="uv_data"):
        from_challenge_record(record)
    with pytest.raises(DataError, match="uv_data"):
        from_challenge_record({k: v for k, v in RECORDS[0].items() if k != "uv_data"})
    with pytest.raises(DataError, match="labels"):
        to_challenge_record(1, dict(small_detection(), labels=np.zeros((2, 2), np.uint8)))
