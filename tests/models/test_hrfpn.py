"""detectron2 DensePose's HRFPN on posekit's HRNet: official key names, the W32 neck's parameter count, output
names, strides and sizes (hand-derived), a tiny neck against a float64 reference, and config errors."""
import pytest
import torch
import torch.nn.functional as F
from yacs.config import CfgNode

from posekit.models.backbones.build import build_backbone
from posekit.models.backbones.hrfpn import HRFPN
from posekit.models.layers import ShapeSpec
from posekit.utils.errors import ConfigError
from test_resnet import build_meta, count_parameters, detector_cfg

PYRAMID = ["p1", "p2", "p3", "p4", "p5"]


def hrfpn_cfg(**hrnet) -> CfgNode:
    """detectron2 DensePose's HRFPN-W32 config (ROI heads on p1..p5), MODEL.HRNET updated by ``hrnet``."""
    cfg = detector_cfg(BACKBONE={"NAME": "build_hrfpn_backbone"}, ROI_HEADS={"IN_FEATURES": PYRAMID})
    for key, value in hrnet.items():
        if isinstance(value, dict):
            cfg.MODEL.HRNET[key].update(value)
        else:
            cfg.MODEL.HRNET[key] = value
    return cfg


def tiny_cfg():
    """Stem 8 wide, branches 4/8/16/32 with one module of one block, pyramid 8 wide."""
    stage = {"NUM_MODULES": 1}
    return hrfpn_cfg(STEM_INPLANES=8, HRFPN={"OUT_CHANNELS": 8},
                     STAGE2=dict(stage, NUM_BLOCKS=[1, 1], NUM_CHANNELS=[4, 8]),
                     STAGE3=dict(stage, NUM_BLOCKS=[1, 1, 1], NUM_CHANNELS=[4, 8, 16]),
                     STAGE4=dict(stage, NUM_BLOCKS=[1, 1, 1, 1], NUM_CHANNELS=[4, 8, 16, 32]))


def test_w32_names_and_neck_parameter_count():
    model = build_meta(hrfpn_cfg())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["bottom_up.conv1.weight"] == (64, 3, 3, 3)
    assert shapes["bottom_up.stage4.2.fuse_layers.0.3.0.weight"] == (32, 256, 1, 1)
    assert shapes["interp_conv.0.0.weight"] == (32, 32, 4, 4)
    assert shapes["interp_conv.3.0.weight"] == (256, 256, 4, 4)
    assert shapes["interp_conv.2.1.running_var"] == (128,)
    assert shapes["reduction_pooling_conv.0.0.weight"] == (256, 480, 1, 1)
    assert shapes["reduction_pooling_conv.4.0.weight"] == (256, 480, 16, 16)
    assert shapes["reduction_pooling_conv.4.1.weight"] == (256,)
    assert shapes["fpn_conv.4.weight"] == (256, 256, 3, 3) and shapes["fpn_conv.4.bias"] == (256,)
    assert "interp_conv.0.0.bias" not in shapes and "fpn_conv.5.weight" not in shapes
    keys = list(shapes)
    assert keys.index("bottom_up.conv1.weight") < keys.index("fpn_conv.0.weight") < keys.index(
        "interp_conv.0.0.weight") < keys.index("reduction_pooling_conv.0.0.weight")
    neck = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("bottom_up."))
    # interp: 16 x (32^2 + 64^2 + 128^2 + 256^2) + BN 2 x 480; reduction: 480 x 256 x (1 + 4 + 16 + 64 + 256)
    # + 5 x 256 biases + BN 5 x 2 x 256; fpn_conv: 5 x (256 x 256 x 9 + 256).
    assert neck == 1_392_640 + 960 + 41_902_080 + 1_280 + 2_560 + 2_950_400
    assert count_parameters(model) > neck


def test_output_names_strides_and_divisibility():
    model = build_meta(hrfpn_cfg())
    assert model.output_shape() == {f"p{i + 1}": ShapeSpec(256, 2 ** (i + 2)) for i in range(5)}
    assert model.size_divisibility == 32


def test_one_level_per_roi_head_feature():
    cfg = hrfpn_cfg()
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p1", "p2", "p3", "p4"]
    model = build_meta(cfg)
    assert list(model.output_shape()) == ["p1", "p2", "p3", "p4"] and len(model.fpn_conv) == 4


