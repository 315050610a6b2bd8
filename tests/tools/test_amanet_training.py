"""AMANet trains on the DensePose samples (the release's data loading dropped the dp_* fields, so every DensePose
loss was zero, densepose.md 10.1): tools/train.py on the AMAv2 sample config, an overfit of the AMA v1 SemSeg + IA
sample config, and the person masks its semantic branch reads (tools/render_semseg_masks.py)."""
import sys
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from posekit.apis import family_tools
from posekit.apis.densepose import DensePoseEstimator
from posekit.config import load_cfg
from posekit.data.catalog import get_dataset_records
from posekit.data.detection_mapper import read_image
from posekit.data.semantic_masks import PersonMaskMapper, render_person_mask
from posekit.engine.rng import seed_everything
from posekit.engine.training_state import CHECKPOINT_FILE, FINAL_FILE
from posekit.models import build_model
from posekit.utils.errors import DataError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import render_semseg_masks  # noqa: E402
import train  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLES = REPO / "experiments" / "samples"
MAIN_TERMS = [f"loss_densepose_{term}" for term in "UVISM"]
DENSEPOSE_TERMS = MAIN_TERMS + [prefix + term for prefix in ("inter_1_", "inter_2_") for term in MAIN_TERMS]
# Small images, few proposals, no warm-up and a higher rate (I at DensePose R-CNN's weight) so that 30
# iterations show the fall.
QUICK = ["SOLVER.BASE_LR", "0.02", "SOLVER.WARMUP_ITERS", "0", "INPUT.MIN_SIZE_TRAIN", "(160,)",
         "INPUT.MAX_SIZE_TRAIN", "256", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "64", "MODEL.RPN.POST_NMS_TOPK_TRAIN",
         "8", "MODEL.ROI_DENSEPOSE_HEAD.PART_WEIGHTS", "1.0"]


def branch_losses(model, batch):
    """The DensePose branch's main terms on the batch's ground-truth boxes as ROIs (a fixed set of ROIs)."""
    model.eval()
    rois = []
    for item in batch:
        instances = item["instances"]
        instances.proposal_boxes = instances.gt_boxes.clone()
        rois.append(instances)
    with torch.no_grad():
        features = model.backbone(model.preprocess(batch)[0])
        losses = model.roi_heads._densepose_losses(features, rois)
    return {name: float(losses[name]) for name in MAIN_TERMS}


def test_train_py_on_the_samples_gives_every_densepose_loss_non_zero_and_falling(tmp_path):
    iterations = 30
    cfg_path = str(SAMPLES / "amanet_tiny.yaml")
    opts = ["OUTPUT_DIR", str(tmp_path / "output"), "LOG_DIR", str(tmp_path / "log"), "SOLVER.MAX_ITER",
            str(iterations), "SOLVER.STEPS", "(1000,)", "SOLVER.CHECKPOINT_PERIOD", str(iterations), *QUICK]
    assert train.main(["--cfg", cfg_path, *opts]) == 0
    output = next((tmp_path / "output").glob("*/*/amanet_tiny"))
    history = torch.load(output / CHECKPOINT_FILE, weights_only=True)["loss_history"]
    for name in DENSEPOSE_TERMS:
        values = history[name]
        assert len(values) == iterations and torch.isfinite(values).all() and (values > 0).all(), name
    # Falling: the branch's terms on fixed ROIs (the sample people's boxes), initial weights (built as
    # tools/train.py builds them) against the trained ones; the logged terms vary with the proposals.
    cfg = load_cfg(cfg_path, opts)
    seed_everything(cfg.SEED)
    model = build_model(cfg, is_train=True)
    dataset = family_tools(cfg).training(cfg).dataset
    batch = [dataset[i] for i in range(len(dataset))]
    before = branch_losses(model, batch)
    model.load_state_dict(torch.load(output / FINAL_FILE, weights_only=True))
    after = branch_losses(model, batch)
    for name in MAIN_TERMS:
        assert after[name] < 0.95 * before[name], (name, before[name], after[name])
    # The trained model's people through DensePoseEstimator: DensePose R-CNN's fields and the keypoints.
    cfg = load_cfg(cfg_path, ["MODEL.WEIGHTS", str(output / FINAL_FILE), "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    people = DensePoseEstimator(cfg).predict(read_image(str(REPO / "data/samples/densepose_coco/images/"
                                                            "densepose_sample_1.jpg")))
    assert people and sorted(people[0]) == ["bbox", "keypoints", "labels", "score", "uv"]
    assert people[0]["keypoints"].shape == (17, 3) and people[0]["labels"].dtype == np.uint8


