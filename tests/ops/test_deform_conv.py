"""deform_conv2d and DeformConv2d against a slow float64 reference written here (zero-padded gathers)."""
import pytest
import torch
import torch.nn.functional as F

from posekit.ops import DeformConv2d, deform_conv2d


def slow_deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask):
    """Loop over images, offset groups and taps; pad the input by one zero pixel so that every bilinear
    corner of a sample inside (-1, H) x (-1, W) can be read directly."""
    batch, channels, height, width = input.shape
    out_channels, group_channels, kh, kw = weight.shape
    groups = channels // group_channels
    offset_groups = offset.shape[1] // (2 * kh * kw)
    per_offset_group = channels // offset_groups
    out_h, out_w = offset.shape[2:]
    padded = F.pad(input, (1, 1, 1, 1))
    oy = torch.arange(out_h, dtype=input.dtype)[:, None] * stride[0] - padding[0]
    ox = torch.arange(out_w, dtype=input.dtype)[None, :] * stride[1] - padding[1]
    columns = input.new_zeros(batch, channels, kh * kw, out_h, out_w)
    for b in range(batch):
        for g in range(offset_groups):
            channel_slice = slice(g * per_offset_group, (g + 1) * per_offset_group)
            for i in range(kh):
                for j in range(kw):
                    tap = i * kw + j
                    y = oy + i * dilation[0] + offset[b, 2 * (g * kh * kw + tap)]
                    x = ox + j * dilation[1] + offset[b, 2 * (g * kh * kw + tap) + 1]
                    inside = ((y > -1) & (y < height) & (x > -1) & (x < width)).to(input.dtype)
                    y0 = y.detach().floor().clamp(-1, height - 1)
                    x0 = x.detach().floor().clamp(-1, width - 1)
                    value = 0
                    for cy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                        for cx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                            pixels = padded[b, channel_slice, cy.long() + 1, cx.long() + 1]
                            value = value + pixels * wy * wx
                    value = value * inside
                    if mask is not None:
                        value = value * mask[b, g * kh * kw + tap]
                    columns[b, channel_slice, tap] = value
    out = input.new_zeros(batch, out_channels, out_h, out_w)
    per_group_out = out_channels // groups
    for group in range(groups):
        w = weight[group * per_group_out:(group + 1) * per_group_out].reshape(per_group_out, -1)
        cols = columns[:, group * group_channels:(group + 1) * group_channels].reshape(batch, -1, out_h * out_w)
        out[:, group * per_group_out:(group + 1) * per_group_out] = (w @ cols).view(batch, -1, out_h, out_w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def make_case(batch, channels, size, out_channels, kernel, groups, offset_groups, stride, padding, dilation,
              with_mask, offset_scale, seed, dtype=torch.float64):
    """Random inputs; offsets reach well beyond the image borders when offset_scale is large."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    out_h = (height + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    taps = kernel[0] * kernel[1]
    args = {
        "input": torch.randn(batch, channels, height, width, generator=generator, dtype=dtype),
        "offset": offset_scale * torch.randn(batch, 2 * offset_groups * taps, out_h, out_w, generator=generator,
                                             dtype=dtype),
        "weight": torch.randn(out_channels, channels // groups, *kernel, generator=generator, dtype=dtype),
        "bias": torch.randn(out_channels, generator=generator, dtype=dtype),
        "mask": torch.rand(batch, offset_groups * taps, out_h, out_w, generator=generator, dtype=dtype)
        if with_mask else None,
    }
    return args, {"stride": stride, "padding": padding, "dilation": dilation}


CASES = {
    "plain": (2, 4, (7, 6), 3, (3, 3), 1, 1, (1, 1), (1, 1), (1, 1), False, 1.5),
    "groups_offset_groups_mask": (1, 6, (6, 7), 4, (3, 3), 2, 3, (1, 1), (1, 1), (1, 1), True, 2.0),
    "stride_dilation": (2, 3, (9, 8), 2, (3, 2), 1, 1, (2, 1), (2, 0), (2, 3), True, 1.0),
    "far_outside": (1, 2, (5, 5), 2, (3, 3), 1, 2, (1, 2), (0, 1), (1, 1), False, 6.0),
    # Several cache blocks of pixels per image, shared between the threads (CPU kernel).
    "many_blocks": (2, 15, (32, 32), 15, (3, 3), 1, 1, (1, 1), (1, 1), (1, 1), True, 1.5),
    # Offset groups of 3 channels across weight groups of 5: channel runs split at both boundaries.
    "crossing_groups": (1, 15, (20, 20), 6, (3, 3), 3, 5, (1, 1), (1, 1), (1, 1), True, 1.5),
    # Weight groups of 15 channels, padded to 16 in the CPU kernel, each split by offset groups of 5.
    "padded_split_groups": (2, 30, (11, 12), 4, (3, 3), 2, 6, (1, 1), (1, 1), (1, 1), True, 1.5),
    # Offset groups of 8 channels: runs as wide as one float32 vector.
    "eight_channel_runs": (1, 16, (12, 13), 5, (3, 3), 1, 2, (1, 1), (1, 1), (1, 1), True, 1.5),
}


@pytest.mark.parametrize("name", CASES)
def test_forward_and_gradients_match_slow_reference(name):
    args, geometry = make_case(*CASES[name], seed=len(name))
    leaves = {k: v.requires_grad_() for k, v in args.items() if v is not None}
    out = deform_conv2d(**args, **geometry)
    expected = slow_deform_conv2d(args["input"], args["offset"], args["weight"], args["bias"],
                                  geometry["stride"], geometry["padding"], geometry["dilation"], args["mask"])
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out)
    expected_grads = torch.autograd.grad(expected, list(leaves.values()), grad_out)
    for key, got, want in zip(leaves, grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=f"gradient of {key}")


def test_gradients_of_a_sum_match_slow_reference():
    # Autograd hands the gradient of a sum over as one expanded value (all strides 0).
    args, geometry = make_case(*CASES["groups_offset_groups_mask"], seed=9)
    leaves = {k: v.requires_grad_() for k, v in args.items() if v is not None}
    grads = torch.autograd.grad(deform_conv2d(**args, **geometry).sum(), list(leaves.values()))
    expected = slow_deform_conv2d(args["input"], args["offset"], args["weight"], args["bias"], geometry["stride"],
                                  geometry["padding"], geometry["dilation"], args["mask"])
    for key, got, want in zip(leaves, grads, torch.autograd.grad(expected.sum(), list(leaves.values()))):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=f"gradient of {key}")


def test_zero_offsets_equal_a_regular_convolution():
    args, geometry = make_case(2, 6, (8, 7), 4, (3, 3), 2, 1, (2, 1), (1, 2), (1, 2), False, 0.0, seed=1)
    out = deform_conv2d(**args, **geometry)
    expected = F.conv2d(args["input"], args["weight"], args["bias"], groups=2, **geometry)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_integer_offsets_shift_the_input_with_zero_padding():
    """dy = 1, dx = -2 everywhere: tap (i, j) of output (y, x) reads input[y + i, x + j - 3], zero outside."""
    args, geometry = make_case(1, 3, (6, 7), 2, (3, 3), 1, 1, (1, 1), (1, 1), (1, 1), False, 0.0, seed=2)
    args["offset"][:, 0::2] = 1.0
    args["offset"][:, 1::2] = -2.0
    # shifted[a, b] = input[a, b - 3]; the negative pad crops the one column the outputs never reach.
    shifted = F.pad(args["input"], (3, -1, 0, 2))
    expected = F.conv2d(shifted, args["weight"], args["bias"])
    torch.testing.assert_close(deform_conv2d(**args, **geometry), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("axis", [0, 1])
def test_float32_sample_one_ulp_inside_the_far_edge(axis):
    """A sample at 64 - 2**-18 (one float32 step below the width) weighs the last pixel by 2**-18: a floor
    taken as trunc(x + 1) - 1 rounds it up to 64 and reads the next row's first pixel at full weight."""
    generator = torch.Generator().manual_seed(11)
    input = torch.rand(1, 2, 64, 64, generator=generator) + 1
    weight = torch.rand(3, 2, 1, 1, generator=generator)
    offset = torch.zeros(1, 2, 64, 64)
    offset[:, axis] = torch.tensor(64.0).nextafter(torch.tensor(0.0)) - 63
    out = deform_conv2d(input, offset, weight)
    expected = slow_deform_conv2d(input.double(), offset.double(), weight.double(), None, (1, 1), (0, 0),
                                  (1, 1), None)
    assert expected.abs().max() > 1  # most samples fall between two pixels inside the map
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_image_beyond_exact_float32_pixel_indices():
    # 4100 x 4100 = 16.8M pixels > 2^24: there the float32 CPU kernel computes pixel indices in integers
    # (odd indices past 2^24 are not float32 numbers); the bottom rows' samples land past that point.
    generator = torch.Generator().manual_seed(5)
    input = torch.randn(1, 1, 4100, 4100, generator=generator)
    offset = torch.rand(1, 2, 65, 65, generator=generator) * 4 - 2
    weight = torch.ones(1, 1, 1, 1)
    got = deform_conv2d(input, offset, weight, stride=64)
    want = slow_deform_conv2d(input.double(), offset.double(), weight.double(), None, (64, 64), (0, 0), (1, 1), None)
    # float32 positions near 4096 are 2^-11 apart, so weights differ by ~5e-4 from float64's; reading a
    # neighbouring pixel instead would differ by O(1).
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-3)


