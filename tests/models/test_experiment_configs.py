"""The shipped experiment files load and carry the official values (dekr.md 8.2 and 8.3)."""
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
W32_COCO = "coco/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml"
W48_COCO = "coco/w48/w48_4x_reg03_bs5_640_adam_lr1e-3_coco_x140.yaml"
W32_CROWDPOSE = "crowdpose/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_crowdpose_x300.yaml"
W48_CROWDPOSE = "crowdpose/w48/w48_4x_reg03_bs5_640_adam_lr1e-3_crowdpose_x300.yaml"
W32_DEEPFASHION2 = "deepfashion2_cat1/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml"
DEMO_COCO = "coco/inference_demo_coco.yaml"
DEMO_CROWDPOSE = "crowdpose/inference_demo_crowdpose.yaml"
RESCORE_COCO = "coco/rescore_coco.yaml"
RESCORE_CROWDPOSE = "crowdpose/rescore_crowdpose.yaml"
OFFICIAL = [W32_COCO, W48_COCO, W32_CROWDPOSE, W48_CROWDPOSE, DEMO_COCO, DEMO_CROWDPOSE, RESCORE_COCO,
            RESCORE_CROWDPOSE]
WIDTH = {W32_COCO: 32, W48_COCO: 48, W32_CROWDPOSE: 32, W48_CROWDPOSE: 48, W32_DEEPFASHION2: 32, DEMO_COCO: 32,
         DEMO_CROWDPOSE: 32, RESCORE_COCO: 32, RESCORE_CROWDPOSE: 32}


def test_every_yaml_is_covered():
    shipped = {str(p.relative_to(EXPERIMENTS)) for p in EXPERIMENTS.rglob("*.yaml")}
    assert set(WIDTH) | {"samples/dekr_tiny_coco.yaml", "samples/dekr_tiny_crowdpose.yaml"} <= shipped


@pytest.mark.parametrize("relative", OFFICIAL)
def test_common_official_values(experiment_cfg, relative):
    cfg = experiment_cfg(relative)
    assert (cfg.OUTPUT_DIR, cfg.LOG_DIR, cfg.PRINT_FREQ, cfg.AUTO_RESUME) == ("output", "log", 100, True)
    assert (cfg.TEST.IMAGES_PER_GPU, cfg.TEST.NMS_THRE) == (1, 0.05)


@pytest.mark.parametrize("relative", list(WIDTH))
def test_model_spec(experiment_cfg, relative):
    c = WIDTH[relative]
    spec = experiment_cfg(relative).MODEL.SPEC
    assert spec.STAGES.NUM_MODULES == [1, 4, 3]
    assert spec.STAGES.NUM_BLOCKS == [[4, 4], [4, 4, 4], [4, 4, 4, 4]]
    assert spec.STAGES.NUM_CHANNELS == [[c, 2 * c], [c, 2 * c, 4 * c], [c, 2 * c, 4 * c, 8 * c]]
    assert (spec.HEAD_HEATMAP.NUM_CHANNELS, spec.HEAD_OFFSET.NUM_CHANNELS_PERKPT) == (c, 15)
    assert (spec.HEAD_OFFSET.BLOCK, spec.HEAD_OFFSET.NUM_BLOCKS, spec.FINAL_CONV_KERNEL) == ("ADAPTIVE", 2, 1)
    assert spec.PRETRAINED_LAYERS == ["*"]


