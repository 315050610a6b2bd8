"""roi_align and RoIAlign against a slow float64 reference written here (one sample at a time)."""
import math

import pytest
import torch

from posekit.ops import RoIAlign, roi_align


def bilinear(plane, y, x):
    """torchvision's RoIAlign sampling of plane (C, H, W) at (y, x)."""
    height, width = plane.shape[1:]
    if y < -1 or y > height or x < -1 or x > width:
        return plane.new_zeros(plane.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    y1, x1 = y0 + 1, x0 + 1
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * plane[:, y0, x0] + (1 - ly) * lx * plane[:, y0, x1]
            + ly * (1 - lx) * plane[:, y1, x0] + ly * lx * plane[:, y1, x1])


def slow_roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned):
    pooled_h, pooled_w = output_size
    shift = 0.5 if aligned else 0.0
    outputs = []
    for roi in rois.tolist():
        plane = input[int(roi[0])]
        x1, y1, x2, y2 = (v * spatial_scale - shift for v in roi[1:])
        box_w, box_h = x2 - x1, y2 - y1
        if not aligned:
            box_w, box_h = max(box_w, 1.0), max(box_h, 1.0)
        bin_h, bin_w = box_h / pooled_h, box_w / pooled_w
        grid_h = sampling_ratio if sampling_ratio > 0 else max(math.ceil(bin_h), 0)
        grid_w = sampling_ratio if sampling_ratio > 0 else max(math.ceil(bin_w), 0)
        count = max(grid_h * grid_w, 1)
        bins = []
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                total = plane.new_zeros(plane.shape[0])
                for iy in range(grid_h):
                    for ix in range(grid_w):
                        y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                        x = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                        total = total + bilinear(plane, y, x)
                bins.append(total / count)
        outputs.append(torch.stack(bins, dim=1).view(-1, pooled_h, pooled_w))
    return torch.stack(outputs)


def random_rois(generator, count, batch, height, width, dtype=torch.float64):
    """Boxes of all kinds: some cross or lie beyond the borders, some are smaller than a pixel."""
    centre = torch.rand(count, 2, generator=generator, dtype=dtype) * torch.tensor([width, height], dtype=dtype) * 1.4
    size = torch.rand(count, 2, generator=generator, dtype=dtype) ** 3 * torch.tensor([width, height], dtype=dtype)
    boxes = torch.cat([centre - 0.2 * width - size / 2, centre - 0.2 * width + size / 2], dim=1)
    index = torch.randint(0, batch, (count, 1), generator=generator).to(dtype)
    return torch.cat([index, boxes], dim=1)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_forward_and_gradient_match_slow_reference(aligned, sampling_ratio):
    generator = torch.Generator().manual_seed(10 + 2 * aligned + sampling_ratio)
    input = torch.randn(2, 3, 9, 11, generator=generator, dtype=torch.float64, requires_grad=True)
    rois = random_rois(generator, 8, 2, 18, 22)
    rois[0, 1:] = torch.tensor([3.0, 4.0, 3.2, 4.1], dtype=torch.float64)  # a tiny box
    rois[1, 1:] = torch.tensor([-30.0, -30.0, -25.0, -20.0], dtype=torch.float64)  # far outside
    out = roi_align(input, rois, (3, 2), 0.5, sampling_ratio, aligned)
    expected = slow_roi_align(input, rois, (3, 2), 0.5, sampling_ratio, aligned)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert out.abs().sum() > 0
    grad_out = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, input, grad_out)
    (expected_grad,) = torch.autograd.grad(expected, input, grad_out)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["expanded", "transposed"])