def test_inference_mode_on_several_threads():
    # The CPU forward runs matrix products on worker threads, which must see the caller's inference mode.
    args, geometry = make_case(2, 15, (32, 32), 15, (3, 3), 1, 1, (1, 1), (1, 1), (1, 1), False, 1.5, seed=12)
    args = {k: v.float() for k, v in args.items() if v is not None}
    expected = slow_deform_conv2d(*(args[k].double() for k in ("input", "offset", "weight", "bias")),
                                  (1, 1), (1, 1), (1, 1), None)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            out = deform_conv2d(**args, **geometry)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)


def test_mask_scales_each_tap():
    args, geometry = make_case(1, 2, (5, 5), 2, (3, 3), 1, 1, (1, 1), (1, 1), (1, 1), True, 0.7, seed=3)
    full = dict(args, mask=torch.ones_like(args["mask"]))
    without_mask = dict(args, mask=None)
    torch.testing.assert_close(deform_conv2d(**full, **geometry), deform_conv2d(**without_mask, **geometry))
    half = dict(args, mask=torch.full_like(args["mask"], 0.5), bias=None)
    without_bias = dict(without_mask, bias=None)
    torch.testing.assert_close(deform_conv2d(**half, **geometry), 0.5 * deform_conv2d(**without_bias, **geometry))