@pytest.mark.parametrize("relative, size, batch, pretrained", [
    (W32_COCO, 512, 10, "model/imagenet/hrnet_w32-36af842e.pth"),
    (W48_COCO, 640, 5, "model/imagenet/hrnetv2_w48_imagenet_pretrained.pth"),
    (W32_CROWDPOSE, 512, 10, "model/imagenet/hrnet_w32-36af842e.pth"),
    (W48_CROWDPOSE, 640, 5, "model/imagenet/hrnetv2_w48_imagenet_pretrained.pth"),
])
def test_training_values(experiment_cfg, relative, size, batch, pretrained):
    cfg = experiment_cfg(relative)
    crowd = "crowdpose" in relative
    assert (cfg.DATASET.INPUT_SIZE, cfg.DATASET.OUTPUT_SIZE, cfg.TRAIN.IMAGES_PER_GPU) == (size, size // 4, batch)
    assert cfg.MODEL.PRETRAINED == pretrained
    assert (cfg.VERBOSE, cfg.LOSS.OFFSETS_LOSS_FACTOR, cfg.DATASET.MAX_SCALE, cfg.DATASET.DATA_FORMAT) == (
        False, 0.03, 1.5, "zip")
    assert (cfg.TRAIN.OPTIMIZER, cfg.TRAIN.LR) == ("adam", 0.001)
    if crowd:
        assert (cfg.DATASET.NUM_JOINTS, cfg.MODEL.NUM_JOINTS, cfg.DATASET.DATASET, cfg.DATASET.DATASET_TEST) == (
            14, 14, "crowd_pose_kpt", "crowd_pose")
        assert (cfg.DATASET.ROOT, cfg.DATASET.TRAIN, cfg.DATASET.TEST) == ("data/crowdpose", "trainval", "test")
        assert (cfg.TRAIN.LR_STEP, cfg.TRAIN.END_EPOCH) == ([200, 260], 300)
        assert (cfg.TEST.NMS_NUM_THRE, cfg.TEST.DECREASE) == (7, 0.8)
        assert cfg.RESCORE.MODEL_FILE == "model/rescore/final_rescore_crowd_pose_kpt.pth"
    else:
        assert (cfg.DATASET.NUM_JOINTS, cfg.DATASET.DATASET, cfg.DATASET.DATASET_TEST) == (17, "coco_kpt", "coco")
        assert (cfg.DATASET.ROOT, cfg.DATASET.TRAIN, cfg.DATASET.TEST) == ("data/coco", "train2017", "val2017")
        assert (cfg.TRAIN.LR_STEP, cfg.TRAIN.END_EPOCH) == ([90, 120], 140)
        assert (cfg.TEST.NMS_NUM_THRE, cfg.TEST.DECREASE) == (8, 0.9)
        assert cfg.RESCORE.MODEL_FILE == "model/rescore/final_rescore_coco_kpt.pth"


def test_deepfashion2_values(experiment_cfg):
    cfg = experiment_cfg(W32_DEEPFASHION2)
    assert (cfg.DATASET.NUM_JOINTS, cfg.MODEL.NUM_JOINTS, cfg.DATASET.KEYPOINT_SET) == (25, 25, "deepfashion2_cat1")
    assert cfg.DATASET.ROOT == "data/deepfashion2_cat1"


@pytest.mark.parametrize("relative, joints", [(DEMO_COCO, 17), (DEMO_CROWDPOSE, 14)])
def test_inference_demo_values(experiment_cfg, relative, joints):
    cfg = experiment_cfg(relative)
    assert cfg.DATASET.NUM_JOINTS == joints and cfg.VERBOSE and cfg.RESCORE.VALID
    assert cfg.TRAIN.IMAGES_PER_GPU == 32  # no TRAIN section: defaults stay


@pytest.mark.parametrize("relative, name, joints, tag", [(RESCORE_COCO, "rescore_coco", 17, "coco_kpt"),
                                                        (RESCORE_CROWDPOSE, "rescore_crowdpose", 14, "crowd_pose_kpt")])
def test_rescore_values(experiment_cfg, relative, name, joints, tag):
    cfg = experiment_cfg(relative)
    assert (cfg.DATASET.DATASET_TEST, cfg.DATASET.NUM_JOINTS) == (name, joints)
    assert (cfg.RESCORE.VALID, cfg.RESCORE.GET_DATA) == (False, True)
    assert cfg.RESCORE.DATA_FILE == f"../data/rescore_data/rescore_dataset_train_{tag}"
    assert cfg.LOSS.OFFSETS_LOSS_FACTOR == 1.0


@pytest.mark.parametrize("name, joints, root", [("coco", 17, "data/samples/coco"),
                                                ("crowdpose", 14, "data/samples/crowdpose")])
def test_sample_configs(experiment_cfg, name, joints, root):
    cfg = experiment_cfg(f"samples/dekr_tiny_{name}.yaml")
    assert (cfg.DATASET.NUM_JOINTS, cfg.DATASET.ROOT, cfg.DATASET.INPUT_SIZE, cfg.DATASET.OUTPUT_SIZE) == (
        joints, root, 256, 64)
    assert (cfg.TRAIN.IMAGES_PER_GPU, cfg.TEST.IMAGES_PER_GPU, cfg.WORKERS, cfg.RESCORE.VALID) == (2, 1, 0, False)
    assert (cfg.MODEL.INIT_WEIGHTS, cfg.MODEL.PRETRAINED, cfg.TRAIN.END_EPOCH, cfg.TRAIN.LR_STEP) == (
        True, "", 30, [25])
