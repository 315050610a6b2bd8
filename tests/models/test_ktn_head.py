"""KTNv2's head body (densepose.md 3.3, 12): ScaleConvs' one kernel serves three dilations, the body's names."""
import pytest
import torch
import torch.nn.functional as F

from posekit.models.ktn import DensePoseKTNHead, ScaleConvs

pytestmark = pytest.mark.usefixtures("one_thread")


def test_scale_convs_share_one_kernel_across_three_dilations():
    torch.manual_seed(0)
    module = ScaleConvs(32).double()
    shared = [name for name, p in module.named_parameters() if p.shape == (32, 32, 3, 3)]
    assert shared == ["weight"]
    x = torch.randn(1, 32, 13, 13, dtype=torch.float64)
    target = torch.randn(1, 32, 13, 13, dtype=torch.float64)
    (module(x) * target).sum().backward()

    # The same computation with an independent copy of the kernel per dilation: the shared kernel's gradient
    # must be the sum of the three copies' gradients.
    copies = [module.weight.detach().clone().requires_grad_() for _ in range(3)]
    branches = [F.relu(F.group_norm(F.conv2d(x, w, padding=d, dilation=d), 32, norm.weight, norm.bias))
                for w, d, norm in zip(copies, (1, 6, 12), module.norms)]
    one_by_one = F.relu(F.group_norm(F.conv2d(x, module.conv1[0].weight), 32, module.conv1[1].weight,
                                     module.conv1[1].bias))
    out = F.relu(F.conv2d(torch.cat(branches + [one_by_one], dim=1), module.project[0].weight))
    (out * target).sum().backward()
    torch.testing.assert_close(out, module(x))
    assert all(c.grad.abs().sum() > 0 for c in copies)  # every dilation contributes
    torch.testing.assert_close(module.weight.grad, sum(c.grad for c in copies))


def test_ktn_head_names_and_shapes_are_ktnv2s():
    head = DensePoseKTNHead(32, 64, 3, 8, "GN")
    names = dict(head.named_parameters())
    assert {"ScaleConvs.weight", "ScaleConvs.norms.2.bias", "ScaleConvs.conv1.0.weight", "ScaleConvs.conv1.1.weight",
            "ScaleConvs.project.0.weight", "body_conv_fcn1.weight", "body_conv_fcn8.norm.bias"} <= set(names)
    assert "body_conv_fcn1.bias" not in names  # no bias before GroupNorm
    assert names["body_conv_fcn1.weight"].shape == (64, 32, 3, 3) and head.n_out_channels == 64
    assert head(torch.zeros(1, 32, 7, 7)).shape == (1, 64, 7, 7)
