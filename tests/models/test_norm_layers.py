"""Detector norm layers against hand-computed values: FrozenBatchNorm2d (detectron2), AffineChannel2d
(Detectron v1), get_norm, the norm-carrying Conv2d, and the per-channel affine maps BN folding needs."""
import pytest
import torch
from torch import nn

from posekit.models.layers import (AffineChannel2d, Conv2d, FrozenBatchNorm2d, ShapeSpec, get_norm,
                                   norm_as_affine)
from posekit.utils.errors import ConfigError


def hand_frozen_bn() -> FrozenBatchNorm2d:
    """Two channels with eps 1: scale = (2 / sqrt(3 + 1), 3 / sqrt(15 + 1)) = (1, 0.75),
    shift = (1 - 1 * 1, -1 - 0 * 0.75) = (0, -1)."""
    norm = FrozenBatchNorm2d(2, eps=1.0)
    norm.weight.copy_(torch.tensor([2.0, 3.0]))
    norm.bias.copy_(torch.tensor([1.0, -1.0]))
    norm.running_mean.copy_(torch.tensor([1.0, 0.0]))
    norm.running_var.copy_(torch.tensor([3.0, 15.0]))
    return norm


def test_frozen_bn_hand_values():
    x = torch.tensor([5.0, 4.0]).view(1, 2, 1, 1)
    assert hand_frozen_bn()(x).flatten().tolist() == [5.0, 2.0]  # 5 * 1 + 0, 4 * 0.75 - 1


def test_frozen_bn_is_identity_when_new_and_holds_no_parameters():
    norm = FrozenBatchNorm2d(3)
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(norm(x), x, rtol=1e-6, atol=1e-6)
    assert list(norm.parameters()) == []
    assert set(norm.state_dict()) == {"weight", "bias", "running_mean", "running_var"}


def test_frozen_bn_never_updates_and_passes_gradients_to_its_input():
    norm = hand_frozen_bn().train()
    x = torch.randn(4, 2, 3, 3, requires_grad=True) * 10
    x.retain_grad()
    norm(x).sum().backward()
    assert norm.running_mean.tolist() == [1.0, 0.0] and norm.running_var.tolist() == [3.0, 15.0]
    assert torch.all(x.grad[:, 0] == 1.0) and torch.all(x.grad[:, 1] == 0.75)


@pytest.mark.parametrize("with_counter", [True, False])
def test_frozen_bn_loads_a_batch_norm_state_with_or_without_num_batches_tracked(with_counter):
    state = {"weight": torch.tensor([2.0, 3.0]), "bias": torch.tensor([1.0, -1.0]),
             "running_mean": torch.tensor([1.0, 0.0]), "running_var": torch.tensor([3.0, 15.0])}
    if with_counter:
        state["num_batches_tracked"] = torch.tensor(7)
    norm = FrozenBatchNorm2d(2, eps=1.0)
    norm.load_state_dict(state, strict=True)
    assert norm(torch.tensor([5.0, 4.0]).view(1, 2, 1, 1)).flatten().tolist() == [5.0, 2.0]


def test_frozen_bn_loads_caffe2_weight_and_bias_only_with_unit_statistics():
    # detectron2 fills mean 0 and variance 1 for such weights: scale = 2 / sqrt(1 + 1) with eps 1.
    norm = FrozenBatchNorm2d(1, eps=1.0)
    norm.load_state_dict({"weight": torch.tensor([2.0]), "bias": torch.tensor([0.5])}, strict=True)
    assert norm.running_mean.tolist() == [0.0] and norm.running_var.tolist() == [1.0]
    torch.testing.assert_close(norm(torch.ones(1, 1, 1, 1)).flatten(), torch.tensor([2 / 2 ** 0.5 + 0.5]))


