"""detectron2-style ResNet: published parameter counts, detectron2 key names, output shapes, stride placement,
dilation, freezing, initialisation, and a tiny network against a float64 reference written here.

``detector_cfg`` (also used by test_fpn / test_hrfpn) is the detector family's tree with sections updated.
"""
from typing import Dict, List

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from posekit.config import get_cfg
from posekit.models.backbones.build import build_backbone
from posekit.models.backbones.resnet import ResNet, make_res5_stage
from posekit.models.layers import FrozenBatchNorm2d, ShapeSpec
from posekit.utils.errors import ConfigError

# A tiny ResNet-50 for computed values: widths 8 (stem), 16/32/64/128 out, bottlenecks 2 groups x 2.
TINY_RESNET = {"STEM_OUT_CHANNELS": 8, "RES2_OUT_CHANNELS": 16, "NUM_GROUPS": 2, "WIDTH_PER_GROUP": 2}
ALL_STAGES = ["res2", "res3", "res4", "res5"]


def detector_cfg(**sections: Dict[str, object]) -> CfgNode:
    """The detector family's tree (detectron2's defaults), each MODEL section updated by the keyword of its name."""
    cfg = get_cfg("detector")
    for name, values in sections.items():
        cfg.MODEL[name].update(values)
    return cfg


