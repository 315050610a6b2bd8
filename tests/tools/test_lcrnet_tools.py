"""LCR-Net through the tools: a tiny model overfitting the four Human3.6M sample images (losses and MPJPE fall),
valid.py's metrics, the demo's figure and json, plot_losses, the training mapper, the figure, and bad input."""
import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from posekit.apis.cli import run_tool
from posekit.apis.lcrnet import LCRNetEstimator
from posekit.apis.lcrnet.demo import append_pseudo_gt_csv, pseudo_gt_row
from posekit.config import load_cfg
from posekit.data.catalog import get_dataset_records
from posekit.data.detection_mapper import read_image
from posekit.data.lcrnet_annotations import read_pseudo_gt_csv
from posekit.data.lcrnet_mapper import LCRNetMapper, detectron_scale
from posekit.engine.loss_curve import HEIGHT as PANEL_HEIGHT, WIDTH as PANEL_WIDTH
from posekit.engine.training_state import CHECKPOINT_FILE, FINAL_FILE, checkpoint_loss_history, read_checkpoint
from posekit.models import build_model, load_weights
from posekit.models.lcrnet import POSE_TRANSFORMS
from posekit.structures import Instances
from posekit.utils.errors import DataError
from posekit.vis.pose3d import FIGURE_INCHES, DPI, draw_pose_figure, scene_translation

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import lcrnet_demo  # noqa: E402
import plot_losses  # noqa: E402
import train  # noqa: E402
import valid  # noqa: E402

TINY = str(REPO / "experiments" / "samples" / "lcrnet_tiny_h36m.yaml")
SAMPLES = "h36m_lcrnet_samples"
RUN = Path(SAMPLES) / "lcrnet" / "lcrnet_tiny_h36m"
IMAGE = REPO / "data/samples/h36m/S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg"
ITERATIONS = 30
# Smaller images and fewer RoIs than the config's: a faster test; the pose branch learns on the ground-truth boxes
# all the same.
FAST = ["INPUT.MIN_SIZE_TRAIN", "(160,)", "INPUT.MIN_SIZE_TEST", "160", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
        "MODEL.RPN.POST_NMS_TOPK_TRAIN", "50"]
ANCHORS = np.load(REPO / "data/lcrnet/InTheWild-ResNet50_anchors.npz")["anchor_poses"].astype(np.float64)


