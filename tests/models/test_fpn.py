"""detectron2's FPN: key names and parameter count of R-50-FPN, output names and strides, the top-down sum
and P6 on a hand-worked case, Caffe2 Xavier initialisation, norms and config errors."""
from typing import Dict

import pytest
import torch

from posekit.models.backbones.build import Backbone, build_backbone
from posekit.models.backbones.fpn import FPN, LastLevelMaxPool
from posekit.models.layers import ShapeSpec
from posekit.utils.errors import ConfigError
from test_resnet import ALL_STAGES, TINY_RESNET, build_meta, count_parameters, detector_cfg


def fpn_cfg(resnets=None, fpn=None):
    """R-50-FPN as detectron2's Base-RCNN-FPN, updated by ``resnets`` and ``fpn``."""
    return detector_cfg(BACKBONE={"NAME": "build_resnet_fpn_backbone"},
                        RESNETS=dict({"OUT_FEATURES": ALL_STAGES}, **(resnets or {})),
                        FPN=dict({"IN_FEATURES": ALL_STAGES}, **(fpn or {})))


def test_r50_fpn_names_count_and_outputs():
    model = build_meta(fpn_cfg())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes)[:2] == ["fpn_lateral2.weight", "fpn_lateral2.bias"]
    assert shapes["fpn_lateral2.weight"] == (256, 256, 1, 1)
    assert shapes["fpn_lateral5.weight"] == (256, 2048, 1, 1)
    assert shapes["fpn_output3.weight"] == (256, 256, 3, 3) and shapes["fpn_output3.bias"] == (256,)
    assert shapes["bottom_up.stem.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["bottom_up.res2.0.conv1.norm.running_var"] == (64,)
    assert "fpn_lateral6.weight" not in shapes and "fpn_output6.weight" not in shapes
    # Frozen-BN ResNet-50 convs (test_resnet) + laterals (256 + 512 + 1024 + 2048) x 256 + 4 x 256
    # + outputs 4 x (256 x 256 x 9 + 256).
    assert count_parameters(model) == 23_454_912 + 3_840 * 256 + 4 * 256 + 4 * (256 * 256 * 9 + 256)
    assert model.output_shape() == {f"p{s}": ShapeSpec(256, 2 ** s) for s in range(2, 7)}
    assert model.size_divisibility == 32


def test_tiny_fpn_output_sizes():
    torch.manual_seed(0)
    model = build_backbone(fpn_cfg(TINY_RESNET, {"OUT_CHANNELS": 8}))
    outputs = model(torch.randn(1, 3, 64, 96))
    # P6 = kernel-1 stride-2 max-pool of the 2x3 P5: rows 0, columns 0 and 2.
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "p2": (1, 8, 16, 24), "p3": (1, 8, 8, 12), "p4": (1, 8, 4, 6), "p5": (1, 8, 2, 3), "p6": (1, 8, 1, 2)}
    torch.testing.assert_close(outputs["p6"], outputs["p5"][:, :, ::2, ::2])


class FixedFeatures(Backbone):
    """A stand-in bottom-up network returning fixed one-channel res4 (stride 16) and res5 (stride 32) maps."""

    def __init__(self, features: Dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.features = features

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {"res4": ShapeSpec(1, 16), "res5": ShapeSpec(1, 32)}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return self.features


def hand_fpn(fuse_type: str, p5_gain: float) -> FPN:
    """FPN on FixedFeatures with identity laterals and outputs, except P5's output conv multiplies by ``p5_gain``."""
    c5 = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    c4 = 10 * torch.arange(16.0).view(1, 1, 4, 4)
    model = FPN(FixedFeatures({"res4": c4, "res5": c5}), ["res4", "res5"], 1, top_block=LastLevelMaxPool(),
                fuse_type=fuse_type)
    with torch.no_grad():
        for name, conv in model.named_children():
            if name.startswith("fpn_"):
                conv.weight.zero_()
                conv.bias.zero_()
                conv.weight[0, 0, conv.weight.shape[2] // 2, conv.weight.shape[3] // 2] = 1.0
        model.fpn_output5.weight.mul_(p5_gain)
    return model


def test_top_down_sum_by_hand():
    outputs = hand_fpn("sum", p5_gain=2.0)(torch.zeros(1, 3, 64, 64))
    assert list(outputs) == ["p4", "p5", "p6"]
    # P4 = C4 + nearest x2 of the lateral of C5 (before P5's output conv); P5 = 2 C5; P6 = P5[::2, ::2].
    assert outputs["p4"].flatten().tolist() == [1, 11, 22, 32, 41, 51, 62, 72, 83, 93, 104, 114, 123, 133, 144, 154]
    assert outputs["p5"].flatten().tolist() == [2, 4, 6, 8]
    assert outputs["p6"].flatten().tolist() == [2]


def test_top_down_average_by_hand():
    outputs = hand_fpn("avg", p5_gain=1.0)(torch.zeros(1, 3, 64, 64))
    assert outputs["p4"].flatten().tolist() == [0.5, 5.5, 11, 16, 20.5, 25.5, 31, 36, 41.5, 46.5, 52, 57,
                                                61.5, 66.5, 72, 77]


def test_fpn_convs_use_caffe2_xavier_fill():
    # kaiming uniform with a = 1: bound sqrt(6 / ((1 + 1) fan_in)) = sqrt(3 / (64 x 9)) over 36,864 weights.
    torch.manual_seed(0)
    model = build_backbone(fpn_cfg(TINY_RESNET, {"OUT_CHANNELS": 64}))
    bound = (3 / (64 * 9)) ** 0.5
    largest = model.fpn_output2.weight.abs().max().item()
    assert 0.99 * bound < largest <= bound
    assert torch.all(model.fpn_output2.bias == 0) and torch.all(model.fpn_lateral5.bias == 0)


def test_fpn_norm_replaces_the_bias():
    state = build_meta(fpn_cfg(fpn={"NORM": "GN"})).state_dict()
    assert "fpn_lateral2.norm.weight" in state and "fpn_output2.norm.bias" in state
    assert "fpn_lateral2.bias" not in state and "fpn_output2.bias" not in state


@pytest.mark.parametrize("resnets, fpn, key", [
    (None, {"IN_FEATURES": ["res2", "res4"]}, "MODEL.FPN.IN_FEATURES"),
    ({"OUT_FEATURES": ["res2", "res3", "res4"]}, None, "MODEL.FPN.IN_FEATURES"),
    (None, {"IN_FEATURES": []}, "MODEL.FPN.IN_FEATURES"),
    (None, {"FUSE_TYPE": "max"}, "MODEL.FPN.FUSE_TYPE"),
    (None, {"NORM": "LayerNorm"}, "MODEL.FPN.NORM"),
])
def test_bad_fpn_config_names_the_key(resnets, fpn, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_meta(fpn_cfg(resnets, fpn))


def test_freeze_at_reaches_through_to_the_bottom_up():
    # FREEZE_AT 2 (detectron2's default): the ResNet stem and res2 are frozen, the FPN convs train.
    model = build_meta(fpn_cfg())
    frozen = {".".join(n.split(".")[:2]) for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert frozen == {"bottom_up.stem", "bottom_up.res2"}
    assert {"fpn_lateral2", "fpn_output5", "bottom_up"} <= trainable
