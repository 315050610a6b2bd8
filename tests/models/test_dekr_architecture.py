"""DEKR architecture against the official model: key layout, sizes and cost (dekr.md 4 and 5)."""
from pathlib import Path

import pytest
import torch

from posekit.models import build_model
from posekit.models.complexity import model_complexity
from posekit.utils.errors import ConfigError

OFFICIAL_W32_KEYS = Path(__file__).parent / "data" / "dekr-w32-state-dict.txt"
W32_COCO = "coco/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml"
W48_COCO = "coco/w48/w48_4x_reg03_bs5_640_adam_lr1e-3_coco_x140.yaml"
W32_CROWDPOSE = "crowdpose/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_crowdpose_x300.yaml"
W48_CROWDPOSE = "crowdpose/w48/w48_4x_reg03_bs5_640_adam_lr1e-3_crowdpose_x300.yaml"
W32_DEEPFASHION2 = "deepfashion2_cat1/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml"

OFFICIAL_BACKBONE_CHILDREN = ["conv1", "bn1", "conv2", "bn2", "relu", "layer1", "transition1", "stage2", "transition2",
                              "stage3", "transition3", "stage4"]
OFFICIAL_HEAD_CHILDREN = ["transition_heatmap", "transition_offset", "head_heatmap", "offset_feature_layers",
                          "offset_final_layer"]


@pytest.fixture
def meta_model(experiment_cfg):
    """Build an experiment's model on the meta device (no memory, instant)."""
    def build(relative: str) -> torch.nn.Module:
        with torch.device("meta"):
            return build_model(experiment_cfg(relative))
    return build


def read_official_keys():
    rows = []
    for line in OFFICIAL_W32_KEYS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype, kind = line.split("\t")
        rows.append((key, shape, dtype, kind))
    return rows


def test_w32_state_dict_equals_official_keys_shapes_and_order(meta_model):
    """Official names, renamed once at load time (backbone modules under 'backbone.'), give ours in order."""
    model = meta_model(W32_COCO)
    params = {name for name, _ in model.named_parameters()}
    ours = [(key, str(tuple(value.shape)), str(value.dtype).replace("torch.", ""),
             "param" if key in params else "buffer") for key, value in model.state_dict().items()]
    official = read_official_keys()
    renamed = list(model.convert_official_state_dict({key: None for key, *_ in official}))
    assert len(official) == 2264
    assert len(ours) == len(official)
    for mine, theirs, name in zip(ours, official, renamed):
        assert mine == (name, *theirs[1:])
    backbone_entries = sum(key.split(".")[0] in OFFICIAL_BACKBONE_CHILDREN for key, *_ in official)
    assert sum(name.startswith("backbone.") for name in renamed) == backbone_entries


def test_top_level_children_in_official_order(meta_model):
    model = meta_model(W32_COCO)
    assert [name for name, _ in model.backbone.named_children()] == OFFICIAL_BACKBONE_CHILDREN
    assert [name for name, _ in model.named_children()] == (["normalizer", "backbone"] + OFFICIAL_HEAD_CHILDREN
                                                           + ["criterion"])


def test_backbone_alone_returns_named_branches(meta_model):
    backbone = meta_model(W32_COCO).backbone
    assert backbone.output_shape() == {"stride4": (32, 4), "stride8": (64, 8), "stride16": (128, 16),
                                       "stride32": (256, 32)}
    branches = backbone(torch.zeros(1, 3, 64, 96, device="meta"))
    assert {name: tuple(x.shape) for name, x in branches.items()} == {
        "stride4": (1, 32, 16, 24), "stride8": (1, 64, 8, 12), "stride16": (1, 128, 4, 6), "stride32": (1, 256, 2, 3)}


@pytest.mark.parametrize("relative, entries", [(W32_CROWDPOSE, 2192), (W32_DEEPFASHION2, 2456)])
def test_state_dict_size_scales_with_keypoints(meta_model, relative, entries):
    assert len(meta_model(relative).state_dict()) == entries


@pytest.mark.parametrize("relative, params, macs", [
    (W32_COCO, 29_561_182, 45_385_056_256),
    (W48_COCO, 65_684_590, 141_526_732_800),
    (W32_CROWDPOSE, 29_522_071, 44_749_422_592),
    (W48_CROWDPOSE, 65_634_631, 140_255_846_400),
    (W32_DEEPFASHION2, 29_665_478, 47_080_079_360),
])
def test_parameters_and_macs_equal_official(experiment_cfg, relative, params, macs):
    assert model_complexity(experiment_cfg(relative)) == (params, macs)


def test_macs_follow_input_size(experiment_cfg):
    # dekr.md 5: W32 COCO at 640x640 costs 70,914,150,400 multiply-adds.
    cfg = experiment_cfg(W32_COCO, "DATASET.INPUT_SIZE", "640")
    assert model_complexity(cfg)[1] == 70_914_150_400


def test_w48_group_sizes_equal_official(meta_model):
    model = meta_model(W48_COCO)
    sizes = {name: sum(p.numel() for p in child.parameters())
             for name, child in [*model.named_children(), *model.backbone.named_children()]}
    assert sizes["stage4"] == 47_624_256
    assert sizes["transition_offset"] == 184_110
    assert sizes["head_heatmap"] == 42_546
    assert sizes["offset_feature_layers"] == 97_614


def test_tiny_model_output_shapes(tiny_model):
    with torch.no_grad():
        heatmap, offset = tiny_model(torch.randn(2, 3, 64, 96))
    assert heatmap.shape == (2, 18, 16, 24)
    assert offset.shape == (2, 34, 16, 24)


def test_unknown_model_name_is_a_config_error(experiment_cfg):
    with pytest.raises(ConfigError, match="MODEL.NAME"):
        build_model(experiment_cfg(W32_COCO, "MODEL.NAME", "hrnet_dekrr"))


def test_missing_spec_key_is_a_config_error(tiny_cfg):
    cfg = tiny_cfg.clone()
    cfg.defrost()
    del cfg.MODEL.SPEC.HEAD_OFFSET["NUM_CHANNELS_PERKPT"]
    with pytest.raises(ConfigError, match="MODEL.SPEC.HEAD_OFFSET.NUM_CHANNELS_PERKPT"):
        build_model(cfg)