def run_opts(folder, *extra):
    return ["OUTPUT_DIR", str(folder / "output"), "LOG_DIR", str(folder / "log"), *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """The tiny model trained ITERATIONS steps on the four samples (and tested on them)."""
    folder = tmp_path_factory.mktemp("lcrnet")
    opts = run_opts(folder, *FAST, "SOLVER.MAX_ITER", str(ITERATIONS), "SOLVER.STEPS", f"({ITERATIONS - 5},)",
                    "PRINT_FREQ", "10")
    assert train.main(["--cfg", TINY, *opts]) == 0
    return folder, opts


def gt_box_mpjpe(model, cfg):
    """Mean per-joint 3D error (mm, both poses centred on the hip midpoint) of the pose the model regresses in each
    person's ground-truth box for its most probable anchor class, computed here from the raw outputs."""
    mapper = LCRNetMapper.from_config(cfg, is_train=False, pose_transforms=POSE_TRANSFORMS)
    errors = []
    for record in get_dataset_records(SAMPLES):
        item = mapper(record, None)
        with torch.no_grad():
            images, sizes = model.preprocess([item])
            proposals = [Instances(sizes[0], proposal_boxes=item["instances"].gt_boxes)]
            logits, deltas = model.roi_heads._box_predictions(model.backbone(images), proposals)
        label = int(logits[0, 1:].argmax()) + 1
        slot = deltas[0, 65 * label:65 * (label + 1)].double().numpy()
        predicted = (ANCHORS[label - 1, 26:] + slot[26:]).reshape(3, 13).T
        truth = np.asarray(record["annotations"][0]["pose"], np.float64)[26:].reshape(3, 13).T
        predicted -= predicted[[4, 5]].mean(axis=0)
        truth -= truth[[4, 5]].mean(axis=0)
        errors.append(np.linalg.norm(predicted - truth, axis=1).mean() * 1000)
    return float(np.mean(errors))


def test_overfitting_the_samples_lowers_the_losses_and_the_mpjpe(trained):
    folder, opts = trained
    output = folder / "output" / RUN
    history = checkpoint_loss_history(read_checkpoint(output / CHECKPOINT_FILE))
    assert set(history) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_pose"}
    total = np.sum([history[name] for name in history], axis=0)
    assert len(total) == ITERATIONS and total[-10:].mean() < 0.5 * total[0], total
    assert np.mean(history["loss_cls"][-10:]) < 0.5 * history["loss_cls"][0]
    cfg = load_cfg(TINY, opts)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    before = gt_box_mpjpe(model, cfg)
    load_weights(model, str(output / FINAL_FILE))
    after = gt_box_mpjpe(model.eval(), cfg)
    assert after < 0.8 * before, (before, after)


def test_valid_prints_the_metrics_and_writes_every_person(trained, capfd):
    folder, opts = trained
    weights = str(folder / "output" / RUN / FINAL_FILE)
    # The four annotated people are counted whatever the model finds.
    assert valid.main(["--cfg", TINY, *opts, "MODEL.WEIGHTS", weights,
                       "TEST.EXPECTED_RESULTS", "[['people', 4.0, 0.0]]"]) == 0
    printed = capfd.readouterr()
    assert "| Arch | MPJPE | PA-MPJPE | 3DPCK" in printed.out + printed.err
    results = json.loads((folder / "output" / RUN / "inference" / f"{SAMPLES}_pose3d_results.json").read_text())
    assert results["root"] == "pelvis" and results["metrics"]["people"] == 4.0
    assert sorted(r["gt_id"] for r in results["people"] if r["gt_id"] is not None) == [1, 2, 3, 4]
    assert valid.main(["--cfg", TINY, *opts, "MODEL.WEIGHTS", weights,
                       "TEST.EXPECTED_RESULTS", "[['people', 5.0, 0.0]]"]) == 1


def test_demo_writes_the_figure_and_json_and_names_skipped_files(trained, tmp_path, caplog):
    folder, opts = trained
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "s1.jpg").write_bytes(IMAGE.read_bytes())
    (inputs / "notes.txt").write_text("not an image")
    output = tmp_path / "demo"
    # Every group of the 20 best proposals becomes a person: 30 iterations leave every score far below the
    # release's person threshold (0.5), and fewer people draw faster.
    opts = [*opts, "MODEL.WEIGHTS", str(folder / "output" / RUN / FINAL_FILE), "MODEL.LCRNET.PPI.TH_PERSONDETECT", "0",
            "MODEL.LCRNET.PPI.MIN_PROPOSALS", "20"]
    with caplog.at_level(logging.WARNING):
        assert lcrnet_demo.main(["--cfg", TINY, "--input", str(inputs), "--output", str(output), *opts]) == 0
    assert f"skipped {inputs / 'notes.txt'}: not an image" in caplog.text
    figure = cv2.imread(str(output / "s1_lcrnet.png"))
    assert figure.shape == (FIGURE_INCHES[1] * DPI, FIGURE_INCHES[0] * DPI, 3)
    results = json.loads((output / "lcrnet_results.json").read_text())
    assert [entry["file_name"] for entry in results["images"]] == [str(inputs / "s1.jpg")]
    assert (results["images"][0]["height"], results["images"][0]["width"]) == (1002, 1000)
    expected = LCRNetEstimator(load_cfg(TINY, opts)).predict(str(IMAGE))
    scores = [person["score"] for person in expected]
    assert scores and scores == sorted(scores, reverse=True)
    for person in expected:
        assert set(person) == {"score", "pose2d", "pose3d", "bbox"}
        assert person["pose2d"].shape == (13, 2) and person["pose3d"].shape == (13, 3)
        np.testing.assert_allclose(person["bbox"], [*person["pose2d"].min(axis=0), *person["pose2d"].max(axis=0)])
    found = results["images"][0]["people"]
    assert [p["score"] for p in found] == pytest.approx([p["score"] for p in expected])
    for person, reference in zip(found, expected):
        np.testing.assert_allclose(person["pose2d"], reference["pose2d"])
        np.testing.assert_allclose(person["pose3d"], reference["pose3d"])


def test_video_demo_writes_a_figure_per_processed_frame(trained, tmp_path):
    folder, opts = trained
    video = REPO / "data/samples/video/street.mp4"
    assert lcrnet_demo.main(["--cfg", TINY, "--input", str(video), "--output", str(tmp_path), "--inferenceFps",
                             "0.5", *opts, "MODEL.WEIGHTS", str(folder / "output" / RUN / FINAL_FILE)]) == 0
    record = json.loads((tmp_path / "street_lcrnet.json").read_text())
    capture = cv2.VideoCapture(str(video))
    fps, count = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    step = max(1, round(fps / 0.5))
    assert record["frame_step"] == step and [f["frame"] for f in record["frames"]] == list(range(0, count, step))
    frame = cv2.imread(str(tmp_path / record["frames"][0]["image"]))
    assert frame.shape == (FIGURE_INCHES[1] * DPI, FIGURE_INCHES[0] * DPI, 3)
    assert (tmp_path / "street_lcrnet.avi").is_file()


