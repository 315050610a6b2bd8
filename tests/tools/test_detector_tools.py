"""The generic tools on a detector config: an overfit run on the samples, validation, data errors."""
import sys
from pathlib import Path

import pytest

from posekit.apis import PoseEstimator, family_tools
from posekit.config import load_cfg
from posekit.data.catalog import register_dataset, unregister_dataset
from posekit.engine.training_state import CHECKPOINT_FILE, FINAL_FILE
from posekit.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import train  # noqa: E402

TINY = str(REPO / "experiments" / "samples" / "detector_tiny_coco.yaml")
RUN = Path("coco_2017_train_samples") / "generalizedrcnn" / "detector_tiny_coco"
# Overfit: train and test on the same four images, no flips.
OVERFIT = ["DATASETS.TEST", "('coco_2017_train_samples',)", "INPUT.RANDOM_FLIP", "none", "PRINT_FREQ", "100"]


def run_opts(tmp_path, *extra):
    return ["OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log"), *extra]


def test_overfit_on_the_samples_reaches_person_box_ap_above_50(tmp_path):
    """400 iterations of the tiny detector on the 4 sample images (about a minute on 2 CPU cores); measured:
    box AP 68 on those images."""
    assert train.main(["--cfg", TINY, *run_opts(tmp_path, *OVERFIT)]) == 0
    output = tmp_path / "output" / RUN
    assert (output / CHECKPOINT_FILE).is_file() and (output / "loss_curve.png").is_file()
    cfg = load_cfg(TINY, run_opts(tmp_path, *OVERFIT, "MODEL.WEIGHTS", str(output / FINAL_FILE)))
    metrics = family_tools(cfg).validate(cfg, output)
    assert metrics["AP"] > 50, metrics
    assert (output / "inference" / "coco_2017_train_samples_box_results.json").is_file()
    # The Python API on the same weights: plain dicts by decreasing score, boxes in the image's pixels.
    found = PoseEstimator(cfg).predict(REPO / "data/samples/coco/images/train2017/000000000785.jpg")
    scores = [person["score"] for person in found]
    assert found and scores == sorted(scores, reverse=True) and {person["class"] for person in found} == {0}
    x1, y1, x2, y2 = found[0]["box"]
    assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 425


def test_training_data_without_any_person_is_a_config_error(tmp_path):
    register_dataset("posekit_test_no_people", lambda: [{"file_name": "x.jpg", "image_id": 1, "height": 4,
                                                         "width": 4, "annotations": []}])
    try:
        cfg = load_cfg(TINY, run_opts(tmp_path, "DATASETS.TRAIN", "('posekit_test_no_people',)"))
        with pytest.raises(ConfigError, match="posekit_test_no_people.*no image with an annotated instance"):
            family_tools(cfg).training(cfg)
    finally:
        unregister_dataset("posekit_test_no_people")


def test_unknown_training_data_set_names_the_closest(tmp_path):
    cfg = load_cfg(TINY, run_opts(tmp_path, "DATASETS.TRAIN", "('coco_2017_trian_samples',)"))
    with pytest.raises(ConfigError, match="unknown data set 'coco_2017_trian_samples'.*coco_2017_train_samples"):
        family_tools(cfg).training(cfg)


def test_eval_period_turns_on_box_ap_during_training(tmp_path):
    import json

    import torch

    from posekit.apis.detector.validation import box_ap
    from posekit.engine import PeriodicEvaluation
    from posekit.models import build_model
    sys.path.insert(0, str(REPO / "tests" / "apis"))
    from test_densepose_validation import pycocotools_box_ap  # box AP computed by pycocotools directly
    assert family_tools(load_cfg(TINY, run_opts(tmp_path))).training(load_cfg(TINY, run_opts(tmp_path))).hooks == []
    cfg = load_cfg(TINY, run_opts(tmp_path, "TEST.EVAL_PERIOD", "2"))
    hooks = family_tools(cfg).training(cfg).hooks
    assert len(hooks) == 1 and isinstance(hooks[0], PeriodicEvaluation) and hooks[0].period == 2
    torch.manual_seed(0)
    # A large pixel std keeps the untrained network's scores spread, so that it detects people to score.
    model = build_model(load_cfg(TINY, run_opts(tmp_path, "MODEL.PIXEL_STD", "[500.0, 500.0, 500.0]"))).eval()
    metrics = hooks[0].evaluate(model)
    # The same detections written out and scored by pycocotools directly.
    box_ap(cfg, model, tmp_path, show_progress=False)
    results = tmp_path / "inference" / "coco_2017_val_samples_box_results.json"
    assert json.loads(results.read_text())  # there were detections
    gt_json = str(REPO / "data/samples/coco/annotations/person_keypoints_val2017.json")
    assert metrics["AP"] == pytest.approx(pycocotools_box_ap(gt_json, results), abs=1e-9)