def test_ama_v1_semseg_ia_sample_config_overfits_the_samples(tmp_path):
    """AMA v1 + semantic branch + IA loss on the three mapped samples (one fixed batch): every DensePose term and
    the semantic one fall. The IA term (checked by hand in test_amanet_modules) is there and positive; it rises
    at first, while M learns the background prior that its foreground reference vectors pay for."""
    masks = tmp_path / "masks"
    assert render_semseg_masks.main(["--cfg", str(SAMPLES / "amanet_v1_tiny.yaml"), "--out", str(masks)]) == 0
    cfg = load_cfg(str(SAMPLES / "amanet_v1_tiny.yaml"),
                   ["DENSEPOSE_DATA.SEMSEG_MASK_DIR", str(masks), "INPUT.MIN_SIZE_TRAIN", "(160,)",
                    "MODEL.RPN.POST_NMS_TOPK_TRAIN", "8"])
    torch.manual_seed(0)
    model = build_model(cfg, is_train=True).train()
    dataset = family_tools(cfg).training(cfg).dataset
    batch = [dataset[i] for i in range(3)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    history = []
    for _ in range(14):
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        history.append({name: float(value) for name, value in losses.items()})
    for name in MAIN_TERMS + ["loss_dp_sem_seg"]:
        first, last = np.mean([h[name] for h in history[:3]]), np.mean([h[name] for h in history[-3:]])
        assert first > 0 and last < first, (name, first, last)
    assert all(np.isfinite(h["loss_push"]) and h["loss_push"] > 0 for h in history)


def test_person_masks_by_hand_and_the_mapper_naming_a_missing_one(tmp_path):
    truth = np.zeros((40, 50), np.uint8)
    truth[5:15, 10:30] = 1
    rle = mask_utils.encode(np.asfortranarray(truth))
    rle["counts"] = rle["counts"].decode("ascii")
    full_part = mask_utils.encode(np.asfortranarray(np.ones((256, 256), np.uint8)))
    full_part["counts"] = full_part["counts"].decode("ascii")
    record = {"file_name": "x.jpg", "height": 40, "width": 50, "annotations": [
        {"category_id": 1, "iscrowd": 0, "bbox": [0, 0, 1, 1], "segmentation": rle},
        # No segmentation: the part masks (one covering its canvas) fill the pixels whose centres lie in the box.
        {"category_id": 1, "iscrowd": 0, "bbox": [32.0, 20.0, 15.8, 16.0], "dp_masks": [full_part] + [[]] * 13},
        {"category_id": 1, "iscrowd": 1, "bbox": [0, 30, 10, 10], "segmentation": rle}]}
    expected = truth * 255
    expected[20:36, 32:48] = 255  # centres x 32.5 .. 47.5 in [32, 47.8), y 20.5 .. 35.5 in [20, 36)
    np.testing.assert_array_equal(render_person_mask(record), expected)
    # The tool writes one PNG per sample image; the mapper resizes it with the image.
    out = tmp_path / "masks"
    assert render_semseg_masks.main(["--dataset", "densepose_coco_samples", "--out", str(out)]) == 0
    records = get_dataset_records("densepose_coco_samples")
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(r["file_name"]).stem + ".png" for r in records)
    png = cv2.imread(str(out / (Path(records[0]["file_name"]).stem + ".png")), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(png, render_person_mask(records[0]))
    cfg = load_cfg(str(SAMPLES / "amanet_v1_tiny.yaml"), ["DENSEPOSE_DATA.SEMSEG_MASK_DIR", str(out)])
    mapper = PersonMaskMapper.from_config(cfg, is_train=True)
    item = mapper(records[0], np.random.SeedSequence(0))
    # Resizing keeps the person's share of the image: the item's mask in [0, 1] covers what the PNG covers.
    sem_seg = item["sem_seg"].float()
    assert sem_seg.shape == item["image"].shape[1:] and 0 <= float(sem_seg.min()) and float(sem_seg.max()) <= 1
    assert abs(float(sem_seg.mean()) - float((png > 0).mean())) < 0.02
    (out / (Path(records[1]["file_name"]).stem + ".png")).unlink()
    with pytest.raises(DataError, match=f"{out}/densepose_sample_2.png: no person mask for .*densepose_sample_2.jpg"):
        mapper(records[1], np.random.SeedSequence(0))
