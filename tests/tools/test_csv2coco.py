"""tools/csv2coco.py: the demo's CSV becomes train/val LCR-Net json files and image folders (lcrnet.md 5.4)."""
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from posekit.data.lcrnet_annotations import load_lcrnet_json, split_images

REPO = Path(__file__).resolve().parents[2]


def load_tool():
    spec = importlib.util.spec_from_file_location("csv2coco", REPO / "tools" / "csv2coco.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(image, box, pose):
    return ",".join([image] + [str(v) for v in box] + [f"{v:.3f}" for v in pose] + ["person"])


@pytest.fixture
def demo_output(tmp_path):
    """Five images (widths 40..80), six people; image i's people have pose value i."""
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for i in range(5):
        Image.new("RGB", (40 + 10 * i, 30)).save(images / f"im{i}.jpg")
        rows.append(row(f"/elsewhere/im{i}.jpg", [1, 2, 11 + i, 22], [float(i)] * 65))
    rows.append(row(f"{images}/im3.jpg", [5, 5, 9, 9], [3.0] * 65))
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def read(out, split):
    return json.loads((out / "annotations" / f"instances_{split}2017.json").read_text())


def test_split_ids_boxes_and_images(demo_output):
    out = demo_output / "out"
    tool = load_tool()
    assert tool.main(["--csv", str(demo_output / "train.csv"), "--images", str(demo_output / "images"),
                      "--out", str(out)]) == 0
    train, val = read(out, "train"), read(out, "val")
    # 5 images: ceil(0.2 * 5) = 1 to val, 4 to train; together all of them, once.
    names = [image["file_name"] for image in train["images"] + val["images"]]
    assert len(val["images"]) == 1 and sorted(names) == [f"im{i}.jpg" for i in range(5)]
    for data, split in ((train, "train"), (val, "val")):
        assert [image["id"] for image in data["images"]] == list(range(len(data["images"])))
        assert [ann["id"] for ann in data["annotations"]] == list(range(len(data["annotations"])))
        for image in data["images"]:
            index = int(image["file_name"][2])
            assert (image["width"], image["height"]) == (40 + 10 * index, 30)
            assert (out / "images" / f"{split}2017" / image["file_name"]).is_file()
            people = [ann for ann in data["annotations"] if ann["image_id"] == image["id"]]
            assert len(people) == (2 if index == 3 else 1)
            assert all(ann["pose"] == [float(index)] * 65 for ann in people)
            first = people[0]
            assert first["bbox"] == [1, 2, 10 + index, 20] and first["area"] == (11 + index) * 21
    # The same split on a second run (fixed seed), and the json reads back through the LCR-Net reader.
    again = demo_output / "again"
    tool.main(["--csv", str(demo_output / "train.csv"), "--images", str(demo_output / "images"), "--out", str(again)])
    assert read(again, "train") == train
    records = load_lcrnet_json(str(out / "annotations" / "instances_train2017.json"), str(out / "images" / "train2017"))
    assert sum(len(record["annotations"]) for record in records) == len(train["annotations"])


def test_split_is_sklearns_train_test_split_under_seed_41():
    # Reference printed by scikit-learn 1.9.1 (outside posekit): np.random.seed(41);
    # train_test_split(["k0", ..., "k6"], test_size=0.2) -> train k6 k2 k4 k3 k0, test k5 k1.

    train, val = split_images([f"k{i}" for i in range(7)])
    assert train == ["k6", "k2", "k4", "k3", "k0"] and val == ["k5", "k1"]


def test_bad_row_and_missing_image_are_one_line_errors(demo_output, capsys):
    bad = demo_output / "bad.csv"
    bad.write_text(row("im0.jpg", [1, 2, 3, 4], [0.0] * 64) + "\n")
    tool = load_tool()
    with pytest.raises(SystemExit) as exit_info:
        tool.run_tool(tool.main, ["--csv", str(bad), "--images", str(demo_output / "images"),
                                  "--out", str(demo_output / "x")])
    assert exit_info.value.code == 2
    assert "bad.csv: row 1 has 70 columns ending 'person'; expected 71" in capsys.readouterr().err
    lost = demo_output / "lost.csv"
    lost.write_text(row("nowhere.jpg", [1, 2, 3, 4], [0.0] * 65) + "\n")
    with pytest.raises(SystemExit):
        tool.run_tool(tool.main, ["--csv", str(lost), "--images", str(demo_output / "images"),
                                  "--out", str(demo_output / "x")])
    assert "image 'nowhere.jpg' is not a readable image" in capsys.readouterr().err