def build_meta(cfg: CfgNode) -> nn.Module:
    """The backbone on the meta device: shapes and counts without allocating or initialising memory."""
    with torch.device("meta"):
        return build_backbone(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# torchvision's published totals (docs "num_params": resnet50 25,557,032; resnet101 44,549,160;
# resnext101_32x8d 88,791,336) minus the 2048 -> 1000 fc layer (2,048,000 + 1,000). Trainable BN keeps the
# norm weights parameters, as torchvision's; the stride position does not change the count.
@pytest.mark.parametrize("depth, groups, width, expected", [(50, 1, 64, 23_508_032), (101, 1, 64, 42_500_160),
                                                            (101, 32, 8, 86_742_336)])
def test_body_parameter_counts_match_torchvision(depth, groups, width, expected):
    cfg = detector_cfg(BACKBONE={"FREEZE_AT": 0}, RESNETS={"DEPTH": depth, "NUM_GROUPS": groups, "NORM": "BN",
                                                          "WIDTH_PER_GROUP": width, "OUT_FEATURES": ["res5"]})
    assert count_parameters(build_meta(cfg)) == expected


def test_frozen_bn_body_counts_only_convolutions():
    # ResNet-50 norm channels: stem 64; res2 3 x (64+64+256) + 256; res3 4 x (128+128+512) + 512;
    # res4 6 x (256+256+1024) + 1024; res5 3 x (512+512+2048) + 2048 = 26,560, two parameters each.
    cfg = detector_cfg(RESNETS={"OUT_FEATURES": ["res5"]})
    assert count_parameters(build_meta(cfg)) == 23_508_032 - 2 * 26_560


def test_detectron2_key_names_and_shapes():
    shapes = {k: tuple(v.shape) for k, v in build_meta(detector_cfg(RESNETS={"OUT_FEATURES": ALL_STAGES}))
              .state_dict().items()}
    assert shapes["stem.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["stem.conv1.norm.running_var"] == (64,)
    assert shapes["res2.0.conv1.norm.running_var"] == (64,)
    assert shapes["res2.0.shortcut.weight"] == (256, 64, 1, 1)
    assert shapes["res3.0.shortcut.weight"] == (512, 256, 1, 1)
    assert shapes["res3.0.shortcut.norm.bias"] == (512,)
    assert shapes["res4.5.conv2.weight"] == (256, 256, 3, 3)
    assert shapes["res5.2.conv3.norm.running_mean"] == (2048,)
    assert "res3.1.shortcut.weight" not in shapes and "res6.0.conv1.weight" not in shapes
    assert not any("num_batches_tracked" in k for k in shapes)
    # detectron2's order: the stem, then each block's shortcut before its convs.
    assert list(shapes)[:5] == ["stem.conv1.weight"] + [f"stem.conv1.norm.{n}" for n in
                                                        ("weight", "bias", "running_mean", "running_var")]
    res2_keys = [k for k in shapes if k.startswith("res2.0.")]
    assert res2_keys[0] == "res2.0.shortcut.weight" and res2_keys[5] == "res2.0.conv1.weight"


def test_resnext_grouped_widths():
    cfg = detector_cfg(RESNETS={"DEPTH": 101, "NUM_GROUPS": 32, "WIDTH_PER_GROUP": 8, "STRIDE_IN_1X1": False,
                                "OUT_FEATURES": ALL_STAGES})
    state = build_meta(cfg).state_dict()
    assert tuple(state["res2.0.conv2.weight"].shape) == (256, 8, 3, 3)  # 32 groups of 8 channels
    assert tuple(state["res5.0.conv2.weight"].shape) == (2048, 64, 3, 3)
    assert "res4.22.conv3.weight" in state and "res4.23.conv3.weight" not in state


def test_c4_backbone_returns_res4_only_and_builds_no_res5():
    model = build_meta(detector_cfg())
    assert model.output_shape() == {"res4": ShapeSpec(1024, 16)}
    assert model.size_divisibility == 0
    assert not any(k.startswith("res5.") for k in model.state_dict())


def tiny_resnet(**resnets) -> ResNet:
    torch.manual_seed(0)
    return build_backbone(detector_cfg(RESNETS=dict(TINY_RESNET, **resnets)))


def test_tiny_output_names_channels_strides_and_sizes():
    model = tiny_resnet(OUT_FEATURES=["stem"] + ALL_STAGES)
    expected = {"stem": (8, 4), "res2": (16, 4), "res3": (32, 8), "res4": (64, 16), "res5": (128, 32)}
    assert {k: tuple(v) for k, v in model.output_shape().items()} == expected
    outputs = model(torch.randn(2, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "stem": (2, 8, 16, 24), "res2": (2, 16, 16, 24), "res3": (2, 32, 8, 12), "res4": (2, 64, 4, 6),
        "res5": (2, 128, 2, 3)}


def test_stem_pools_3x3_stride_2_padding_1():
    # 33 -> 7x7/2 conv (padding 3): 17 -> 3x3/2 pool with padding 1: floor((17 + 2 - 3) / 2) + 1 = 9
    # (Caffe2's ceil-mode pool without padding would give 8).
    stem = tiny_resnet(OUT_FEATURES=["stem"], NORM="AffineChannel").stem
    assert tuple(stem(torch.randn(1, 3, 33, 33)).shape) == (1, 8, 9, 9)


def test_affine_channel_norm_for_lcrnet():
    state = tiny_resnet(NORM="AffineChannel").state_dict()
    assert "res2.0.conv1.norm.weight" in state and "res2.0.conv1.norm.bias" in state
    assert not any(k.endswith("running_mean") for k in state)


def output_sizes(model: nn.Module, names: List[str], x: torch.Tensor) -> Dict[str, tuple]:
    """Spatial size of the output of each named submodule in one forward."""
    sizes = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: sizes.__setitem__(n, tuple(o.shape[-2:])))
               for n in names]
    model(x)
    for handle in handles:
        handle.remove()
    return sizes


@pytest.mark.parametrize("stride_in_1x1, conv1_size", [(True, (8, 12)), (False, (16, 24))])
def test_stride_placement(stride_in_1x1, conv1_size):
    # res3 receives 16x24 maps (64x96 input): the stride halves them at conv1 or at conv2.
    model = tiny_resnet(STRIDE_IN_1X1=stride_in_1x1, OUT_FEATURES=["res3"])
    sizes = output_sizes(model, ["res3.0.conv1", "res3.0.conv2", "res3.0.shortcut"], torch.randn(1, 3, 64, 96))
    assert sizes == {"res3.0.conv1": conv1_size, "res3.0.conv2": (8, 12), "res3.0.shortcut": (8, 12)}
    assert model.res3[0].conv1.stride == ((2, 2) if stride_in_1x1 else (1, 1))


def test_res5_dilation_keeps_stride_16():
    model = tiny_resnet(RES5_DILATION=2, OUT_FEATURES=["res4", "res5"])
    assert model.output_shape()["res5"] == ShapeSpec(128, 16)
    assert all(block.conv2.dilation == (2, 2) and block.conv2.padding == (2, 2) for block in model.res5)
    assert tuple(model(torch.randn(1, 3, 64, 96))["res5"].shape) == (1, 128, 4, 6)


def requires_grad_by_part(model: nn.Module) -> Dict[str, bool]:
    """Top-level part ("stem", "res2", ...) -> whether all its parameters require grad (None if it has none)."""
    parts: Dict[str, List[bool]] = {}
    for name, parameter in model.named_parameters():
        parts.setdefault(name.split(".")[0], []).append(parameter.requires_grad)
    assert all(len(set(flags)) == 1 for flags in parts.values())
    return {part: flags[0] for part, flags in parts.items()}


@pytest.mark.parametrize("freeze_at, frozen", [(0, set()), (1, {"stem"}), (2, {"stem", "res2"}),
                                               (3, {"stem", "res2", "res3"})])
def test_freeze_at(freeze_at, frozen):
    cfg = detector_cfg(BACKBONE={"FREEZE_AT": freeze_at}, RESNETS=dict(TINY_RESNET, NORM="BN", OUT_FEATURES=ALL_STAGES))
    model = build_backbone(cfg)
    parts = ["stem"] + ALL_STAGES
    assert requires_grad_by_part(model) == {part: part not in frozen for part in parts}
    for part in parts:
        norms = [m for m in getattr(model, part).modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
        assert all(isinstance(m, FrozenBatchNorm2d if part in frozen else nn.BatchNorm2d) for m in norms)


def test_freezing_keeps_the_eval_function():
    model = tiny_resnet(NORM="BN", OUT_FEATURES=ALL_STAGES)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    x = torch.randn(1, 3, 32, 32)
    expected = model.eval()(x)["res5"]
    torch.testing.assert_close(model.freeze(5)(x)["res5"], expected)


def test_convs_use_caffe2_msra_fill():
    # kaiming normal over fan-out for ReLU: std sqrt(2 / (64 * 7 * 7)) on the 9,408 stem weights.
    torch.manual_seed(0)
    model = build_backbone(detector_cfg(RESNETS=dict(TINY_RESNET, STEM_OUT_CHANNELS=64)))
    weight = model.stem.conv1.weight
    assert model.stem.conv1.bias is None
    assert abs(weight.std().item() / (2 / (64 * 49)) ** 0.5 - 1) < 0.05
    assert abs(weight.mean().item()) < 0.002


def test_res5_stage_of_the_c4_head():
    # detectron2's Res5ROIHeads: 3 blocks 1024 -> 2048 (bottleneck 512), stride 2 on the first block,
    # no dilation even when the backbone's res5 would be dilated.
    with torch.device("meta"):
        res5, out_channels = make_res5_stage(detector_cfg(RESNETS={"RES5_DILATION": 2}))
    assert out_channels == 2048
    shapes = {k: tuple(v.shape) for k, v in res5.state_dict().items()}
    assert len(res5) == 3
    assert shapes["0.shortcut.weight"] == (2048, 1024, 1, 1) and shapes["0.conv1.weight"] == (512, 1024, 1, 1)
    assert shapes["2.conv3.norm.weight"] == (2048,)
    assert res5[0].conv1.stride == (2, 2) and res5[0].conv2.dilation == (1, 1) and res5[1].conv1.stride == (1, 1)


@pytest.mark.parametrize("resnets, key", [({"DEPTH": 34}, "MODEL.RESNETS.DEPTH"),
                                          ({"OUT_FEATURES": ["res6"]}, "MODEL.RESNETS.OUT_FEATURES"),
                                          ({"OUT_FEATURES": []}, "MODEL.RESNETS.OUT_FEATURES"),
                                          ({"NORM": "SyncBN"}, "MODEL.RESNETS.NORM"),
                                          ({"RES5_DILATION": 4}, "MODEL.RESNETS.RES5_DILATION"),
                                          ({"DEFORM_ON_PER_STAGE": [False, True, False, False]},
                                           "MODEL.RESNETS.DEFORM_ON_PER_STAGE")])
def test_bad_resnet_config_names_the_key(resnets, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_meta(detector_cfg(RESNETS=resnets))


def test_unknown_backbone_name():
    with pytest.raises(ConfigError, match=r"MODEL\.BACKBONE\.NAME.*build_resnet_backbone"):
        build_backbone(detector_cfg(BACKBONE={"NAME": "build_vgg_backbone"}))


# A float64 reference written from detectron2's description (densepose.md 1.1), reading weights by name.
def reference_norm(x: torch.Tensor, state: Dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    scale = state[prefix + "weight"] / torch.sqrt(state[prefix + "running_var"] + 1e-5)
    shift = state[prefix + "bias"] - state[prefix + "running_mean"] * scale
    return x * scale[:, None, None] + shift[:, None, None]


def reference_block(x, state, prefix, stride, stride_in_1x1, groups):
    conv1_stride, conv2_stride = (stride, 1) if stride_in_1x1 else (1, stride)
    out = F.conv2d(x, state[prefix + "conv1.weight"], stride=conv1_stride)
    out = torch.relu(reference_norm(out, state, prefix + "conv1.norm."))
    out = F.conv2d(out, state[prefix + "conv2.weight"], stride=conv2_stride, padding=1, groups=groups)
    out = torch.relu(reference_norm(out, state, prefix + "conv2.norm."))
    out = reference_norm(F.conv2d(out, state[prefix + "conv3.weight"]), state, prefix + "conv3.norm.")
    if prefix + "shortcut.weight" in state:
        x = reference_norm(F.conv2d(x, state[prefix + "shortcut.weight"], stride=stride), state,
                           prefix + "shortcut.norm.")
    return torch.relu(out + x)


def reference_resnet50(x, state, stride_in_1x1, groups):
    x = F.conv2d(x, state["stem.conv1.weight"], stride=2, padding=3)
    x = F.max_pool2d(torch.relu(reference_norm(x, state, "stem.conv1.norm.")), 3, 2, 1)
    for stage, blocks in zip(ALL_STAGES, (3, 4, 6, 3)):
        for i in range(blocks):
            stride = 2 if i == 0 and stage != "res2" else 1
            x = reference_block(x, state, f"{stage}.{i}.", stride, stride_in_1x1, groups)
    return x


@pytest.mark.parametrize("stride_in_1x1", [True, False])
def test_tiny_resnet50_matches_float64_reference(stride_in_1x1):
    model = tiny_resnet(STRIDE_IN_1X1=stride_in_1x1, OUT_FEATURES=["res5"]).double()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    x = torch.randn(1, 3, 32, 48, dtype=torch.float64)
    state = model.state_dict()
    torch.testing.assert_close(model(x)["res5"], reference_resnet50(x, state, stride_in_1x1, groups=2))