def test_gradcheck_float64():
    args, geometry = make_case(1, 2, (4, 5), 2, (2, 2), 1, 2, (1, 1), (1, 0), (1, 2), True, 0.8, seed=4)
    inputs = tuple(v.requires_grad_() for v in args.values())

    def function(input, offset, weight, bias, mask):
        return deform_conv2d(input, offset, weight, bias, mask=mask, **geometry)

    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-7)


def test_float32_and_non_contiguous_inputs():
    args, geometry = make_case(2, 4, (6, 6), 3, (3, 3), 1, 2, (1, 1), (1, 1), (1, 1), True, 1.3, seed=5)
    expected = deform_conv2d(**args, **geometry)
    # Every other element of a doubled tensor: same values, strides of 2 in the last dimension.
    strided = {k: torch.stack([v, v], dim=-1).float()[..., 0] for k, v in args.items()}
    assert not strided["input"].is_contiguous()
    out = deform_conv2d(**strided, **geometry)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)


# Offset groups of 16 channels (DEKR's 15 padded to 16) and of 8 take the CPU kernel's float32 vector paths
# (forward and backward); runs of 3 channels its scalar loops.
@pytest.mark.parametrize("name", ["many_blocks", "crossing_groups", "eight_channel_runs"])
def test_float32_outputs_and_gradients_match_float64_reference(name):
    args, geometry = make_case(*CASES[name], seed=7)
    leaves = {k: v for k, v in args.items() if v is not None}
    single = {k: v.float().requires_grad_() for k, v in leaves.items()}
    double = {k: v.clone().requires_grad_() for k, v in leaves.items()}
    out = deform_conv2d(**single, **geometry)
    expected = slow_deform_conv2d(double["input"], double["offset"], double["weight"], double["bias"],
                                  geometry["stride"], geometry["padding"], geometry["dilation"], double["mask"])
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)
    grad_out = torch.randn(expected.shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    grads = torch.autograd.grad(out, list(single.values()), grad_out.float())
    expected_grads = torch.autograd.grad(expected, list(double.values()), grad_out)
    for key, got, want in zip(leaves, grads, expected_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4, msg=f"gradient of {key}")


def test_empty_batch_gives_empty_output():
    args, geometry = make_case(1, 2, (5, 5), 3, (3, 3), 1, 1, (1, 1), (1, 1), (1, 1), True, 1.0, seed=6)
    empty = {k: v[:0] if k in ("input", "offset", "mask") else v for k, v in args.items()}
    assert deform_conv2d(**empty, **geometry).shape == (0, 3, 5, 5)


def test_module_matches_torchvision_parameter_layout():
    layer = DeformConv2d(15, 15, 3, padding=1, bias=False)
    assert list(layer.state_dict()) == ["weight"]
    assert layer.weight.shape == (15, 15, 3, 3) and layer.bias is None
    grouped = DeformConv2d(4, 6, (3, 2), stride=2, groups=2)
    assert {k: tuple(v.shape) for k, v in grouped.state_dict().items()} == {"weight": (6, 2, 3, 2), "bias": (6,)}
    x = torch.randn(1, 4, 7, 6)
    offset = torch.zeros(1, 12, 3, 3)
    expected = F.conv2d(x, grouped.weight, grouped.bias, stride=2, groups=2)
    torch.testing.assert_close(grouped(x, offset), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change, error, words", [
    ({"input": torch.randn(2, 4, 6)}, ValueError, "input must have shape [batch, in_channels, H, W]"),
    ({"input": torch.randn(1, 4, 6, 6, dtype=torch.float64)}, TypeError, "weight must have the dtype of input"),
    ({"input": torch.randint(0, 3, (1, 4, 6, 6))}, TypeError, "input must have dtype in"),
    ({"weight": torch.randn(3, 3, 3, 3)}, ValueError, "groups dividing in_channels=4"),
    ({"offset": torch.randn(1, 17, 6, 6)}, ValueError, "2 * kh * kw = 18 dividing its channels"),
    ({"offset": torch.randn(1, 18, 5, 6)}, ValueError, "offset must have shape [batch, 2 * offset_groups * kh * kw, out_h, out_w] = (1, 18, 6, 6)"),
    ({"offset": torch.randn(1, 54, 6, 6)}, ValueError, "offset_groups dividing in_channels=4"),
    ({"mask": torch.randn(1, 18, 6, 6)}, ValueError, "mask must have shape [batch, offset_groups * kh * kw, out_h, out_w] = (1, 9, 6, 6)"),
    ({"bias": torch.randn(4)}, ValueError, "bias must have shape [out_channels] = (3,)"),
    ({"stride": 0}, ValueError, "stride must be >= 1"),
    ({"padding": (1, 1, 1)}, TypeError, "padding must be an int or a pair of ints"),
    ({"input": torch.randn(1, 4, 1, 1), "padding": 0}, ValueError, "too small for a 3x3 kernel"),
])
def test_bad_arguments_are_named(change, error, words):
    args = {"input": torch.randn(1, 4, 6, 6), "offset": torch.randn(1, 18, 6, 6), "weight": torch.randn(3, 4, 3, 3),
            "bias": None, "padding": 1, "mask": None}
    args.update(change)
    with pytest.raises(error) as info:
        deform_conv2d(**args)
    assert words in str(info.value)