def test_convert_frozen_batchnorm_keeps_the_eval_function():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.BatchNorm2d(4, eps=1e-3)))
    bn = model[1][0]
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 3, 5, 5)
    expected = model.eval()(x)  # torch's own BatchNorm2d is the reference
    converted = FrozenBatchNorm2d.convert_frozen_batchnorm(model)
    assert converted is model and isinstance(model[1][0], FrozenBatchNorm2d) and model[1][0].eps == 1e-3
    torch.testing.assert_close(model(x), expected)


def test_affine_channel_hand_values_no_eps_no_statistics():
    norm = AffineChannel2d(2)
    norm.weight.copy_(torch.tensor([0.5, -2.0]))
    norm.bias.copy_(torch.tensor([1.0, 3.0]))
    x = torch.tensor([4.0, 1.5]).view(1, 2, 1, 1)
    assert norm(x).flatten().tolist() == [3.0, 0.0]  # 4 * 0.5 + 1, 1.5 * -2 + 3
    assert set(norm.state_dict()) == {"weight", "bias"} and list(norm.parameters()) == []


def test_get_norm_names():
    assert isinstance(get_norm("FrozenBN", 8), FrozenBatchNorm2d)
    assert isinstance(get_norm("AffineChannel", 8), AffineChannel2d)
    assert type(get_norm("BN", 8)) is nn.BatchNorm2d
    group_norm = get_norm("GN", 64)
    assert isinstance(group_norm, nn.GroupNorm) and group_norm.num_groups == 32
    assert get_norm("", 8) is None
    with pytest.raises(ConfigError, match="MODEL.RESNETS.NORM.*SyncBN"):
        get_norm("SyncBN", 8)
    with pytest.raises(ConfigError, match="MODEL.FPN.NORM"):
        get_norm("LN", 8, "MODEL.FPN.NORM")


def test_norm_as_affine_hand_values_for_folding():
    scale, shift = norm_as_affine(hand_frozen_bn())
    assert scale.dtype == torch.float64 and scale.tolist() == [1.0, 0.75] and shift.tolist() == [0.0, -1.0]
    affine = AffineChannel2d(1)
    affine.weight.fill_(3.0)
    affine.bias.fill_(-2.0)
    assert [t.tolist() for t in norm_as_affine(affine)] == [[3.0], [-2.0]]
    bn = nn.BatchNorm2d(1, eps=1.0)  # (x - 1) / 2 * 4 + 5 = 2x + 3
    with torch.no_grad():
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(3.0)
        bn.weight.fill_(4.0)
        bn.bias.fill_(5.0)
    assert [t.tolist() for t in norm_as_affine(bn)] == [[2.0], [3.0]]
    assert norm_as_affine(nn.GroupNorm(1, 4)) is None


def test_conv_folded_with_norm_as_affine_computes_the_same():
    torch.manual_seed(0)
    conv = Conv2d(3, 2, 3, padding=1, bias=False, norm=hand_frozen_bn(), activation=torch.relu).double()
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    scale, shift = norm_as_affine(conv.norm)
    folded = nn.functional.conv2d(x, conv.weight * scale.view(-1, 1, 1, 1), shift, padding=1)
    torch.testing.assert_close(conv(x), torch.relu(folded))


def test_conv2d_names_its_norm_like_detectron2():
    conv = Conv2d(3, 4, 1, bias=False, norm=FrozenBatchNorm2d(4))
    assert list(conv.state_dict()) == ["weight", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var"]
    plain = Conv2d(3, 4, 1)
    assert plain.norm is None and list(plain.state_dict()) == ["weight", "bias"]


def test_conv2d_applies_norm_then_activation():
    conv = Conv2d(1, 1, 1, bias=False, norm=AffineChannel2d(1), activation=torch.relu)
    with torch.no_grad():
        conv.weight.fill_(2.0)
    conv.norm.bias.fill_(-5.0)
    x = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2)
    assert conv(x).flatten().tolist() == [0.0, 1.0]  # relu(2 - 5), relu(6 - 5)


def test_shape_spec_fields():
    spec = ShapeSpec(channels=256, stride=16)
    assert spec == (256, 16) and spec.channels == 256 and spec.stride == 16
