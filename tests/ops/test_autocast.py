"""Under autocast the ops accept low-precision activations with float32 weights, compute in float32 and
return the activations' dtype (torchvision's autocast behaviour)."""
import torch

from posekit.ops import deform_conv2d, roi_align


def test_deform_conv2d_under_bf16_autocast_matches_float32():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 6, 7)
    offset = torch.randn(1, 18, 6, 7)
    weight = torch.randn(5, 4, 3, 3)
    low = x.to(torch.bfloat16)
    expected = deform_conv2d(low.float(), offset.to(torch.bfloat16).float(), weight, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = deform_conv2d(low, offset.to(torch.bfloat16), weight, padding=1)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected.to(torch.bfloat16).float())


def test_roi_align_under_bf16_autocast_matches_float32():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 10, 12).to(torch.bfloat16)
    boxes = torch.tensor([[0, 1.0, 1.5, 7.0, 8.0], [1, 0.0, 0.0, 11.0, 9.0]])
    expected = roi_align(x.float(), boxes, 3, sampling_ratio=2, aligned=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = roi_align(x, boxes, 3, sampling_ratio=2, aligned=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected.to(torch.bfloat16).float())
