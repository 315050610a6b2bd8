"""The tools on the user's own data (issue 22): run folders, unwritable outputs, image / folder / glob inference,
fail-early checks and quiet config printing (a real SIGTERM to training: tests/engine/test_stop_signals.py)."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.apis import PoseEstimator
from posekit.apis.cli import config_parser, load_cfg_from_args, run_tool
from posekit.config import load_cfg
from posekit.data.metadata import keypoint_set_from_names, load_keypoint_set_file
from posekit.engine.run_dirs import output_dir

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import apply_net  # noqa: E402
import export_onnx  # noqa: E402
import inference_demo  # noqa: E402
import mpii_to_coco  # noqa: E402
import train  # noqa: E402
import valid  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLE_CFG = str(REPO / "experiments" / "samples" / "dekr_tiny_coco.yaml")
HAND21 = str(REPO / "experiments" / "keypoint_sets" / "hand21.yaml")
SMALL = ["DATASET.INPUT_SIZE", "64", "DATASET.OUTPUT_SIZE", "16", "DEVICE", "cpu"]
FAST_TEST = ["DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "32", "TEST.FLIP_TEST", "False"]


def run_opts(tmp_path: Path) -> list:
    return ["OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log"), *SMALL]


def exit_of(main, argv, capsys):
    """(exit code, stderr lines) of a tool run as from the command line."""
    with pytest.raises(SystemExit) as exited:
        run_tool(main, [str(arg) for arg in argv])
    return exited.value.code, capsys.readouterr().err.strip().splitlines()


def test_the_merged_config_goes_to_the_log_file_not_the_terminal(tmp_path, capsys):
    code, err = exit_of(valid.main, ["--cfg", SAMPLE_CFG, *run_opts(tmp_path), "TEST.MODEL_FILE", tmp_path / "no.pth"],
                        capsys)
    assert code == 2 and len(err) == 1 and "no.pth" in err[0]
    log = next((tmp_path / "output").rglob("dekr_tiny_coco_*_valid.log")).read_text()
    assert "merged config:" in log and "DATASET:" in log and "INPUT_SIZE: 64" in log


def test_failed_or_different_runs_leave_the_run_config_alone(tmp_path, capsys):
    opts = run_opts(tmp_path)
    run = output_dir(load_cfg(SAMPLE_CFG, opts), SAMPLE_CFG)
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(load_cfg(SAMPLE_CFG, opts).dump())
    before = (run / "config.yaml").read_text()
    code, err = exit_of(train.main, ["--cfg", SAMPLE_CFG, *opts, "TRAIN.LR", "0.5"], capsys)
    assert code == 2 and len(err) == 1 and "differs in TRAIN.LR); pass --new-run" in err[0]
    # A new run that fails before starting (no data) does not touch config.yaml either.
    code, err = exit_of(train.main, ["--cfg", SAMPLE_CFG, "--new-run", *opts, "DATASET.ROOT", tmp_path / "none"],
                        capsys)
    assert code == 2 and "not found" in err[-1]
    code, err = exit_of(valid.main, ["--cfg", SAMPLE_CFG, *opts, "DATASET.ROOT", tmp_path / "none"], capsys)
    assert code == 2
    assert (run / "config.yaml").read_text() == before


def test_unwritable_output_paths_are_one_line_and_exit_2(tmp_path, capsys, tiny_dekr_weights):
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a folder is expected where this file is: unwritable even for root
    inside = blocker / "out"
    image = REPO / "data/samples/coco/images/val2017/000000000785.jpg"
    cases = [
        (train.main, ["--cfg", SAMPLE_CFG, *run_opts(tmp_path), "OUTPUT_DIR", inside], "OUTPUT_DIR"),
        (valid.main, ["--cfg", SAMPLE_CFG, "OUTPUT_DIR", inside], "OUTPUT_DIR"),
        (inference_demo.main, ["--cfg", SAMPLE_CFG, "--image", image, "--outputDir", inside,
                               "TEST.MODEL_FILE", tiny_dekr_weights], "--outputDir"),
        (export_onnx.main, ["--cfg", SAMPLE_CFG, "--out", inside / "m.onnx"], "--out"),
        (apply_net.main, ["dump", REPO / "experiments/samples/densepose_tiny.yaml", tmp_path / "unused.pth", image,
                          "--output", inside / "results.json"], "--output"),
    ]
    for main, argv, what in cases:
        code, err = exit_of(main, argv, capsys)
        assert code == 2 and len(err) == 1, (what, err)
        assert err[0].startswith(f"error: {what}: cannot write to {inside}") and "a_file is not a folder" in err[0]


def test_images_folder_and_glob_inference_per_input_outputs(tmp_path, capsys, tiny_dekr_weights, samples_dir):
    source = cv2.imread(str(samples_dir / "coco/images/val2017/000000000785.jpg"))
    for name in ("a/000000.jpg", "b/000000.jpg", "c.png"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "in" / name), source[:200, :300])
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "in" / "notes.txt").write_text("not an image either")
    output = tmp_path / "out"
    output.mkdir()
    (output / "earlier.csv").write_text("kept")
    opts = ["TEST.MODEL_FILE", tiny_dekr_weights, *FAST_TEST]
    assert inference_demo.main(["--cfg", SAMPLE_CFG, "--imageDir", f"{tmp_path}/in/**/*", "--outputDir", str(output),
                                "--batchSize", "2", *map(str, opts)]) == 0
    summary = capsys.readouterr().out
    assert "processed 3 of 4 images, skipped 1 unreadable" in summary
    written = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    assert written == sorted(["earlier.csv"] + [f"{stem}_pose.{ext}" for stem in ("a/000000", "b/000000", "c")
                                                for ext in ("jpg", "csv", "json")])
    record = json.loads((output / "a" / "000000_pose.json").read_text())
    assert record["image"].endswith("a/000000.jpg") and record["people"]
    assert len(record["keypoint_names"]) == 17
    assert cv2.imread(str(output / "c_pose.jpg")).shape == (200, 300, 3)
    assert (output / "earlier.csv").read_text() == "kept"

    code, err = exit_of(inference_demo.main, ["--cfg", SAMPLE_CFG, "--imageDir", tmp_path / "in/broken.jpg", "--strict",
                                              "--outputDir", output, *opts], capsys)
    assert code == 2 and err[-1].startswith("error: ") and "broken.jpg: not a decodable image" in err[-1]


def test_predict_batch_reports_per_image_failures(tiny_dekr_weights, tmp_path, samples_dir):
    estimator = PoseEstimator(load_cfg(SAMPLE_CFG, ["TEST.MODEL_FILE", str(tiny_dekr_weights), *FAST_TEST]))
    (tmp_path / "notes.txt").write_text("text")
    image = str(samples_dir / "coco/images/val2017/000000000785.jpg")
    failures = []
    results = estimator.predict_batch([image, str(tmp_path / "notes.txt"), image], failures)
    assert [index for index, _ in failures] == [1] and "notes.txt: not a decodable image" in failures[0][1]
    assert results[1] == [] and len(results[0]) == len(results[2]) > 0


def test_valid_checks_every_image_before_predicting(tmp_path, capsys):
    root = tmp_path / "hands"
    (root / "images" / "val").mkdir(parents=True)
    cv2.imwrite(str(root / "images/val/a.jpg"), np.zeros((32, 32, 3), np.uint8))
    names = list(load_keypoint_set_file(HAND21).joint_names)
    (root / "annotations").mkdir()
    (root / "annotations/val.json").write_text(json.dumps({
        "images": [{"id": 5, "file_name": "a.jpg"}, {"id": 6, "file_name": "gone.jpg"}],
        "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "keypoints": [1, 1, 2] * 21, "num_keypoints": 21,
                         "iscrowd": 0, "bbox": [0, 0, 1, 1], "area": 1.0}],
        "categories": [{"id": 1, "name": "hand", "keypoints": names}]}))
    # The sample config's DATASET_TEST (coco) needs no overriding for custom data.
    opts = ["DATASET.DATASET", "custom", "DATASET.ROOT", root, "DATASET.TEST", "val", "DATASET.KEYPOINT_SET", HAND21,
            "DATASET.NUM_JOINTS", "21", "MODEL.NUM_JOINTS", "21", "OUTPUT_DIR", tmp_path / "output",
            "TEST.MODEL_FILE", tmp_path / "never_loaded.pth"]
    code, err = exit_of(valid.main, ["--cfg", SAMPLE_CFG, *opts], capsys)
    assert code == 2 and len(err) == 1
    assert "val.json: 1 of 2 listed images are missing from" in err[0] and "gone.jpg" in err[0]
    # Named after the data set actually used (the custom root's folder), not coco_kpt.
    assert (tmp_path / "output" / "hands" / "hrnet_dekr" / "dekr_tiny_coco").is_dir()
    code, err = exit_of(valid.main, ["--cfg", SAMPLE_CFG, "--skip-missing", *opts], capsys)
    assert code == 2 and "never_loaded.pth" in err[-1]  # past the data check, at the weights


def test_print_config_shows_the_merged_config(capsys):
    args = config_parser("t").parse_args(["--cfg", SAMPLE_CFG, "--print-config", "TRAIN.LR", "0.25"])
    load_cfg_from_args(args)
    printed = capsys.readouterr().out
    assert "DATASET:" in printed and "LR: 0.25" in printed


def test_mpii_json_becomes_a_custom_set_with_the_mpii_keypoint_set(tmp_path):
    joints = [[float(10 + j), float(20 + 2 * j)] for j in range(16)]
    entries = [{"image": "015601864.jpg", "joints": joints, "joints_vis": [1] * 15 + [0], "center": [51.0, 61.0],
                "scale": 0.5},
               {"image": "000000001.jpg", "joints": joints, "joints_vis": [1] * 16, "center": [31.0, 41.0],
                "scale": 1.0},
               {"image": "015601864.jpg", "joints": joints, "joints_vis": [0] * 16, "center": [1.0, 1.0], "scale": 0.1}]
    (tmp_path / "mpii.json").write_text(json.dumps(entries))
    output = tmp_path / "annotations" / "train.json"
    assert mpii_to_coco.main(["--input", str(tmp_path / "mpii.json"), "--output", str(output)]) == 0
    data = json.loads(output.read_text())
    assert data["images"] == [{"id": 1, "file_name": "015601864.jpg"}, {"id": 2, "file_name": "000000001.jpg"}]
    first = data["annotations"][0]
    assert [ann["image_id"] for ann in data["annotations"]] == [1, 2, 1]
    # 1-based MPII pixels -> 0-based; the unlabelled last joint is (0, 0, 0).
    assert first["keypoints"][:6] == [9.0, 19.0, 2, 10.0, 21.0, 2] and first["keypoints"][-3:] == [0.0, 0.0, 0]
    assert first["num_keypoints"] == 15 and first["iscrowd"] == 0
    # A square of side 200 x scale = 100 around the 0-based centre (50, 60).
    assert first["bbox"] == [0.0, 10.0, 100.0, 100.0] and first["area"] == 10000.0
    mpii = load_keypoint_set_file(str(REPO / "experiments/keypoint_sets/mpii.yaml"))
    assert data["categories"][0]["keypoints"] == list(mpii.joint_names)
    # Built from the json's names, the flip pairs are the set file's.
    derived = keypoint_set_from_names("x", mpii.joint_names).flip_pairs
    assert sorted(tuple(sorted(pair)) for pair in derived) == sorted(tuple(sorted(pair)) for pair in mpii.flip_pairs)


def test_an_unwritable_path_found_late_is_still_one_line_and_exit_2(capsys):
    def writes_into_a_read_only_folder(argv):
        raise PermissionError(13, "Permission denied", "/read-only/results.json")
    code, err = exit_of(writes_into_a_read_only_folder, [], capsys)
    assert code == 2 and err == ["error: /read-only/results.json: Permission denied"]