def test_gradient_through_output_gradient_strides(layout):
    # The CPU backward reads the output gradient through its strides: the gradient of a sum arrives as one
    # expanded value (strides 0), and a transposed one has its bins' strides swapped.
    generator = torch.Generator().manual_seed(21)
    input = torch.randn(2, 40, 9, 11, generator=generator, dtype=torch.float64, requires_grad=True)
    rois = random_rois(generator, 6, 2, 18, 22)
    out = roi_align(input, rois, (3, 2), 0.5, 2, True)
    if layout == "expanded":
        grad_out = torch.ones(1, dtype=torch.float64).expand_as(out)
    else:
        grad_out = torch.randn(6, 40, 2, 3, generator=generator, dtype=torch.float64).transpose(2, 3)
    (grad,) = torch.autograd.grad(out, input, grad_out)
    expected = slow_roi_align(input, rois, (3, 2), 0.5, 2, True)
    (expected_grad,) = torch.autograd.grad(expected, input, grad_out.contiguous())
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_hand_worked_values_on_a_ramp():
    """Bilinear sampling of f(y, x) = 10 y + x is exact, so each bin is f at the mean sample position."""
    ys, xs = torch.meshgrid(torch.arange(6.0), torch.arange(8.0), indexing="ij")
    ramp = (10 * ys + xs)[None, None].double()
    box = [torch.tensor([[1.0, 2.0, 5.0, 4.0]], dtype=torch.float64)]
    # legacy: box from (1, 2) to (5, 4), one sample at the bin centre (3, 3) -> 10 * 3 + 3
    assert roi_align(ramp, box, 1, 1.0, 1, aligned=False).item() == pytest.approx(33.0)
    # aligned: shifted by -0.5 -> centre (2.5, 2.5)
    assert roi_align(ramp, box, 1, 1.0, 1, aligned=True).item() == pytest.approx(27.5)
    # 2x2 bins of 1 x 2 pixels from (1.5, 0.5), 2x2 samples each: the top-left bin's mean sample is (2.0, 1.5)
    top_left = roi_align(ramp, box, 2, 1.0, 2, aligned=True)[0, 0, 0, 0].item()
    assert top_left == pytest.approx(10 * 2.0 + 1.5)
    # A sample between the last row (5) and the border (6) is clamped to the last row: f(5, 1.5)
    bottom = torch.tensor([[0, 2.0, 6.3, 2.0, 6.3]], dtype=torch.float64)
    assert roi_align(ramp, bottom, 1, 1.0, 1, aligned=True).item() == pytest.approx(10 * 5 + 1.5)


def test_list_of_boxes_equals_batch_indices_and_module():
    generator = torch.Generator().manual_seed(3)
    input = torch.randn(2, 4, 7, 7, generator=generator)
    first, second = torch.tensor([[0.0, 0.0, 5.0, 4.0]]), torch.tensor([[1.0, 1.0, 6.0, 6.5], [2.0, 0.5, 3.0, 3.0]])
    rois = torch.cat([torch.tensor([[0.0], [1.0], [1.0]]), torch.cat([first, second])], dim=1)
    expected = roi_align(input, rois, (2, 3), 1.0, -1, True)
    torch.testing.assert_close(roi_align(input, [first, second], (2, 3), 1.0, -1, True), expected)
    torch.testing.assert_close(RoIAlign((2, 3), 1.0, -1, True)(input, rois), expected)


def test_gradcheck_float64():
    generator = torch.Generator().manual_seed(4)
    input = torch.randn(1, 2, 5, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.3, 0.7, 4.1, 3.9], [0, -1.2, 2.2, 6.9, 5.7]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: roi_align(x, rois, (2, 2), 1.0, -1, True), (input,))


def test_float32_non_contiguous_and_empty():
    generator = torch.Generator().manual_seed(5)
    input = torch.randn(2, 5, 8, 3, 9, generator=generator)[:, :, :, 1]
    assert not input.is_contiguous()
    rois = random_rois(generator, 6, 2, 8, 9, dtype=torch.float32)
    expected = slow_roi_align(input.double(), rois.double(), (2, 2), 1.0, 2, False)
    torch.testing.assert_close(roi_align(input, rois, 2, 1.0, 2), expected.float(), rtol=1e-5, atol=1e-5)
    assert roi_align(input, rois[:0], (2, 3)).shape == (0, 5, 2, 3)
    assert roi_align(input, [rois[:0, 1:], rois[:0, 1:]], 4).shape == (0, 5, 4, 4)


@pytest.mark.parametrize("boxes, error, words", [
    (torch.zeros(3, 4), ValueError, "boxes must have shape [K, 5]"),
    (torch.zeros(3, 5, 1), ValueError, "boxes must have shape [K, 5], got (3, 5, 1)"),
    (torch.zeros(3, 5, dtype=torch.float64), TypeError, "boxes must have the dtype of input"),
    (torch.tensor([[2.0, 0, 0, 1, 1]]), ValueError, "integer batch indices in [0, 2)"),
    ([torch.zeros(1, 4)], ValueError, "list of 2 Tensor[L, 4]"),
    ([torch.zeros(1, 4), torch.zeros(1, 5)], ValueError, "boxes[1] must have shape [L, 4]"),
])
def test_bad_boxes_are_named(boxes, error, words):
    with pytest.raises(error) as info:
        roi_align(torch.zeros(2, 3, 4, 4), boxes, 2)
    assert words in str(info.value)


def test_bad_input_and_output_size():
    with pytest.raises(ValueError, match=r"input must have shape \[batch, channels, H, W\]"):
        roi_align(torch.zeros(3, 4, 4), torch.zeros(0, 5), 2)
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        roi_align(torch.zeros(1, 3, 4, 4), torch.zeros(1, 5), (0, 2))
