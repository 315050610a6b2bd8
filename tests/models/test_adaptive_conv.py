"""AdaptBlock geometry (dekr.md 3.3) and the official start state (dekr.md 3.4), checked against plain convs."""
import math

import pytest
import torch
import torch.nn.functional as F

from posekit.models import build_model
from posekit.models.dekr import AdaptBlock
from posekit.ops import deform_conv2d

CHANNELS = 4
SIZE = 12


def block_with_constant_transform(matrix, translation) -> AdaptBlock:
    """An AdaptBlock whose transform conv outputs ``matrix`` (row-major) and translation conv ``translation``."""
    torch.manual_seed(0)
    block = AdaptBlock(CHANNELS, CHANNELS).eval()
    with torch.no_grad():
        block.transform_matrix_conv.weight.zero_()
        block.transform_matrix_conv.bias.copy_(torch.tensor(matrix, dtype=torch.float32).flatten())
        block.translation_conv.weight.zero_()
        block.translation_conv.bias.copy_(torch.tensor(translation, dtype=torch.float32))
        block.bn.running_mean.uniform_(-0.5, 0.5)
        block.bn.running_var.uniform_(0.5, 2.0)
        block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.uniform_(-0.5, 0.5)
    return block


def expected_block_output(block: AdaptBlock, conv_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    bn = block.bn
    normalised = (conv_out - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    return torch.relu(normalised * bn.weight[:, None, None] + bn.bias[:, None, None] + x)


def test_identity_transform_is_a_plain_3x3_conv():
    block = block_with_constant_transform([[1, 0], [0, 1]], [0, 0])
    x = torch.randn(2, CHANNELS, SIZE, SIZE + 3)
    with torch.no_grad():
        assert torch.count_nonzero(block.offsets(x)) == 0
        plain = F.conv2d(x, block.adapt_conv.weight, padding=1)
        torch.testing.assert_close(block.adapt_conv(x, block.offsets(x)), plain, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(block(x), expected_block_output(block, plain, x), atol=1e-5, rtol=1e-5)


def ramp_probe(block: AdaptBlock) -> torch.Tensor:
    """Where each tap samples: (taps, 2, H, W) (row, column) positions read off linear ramps.

    Bilinear sampling of a linear function returns that function at the sampled point, so deformable
    conv with one-hot tap weights on a row ramp and a column ramp reveals every sampling position.
    """
    rows = torch.arange(SIZE, dtype=torch.float64).view(SIZE, 1).expand(SIZE, SIZE)
    cols = torch.arange(SIZE, dtype=torch.float64).view(1, SIZE).expand(SIZE, SIZE)
    ramps = torch.stack([rows, cols])[None]
    probe = torch.zeros(18, 2, 3, 3, dtype=torch.float64)
    for tap in range(9):
        for axis in range(2):
            probe[2 * tap + axis, axis, tap // 3, tap % 3] = 1.0
    offsets = block.offsets(torch.randn(1, CHANNELS, SIZE, SIZE)).double()
    return deform_conv2d(ramps, offsets, probe, padding=(1, 1))[0].view(9, 2, SIZE, SIZE)


@pytest.mark.parametrize("angle, scale, shift", [(math.pi / 6, 1.0, (0.0, 0.0)), (0.0, 1.7, (0.0, 0.0)),
                                                 (-math.pi / 3, 0.6, (0.75, -1.25))])
def test_sampling_positions_follow_the_affine_map(angle, scale, shift):
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    matrix = [[cos, -sin], [sin, cos]]
    block = block_with_constant_transform(matrix, shift)
    with torch.no_grad():
        sampled = ramp_probe(block)
    inner = slice(4, SIZE - 4)  # positions stay inside the image there, so no zero padding interferes
    for tap in range(9):
        dy, dx = tap // 3 - 1, tap % 3 - 1  # the regular grid position of this tap
        move_y = matrix[0][0] * dy + matrix[0][1] * dx + shift[0]
        move_x = matrix[1][0] * dy + matrix[1][1] * dx + shift[1]
        want_y = torch.arange(SIZE, dtype=torch.float64).view(SIZE, 1) + move_y
        want_x = torch.arange(SIZE, dtype=torch.float64).view(1, SIZE) + move_x
        torch.testing.assert_close(sampled[tap, 0, inner, inner], want_y.expand(SIZE, SIZE)[inner, inner])
        torch.testing.assert_close(sampled[tap, 1, inner, inner], want_x.expand(SIZE, SIZE)[inner, inner])


def test_pure_translation_samples_the_shifted_pixel():
    block = block_with_constant_transform([[1, 0], [0, 1]], [2.0, -1.0])
    x = torch.zeros(1, CHANNELS, SIZE, SIZE)
    x[0, :, 6, 5] = 1.0  # one-hot pixel
    weight = torch.zeros(CHANNELS, CHANNELS, 3, 3)
    weight[:, :, 1, 1] = torch.eye(CHANNELS)  # centre tap only
    with torch.no_grad():
        out = deform_conv2d(x, block.offsets(x), weight, padding=(1, 1))
    hot = (out[0, 0] == 1.0).nonzero().tolist()
    assert hot == [[4, 6]]  # the output pixel p with p + (2, -1) = (6, 5)
    assert out[0, 0].sum() == 1.0


def test_official_start_state_is_a_1x1_conv_with_summed_kernel(tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg, is_train=True).eval()
    block = model.offset_feature_layers[3][1]
    with torch.no_grad():
        block.bn.running_mean.uniform_(-0.5, 0.5)
        x = torch.randn(2, 15, 9, 11)
        summed = block.adapt_conv.weight.sum(dim=(2, 3), keepdim=True)
        expected = expected_block_output(block, F.conv2d(x, summed), x)
        torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)
