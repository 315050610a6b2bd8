"""DensePose validation on the bundled COCO samples with a tiny random DensePose R-CNN: box AP as pycocotools
computes it from the written results, and GPS / GPSm / IOU on a generated stand-in evaluation folder."""
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posekit.apis.densepose.validation import run_densepose_validation
from posekit.config import load_cfg
from posekit.data.catalog import dataset_metadata, get_dataset_records, register_dataset, unregister_dataset
from posekit.evaluation.densepose import evaluate_densepose
from posekit.evaluation.densepose_results import from_detectron2_record
from posekit.models import build_model

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "models"))
sys.path.insert(0, str(TESTS / "evaluation"))
from test_densepose_model import DENSEPOSE, TINY  # noqa: E402
from test_densepose_eval import POINTS, _full_mask_rles, data_dir, distances  # noqa: E402,F401 (fixtures)

# A large pixel std keeps the untrained network's scores spread, so several people come out.
OPTS = DENSEPOSE + ["MODEL.PIXEL_STD", "[500.0, 500.0, 500.0]", "MODEL.DEVICE", "cpu", "TEST.DETECTIONS_PER_IMAGE", "4",
                   "INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST", "320"]  # small inputs keep the tests fast
SAMPLES = "coco_2017_val_samples"
pytestmark = pytest.mark.usefixtures("one_thread")
FIRST_IMAGE = "coco_2017_val_samples_first_image"
STAND_IN = "densepose_stand_in_val_samples"


@pytest.fixture(scope="session")
def densepose_weights(tmp_path_factory) -> Path:
    """Random weights of the tiny DensePose R-CNN (tests/apis/test_densepose_estimator.py's recipe)."""
    torch.manual_seed(0)
    weights = tmp_path_factory.mktemp("densepose_weights") / "model_final.pth"
    torch.save({"model": build_model(load_cfg(TINY, OPTS)).state_dict()}, weights)
    return weights


def tiny_cfg(weights, *opts):
    return load_cfg(TINY, OPTS + ["MODEL.WEIGHTS", str(weights), *opts])


@pytest.fixture()
def stand_in_set(tmp_path):
    """The COCO val samples with DensePose points and masks on every annotation, registered under STAND_IN."""
    gt = json.loads(Path(dataset_metadata(SAMPLES)["json_file"]).read_text())
    for ann in gt["annotations"]:
        ann.update(dp_x=[p[0] for p in POINTS], dp_y=[p[1] for p in POINTS], dp_I=[float(p[2]) for p in POINTS],
                   dp_U=[p[3] / 255.0 for p in POINTS], dp_V=[p[4] / 255.0 for p in POINTS],
                   dp_masks=_full_mask_rles())
    gt_json = tmp_path / "densepose_val_samples.json"
    gt_json.write_text(json.dumps(gt))
    records = get_dataset_records(SAMPLES)
    register_dataset(STAND_IN, lambda: records, dict(dataset_metadata(SAMPLES), json_file=str(gt_json)))
    yield str(gt_json)
    unregister_dataset(STAND_IN)


@pytest.fixture()
def first_image_set():
    """The first COCO val sample alone, registered under FIRST_IMAGE."""
    first = get_dataset_records(SAMPLES)[:1]
    register_dataset(FIRST_IMAGE, lambda: first, dataset_metadata(SAMPLES))
    yield first[0]["image_id"]
    unregister_dataset(FIRST_IMAGE)


def pycocotools_box_ap(gt_json, results_file, image_ids=None):
    gt = COCO(gt_json)
    results = json.loads(Path(results_file).read_text())
    evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
    evaluation.params.imgIds = image_ids or sorted(gt.getImgIds())
    evaluation.params.catIds = [1]
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation.stats[0] * 100


def test_box_ap_only_with_one_warning_when_the_data_folder_is_missing(tmp_path, densepose_weights, first_image_set,
                                                                     caplog):
    missing = tmp_path / "no_eval_data"
    cfg = tiny_cfg(densepose_weights, "DATASETS.TEST", f"('{FIRST_IMAGE}',)")
    cfg.defrost()
    cfg.DENSEPOSE_EVALUATION.DATA_DIR = str(missing)
    with caplog.at_level(logging.WARNING):
        metrics = run_densepose_validation(cfg, tmp_path / "out")
    assert set(metrics) == {f"bbox/{name}" for name in ("AP", "AP50", "AP75", "APs", "APm", "APl")}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(missing) in warnings[0] and "\n" not in warnings[0]
    box_file = tmp_path / "out" / "inference" / f"{FIRST_IMAGE}_box_results.json"
    expected = pycocotools_box_ap(dataset_metadata(SAMPLES)["json_file"], box_file, [first_image_set])
    assert metrics["bbox/AP"] == pytest.approx(expected, abs=1e-9)


def test_densepose_metrics_come_from_the_written_records(tmp_path, densepose_weights, stand_in_set, data_dir):
    cfg = tiny_cfg(densepose_weights, "DATASETS.TEST", f"('{STAND_IN}',)")
    cfg.defrost()
    cfg.DENSEPOSE_EVALUATION.DATA_DIR = data_dir
    metrics = run_densepose_validation(cfg, tmp_path / "out")
    folder = tmp_path / "out" / "inference"
    boxes = json.loads((folder / f"{STAND_IN}_box_results.json").read_text())
    records = json.loads((folder / f"{STAND_IN}_densepose_results.json").read_text())
    assert records and len(records) == len(boxes)
    # Same detections in both files; every record decodes to a chart result the size of its box.
    assert sorted((r["image_id"], round(r["score"], 6)) for r in records) == \
        sorted((b["image_id"], round(b["score"], 6)) for b in boxes)
    for record in records:
        detection = from_detectron2_record(record)
        assert detection["labels"].max() <= 24
    for task, mode in (("densepose_gps", "GPS"), ("densepose_gpsm", "GPSm"), ("densepose_segm", "IOU")):
        direct = evaluate_densepose(stand_in_set, records, data_dir, mode)
        for name, value in direct.items():
            got = metrics[f"{task}/{name}"]
            assert (math.isnan(got) if value < 0 else got == pytest.approx(100 * value)), (task, name)
        # Every person is large and annotated, so AP over all areas is defined.
        assert not math.isnan(metrics[f"{task}/AP"])
    box_ap = pycocotools_box_ap(stand_in_set, folder / f"{STAND_IN}_box_results.json")
    assert metrics["bbox/AP"] == pytest.approx(box_ap)
    assert np.isfinite([metrics[f"bbox/{name}"] for name in ("AP", "AP50", "AP75")]).all()
