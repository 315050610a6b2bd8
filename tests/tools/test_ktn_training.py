"""KTN / KTNv2 training on the DensePose samples: the tiny configs' training set-up (the DensePose family's, which
tools/train.py runs; tests/tools/test_densepose_training.py covers the loop) and overfitting two sample images
(every branch loss falls).

The samples carry no keypoints; these tests add 17 synthetic ones per person (fixed fractions of the box, where a
standing person's joints roughly are) to a copy of the sample json, registered as ``ktn_keypoint_samples``."""
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.apis import family_tools
from posekit.config import load_cfg
from posekit.data.catalog import dataset_metadata, get_dataset_records, load_coco_json, register_dataset, \
    unregister_dataset
from posekit.data.densepose_mapper import DensePoseMapper
from posekit.models import build_model

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "data" / "samples" / "densepose_coco"
DATASET = "ktn_keypoint_samples"
# (x, y) box fractions of the 17 COCO keypoints: nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
KEYPOINT_FRACTIONS = [(0.5, 0.08), (0.53, 0.06), (0.47, 0.06), (0.56, 0.07), (0.44, 0.07), (0.65, 0.2), (0.35, 0.2),
                      (0.72, 0.35), (0.28, 0.35), (0.75, 0.48), (0.25, 0.48), (0.6, 0.52), (0.4, 0.52), (0.6, 0.72),
                      (0.4, 0.72), (0.6, 0.92), (0.4, 0.92)]
CONFIGS = {"ktn_tiny": ("loss_densepose_U", "loss_densepose_V", "loss_densepose_I", "loss_densepose_M"),
           "ktnv2_tiny": ("loss_densepose_U", "loss_densepose_V", "loss_densepose_I", "loss_densepose_M",
                          "loss_densepose_S")}


@pytest.fixture(scope="module")
def keypoint_samples(tmp_path_factory):
    """The DensePose samples with synthetic keypoints, registered for the module's tests."""
    data = json.loads((SAMPLES / "annotations" / "densepose_samples.json").read_text())
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        ann["keypoints"] = [v for fx, fy in KEYPOINT_FRACTIONS for v in (x + fx * w, y + fy * h, 2)]
        ann["num_keypoints"] = len(KEYPOINT_FRACTIONS)
    path = tmp_path_factory.mktemp("ktn_samples") / "densepose_samples_keypoints.json"
    path.write_text(json.dumps(data))
    metadata = {**dataset_metadata("densepose_coco_samples"), "json_file": str(path)}
    register_dataset(DATASET, functools.partial(load_coco_json, str(path), str(SAMPLES / "images")), metadata)
    yield DATASET
    unregister_dataset(DATASET)


def cfg_of(name, *opts):
    return load_cfg(str(REPO / "experiments" / "samples" / f"{name}.yaml"),
                    ["DATASETS.TRAIN", f"('{DATASET}',)", "DATASETS.TEST", f"('{DATASET}',)", *opts])


def test_training_set_up_gives_densepose_points_and_keypoints(keypoint_samples):
    cfg = cfg_of("ktn_tiny")
    item = family_tools(cfg).training(cfg).dataset[0]
    instances = item["instances"]
    assert instances.gt_keypoints.shape == (len(instances), 17, 3) and instances.has("gt_densepose")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_tiny_config_overfits_two_sample_images(name, keypoint_samples, one_thread):
    cfg = cfg_of(name)
    torch.manual_seed(0)
    model = build_model(cfg, is_train=True).train()
    mapper = DensePoseMapper.from_config(cfg, is_train=True)
    records = get_dataset_records(DATASET)
    batch = [mapper(records[k], np.random.SeedSequence(k)) for k in (0, 2)]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = {}
    for _ in range(10):
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        for key, value in losses.items():
            history.setdefault(key, []).append(value.item())
    for key in CONFIGS[name]:
        first, last = np.mean(history[key][:3]), np.mean(history[key][-3:])
        assert last < 0.9 * first, (key, history[key])
    assert np.mean(history["loss_keypoint"][-3:]) < np.mean(history["loss_keypoint"][:3]), history["loss_keypoint"]


def test_keypoint_pretraining_trains_the_keypoint_classifier_only(keypoint_samples, one_thread):
    cfg = cfg_of("ktnv2_tiny", "MODEL.DENSEPOSE_ON", "False")
    torch.manual_seed(0)
    model = build_model(cfg, is_train=True).train()
    mapper = DensePoseMapper.from_config(cfg, is_train=True)
    losses = model([mapper(get_dataset_records(DATASET)[0], np.random.SeedSequence(0))])
    assert {name for name in losses if not name.startswith(("loss_rpn", "loss_cls", "loss_box"))} == {"loss_keypoint"}
    losses["loss_keypoint"].backward()
    classifier = model.roi_heads.densepose_predictor.predictor[0].weight
    assert losses["loss_keypoint"].item() > 0 and classifier.grad.abs().sum() > 0
    assert model.roi_heads.decoder.predictor.weight.grad.abs().sum() > 0  # MID v2 learns from keypoints