def test_plot_losses_draws_a_run_from_its_checkpoint_and_its_log(trained, tmp_path, capsys):
    folder, _ = trained
    output = folder / "output" / RUN
    assert plot_losses.main([str(output / CHECKPOINT_FILE), "--output", str(tmp_path / "ckpt.png")]) == 0
    assert f"over {ITERATIONS} logged steps" in capsys.readouterr().out
    log = next(output.glob("*_train.log"))
    assert plot_losses.main([str(log), "--output", str(tmp_path / "log.png")]) == 0
    # PRINT_FREQ 10: iterations 1, 11, 21 are in the log.
    assert f"over {ITERATIONS // 10} logged steps" in capsys.readouterr().out
    # A panel for the total, then one per loss (four).
    for name in ("ckpt.png", "log.png"):
        assert cv2.imread(str(tmp_path / name)).shape == (5 * PANEL_HEIGHT, PANEL_WIDTH, 3)


def test_bad_inputs_are_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_tool(lcrnet_demo.main, ["--cfg", TINY, "--input", str(tmp_path / "missing.jpg")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.jpg'}: no such image, folder or video\n"
    (tmp_path / "only.txt").write_text("text")
    with pytest.raises(SystemExit):
        run_tool(lcrnet_demo.main, ["--cfg", TINY, "--input", str(tmp_path / "only.txt")])
    assert "only.txt: not an image nor a video" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_tool(plot_losses.main, [str(IMAGE)])
    assert "no loss history found" in capsys.readouterr().err


def record_with_pose(pose):
    return {"file_name": str(IMAGE), "image_id": 1, "height": 1002, "width": 1000,
            "annotations": [{"id": 7, "bbox": [300.0, 200.0, 200.0, 500.0], "category_id": 1, "iscrowd": 0,
                             "pose": pose}]}


def test_training_mapper_moves_poses_with_the_image():
    cfg = load_cfg(TINY, ["INPUT.MIN_SIZE_TRAIN", "(500,)", "INPUT.MAX_SIZE_TRAIN", "1000"])
    generator = np.random.default_rng(0)
    pose = np.concatenate([generator.uniform(300, 500, 13), generator.uniform(200, 700, 13),
                           generator.normal(0, 0.3, 39)])
    record = record_with_pose(pose.tolist())
    plain = LCRNetMapper.from_config(cfg, True, POSE_TRANSFORMS)(record, np.random.SeedSequence(0))
    assert tuple(plain["image"].shape[1:]) == (501, 500)
    # Detectron's pixels: OpenCV's bilinear resize by one factor (INPUT.FORMAT BGR reverses the channels).
    resized = cv2.resize(read_image(str(IMAGE)), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(plain["image"].numpy().transpose(1, 2, 0)[..., ::-1], resized)
    expected = pose.copy()
    expected[:13] *= 500 / 1000
    expected[13:26] *= 501 / 1002
    np.testing.assert_allclose(plain["instances"].gt_poses[0].numpy(), expected, rtol=1e-12)

    flipping = LCRNetMapper.from_config(load_cfg(TINY, ["INPUT.MIN_SIZE_TRAIN", "(500,)", "INPUT.MAX_SIZE_TRAIN",
                                                         "1000", "INPUT.RANDOM_FLIP", "horizontal"]),
                                        True, POSE_TRANSFORMS)
    flips = [flipping(record, np.random.SeedSequence(seed)) for seed in range(4)]
    flipped = [item for item in flips if not torch.equal(item["image"], plain["image"])][0]
    swap = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12]  # the person's left and right joints
    mirrored = expected.reshape(5, 13)[:, swap].copy()
    mirrored[0] = 500 - mirrored[0]  # x -> W - x, as the boxes
    mirrored[2] = -mirrored[2]  # X -> -X
    np.testing.assert_allclose(flipped["instances"].gt_poses[0].numpy(), mirrored.ravel(), rtol=1e-12)
    box = flipped["instances"].gt_boxes[0].numpy()
    np.testing.assert_allclose(box, [500 - 500 * 0.5, 200 * 501 / 1002, 500 - 300 * 0.5, 700 * 501 / 1002], rtol=1e-6)
    # An image without people is resized and flipped too: no pose rows, the width still 5J.
    nobody = dict(record, annotations=[])
    assert [tuple(item["instances"].gt_poses.shape) for item in
            (flipping(nobody, np.random.SeedSequence(seed)) for seed in range(4))] == [(0, 65)] * 4


@pytest.mark.parametrize("size, expected", [
    ((1002, 1000, 800, 1333), 0.8),
    ((600, 1000, 800, 1333), 800 / 600),  # long side 1333.3 rounds to 1333: no cap (detectron2 would shrink)
    ((500, 2000, 800, 1333), 1333 / 2000),
])
def test_detectron_scale(size, expected):
    assert detectron_scale(*size) == expected


def test_training_mapper_refuses_a_pose_of_the_wrong_size():
    cfg = load_cfg(TINY)
    with pytest.raises(DataError, match=r"S1_Directions_1.54138969_000001.jpg: annotation 7: field 'pose' must hold "
                                        r"65 numbers \(5J, J = 13\), got 64 numbers"):
        LCRNetMapper.from_config(cfg, True, POSE_TRANSFORMS)(record_with_pose([0.0] * 64), np.random.SeedSequence(0))


def test_scene_translation_recovers_a_known_placement():
    generator = np.random.default_rng(1)
    pose3d = generator.normal(0, 0.3, (13, 3))
    pose3d -= pose3d[[4, 5, 10, 11]].mean(axis=0)
    camera = np.array([[900.0, 0, 480], [0, 880.0, 300], [0, 0, 1]])
    translation = np.array([0.4, -0.2, 5.0])
    points = pose3d * np.array([-1, -1, 1]) + translation  # LCR axes -> camera axes, then placed
    pose2d = (points[:, :2] / points[:, 2:]) * np.diag(camera)[:2] + camera[:2, 2]
    np.testing.assert_allclose(scene_translation(pose2d, pose3d, camera), translation, atol=1e-9)


def test_figure_draws_left_green_right_blue_and_red_joints():
    image = np.full((300, 200, 3), 255, np.uint8)
    pose2d = np.array([[90, 280], [110, 280], [90, 220], [110, 220], [92, 160], [108, 160], [70, 150], [130, 150],
                       [75, 120], [125, 120], [85, 90], [115, 90], [100, 50]], np.float64)
    pose3d = np.column_stack([-(pose2d[:, 0] - 100) / 200, -(pose2d[:, 1] - 130) / 200, np.zeros(13)])
    figure = draw_pose_figure(image, [{"score": 3.2, "pose2d": pose2d, "pose3d": pose3d}])
    top = figure[:figure.shape[0] // 2].astype(int)
    red, green, blue = top[..., 0], top[..., 1], top[..., 2]
    assert ((green > 100) & (red < 60) & (blue < 60)).sum() > 50  # matplotlib's "green" is (0, 128, 0)
    assert ((blue > 200) & (red < 60) & (green < 60)).sum() > 50
    assert ((red > 200) & (green < 60) & (blue < 60)).sum() > 10


def test_demo_csv_rows_are_the_seeds_and_read_back_by_csv2coco(tmp_path):
    generator = np.random.default_rng(2)
    people = [{"score": 2.0, "pose2d": generator.uniform(100, 400, (13, 2)),
               "pose3d": generator.normal(0, 0.3, (13, 3)), "bbox": [0, 0, 1, 1]} for _ in range(3)]
    path = str(tmp_path / "train.csv")
    append_pseudo_gt_csv(path, [pseudo_gt_row("a/one.jpg", people[0])])
    append_pseudo_gt_csv(path, [pseudo_gt_row("b/two.jpg", person) for person in people[1:]])
    rows = read_pseudo_gt_csv(path)
    assert list(rows) == ["one.jpg", "two.jpg"] and [len(rows[name]) for name in rows] == [1, 2]
    for found, person in zip(rows["one.jpg"] + rows["two.jpg"], people):
        joints2d, joints3d = person["pose2d"], person["pose3d"]
        # demo2.py's box: Python int() of the joints' bounds -/+ 5 pixels; the pose coordinate-major (lcrnet.md 1.2).
        expected_box = [int(joints2d[:, 0].min() - 5), int(joints2d[:, 1].min() - 5), int(joints2d[:, 0].max() + 5),
                        int(joints2d[:, 1].max() + 5)]
        assert found.box == expected_box
        np.testing.assert_array_equal(found.pose, np.concatenate([joints2d.T.ravel(), joints3d.T.ravel()]))