def test_tiny_sizes_by_hand():
    torch.manual_seed(0)
    model = build_backbone(tiny_cfg()).eval()
    sizes = {}
    for i, conv in enumerate(model.interp_conv):
        conv.register_forward_hook(lambda m, inp, out, i=i: sizes.__setitem__(i, tuple(out.shape[-2:])))
    outputs = model(torch.randn(1, 3, 128, 192))
    # Branches at 32x48, 16x24, 8x12, 4x6; transposed conv k4, stride s, no padding: s (n - 1) + 4.
    assert sizes == {0: (35, 51), 1: (34, 50), 2: (32, 48), 3: (28, 44)}
    # Concat cropped to 28x44; reductions by 1, 2, 4, 8, 16: 28x44, 14x22, 7x11, 3x5, 1x2; then each level
    # cropped to 2^k times the coarsest (1x2): 16x32, 8x16, 4x8, 2x4, 1x2.
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "p1": (1, 8, 16, 32), "p2": (1, 8, 8, 16), "p3": (1, 8, 4, 8), "p4": (1, 8, 2, 4), "p5": (1, 8, 1, 2)}


def reference_bn_relu(x, state, prefix):
    scale = state[prefix + "weight"] / torch.sqrt(state[prefix + "running_var"] + 1e-5)
    shift = state[prefix + "bias"] - state[prefix + "running_mean"] * scale
    return torch.relu(x * scale[:, None, None] + shift[:, None, None])


def reference_neck(branches, state, levels):
    """densepose.md 1.1's neck in float64, weights read by their official names."""
    upsampled = [reference_bn_relu(F.conv_transpose2d(b, state[f"interp_conv.{i}.0.weight"], stride=2 ** i),
                                   state, f"interp_conv.{i}.1.") for i, b in enumerate(branches)]
    height, width = min(u.shape[2] for u in upsampled), min(u.shape[3] for u in upsampled)
    merged = torch.cat([u[:, :, :height, :width] for u in upsampled], 1)
    pyramid = [reference_bn_relu(F.conv2d(merged, state[f"reduction_pooling_conv.{j}.0.weight"],
                                          state[f"reduction_pooling_conv.{j}.0.bias"], stride=2 ** j),
                                 state, f"reduction_pooling_conv.{j}.1.") for j in range(levels)]
    top_h, top_w = pyramid[-1].shape[2:]
    pyramid = [p[:, :, :top_h * 2 ** (levels - 1 - j), :top_w * 2 ** (levels - 1 - j)] for j, p in enumerate(pyramid)]
    return [F.conv2d(p, state[f"fpn_conv.{j}.weight"], state[f"fpn_conv.{j}.bias"], padding=1)
            for j, p in enumerate(pyramid)]


def test_tiny_neck_matches_float64_reference():
    torch.manual_seed(0)
    model = build_backbone(tiny_cfg()).double().eval()
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d) and not name.startswith("bottom_up"):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    x = torch.randn(1, 3, 128, 160, dtype=torch.float64)
    branches = list(model.bottom_up(x).values())
    expected = reference_neck(branches, model.state_dict(), 5)
    outputs = model(x)
    assert list(outputs) == PYRAMID
    for name, reference in zip(PYRAMID, expected):
        torch.testing.assert_close(outputs[name], reference)


def test_neck_batch_norms_are_ordinary_and_train():
    model = build_meta(tiny_cfg())
    assert isinstance(model, HRFPN)
    assert all(type(branch[1]) is torch.nn.BatchNorm2d for branch in model.interp_conv)
    assert all(type(level[1]) is torch.nn.BatchNorm2d for level in model.reduction_pooling_conv)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("stage, key", [({"NUM_BRANCHES": 2}, "STAGE3.NUM_BRANCHES"),
                                        ({"FUSE_METHOD": "CAT"}, "STAGE3.FUSE_METHOD"),
                                        ({"BLOCK": "BASIC_V2"}, "STAGE3.BLOCK")])
def test_bad_hrnet_config_names_the_key(stage, key):
    with pytest.raises(ConfigError, match=rf"MODEL\.HRNET\.{key.replace('.', '[.]')}"):
        build_meta(hrfpn_cfg(STAGE3=stage))


def test_no_roi_head_features_is_an_error():
    cfg = hrfpn_cfg()
    cfg.MODEL.ROI_HEADS.IN_FEATURES = []
    with pytest.raises(ConfigError, match=r"MODEL\.ROI_HEADS\.IN_FEATURES"):
        build_meta(cfg)
