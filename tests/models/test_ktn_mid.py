"""KTN's multi-instance decoders (densepose.md 3.1, 3.2, 12): MID v1 is DensePose R-CNN's decoder; MID v2's
space-to-depth, pixel shuffle and whole forward pass against computations written here in float64."""
import pytest
import torch
import torch.nn.functional as F

from posekit.models.densepose import Decoder
from posekit.models.ktn import MultiInstanceDecoderV2, mid_v1, space_to_depth
from posekit.models.layers import ShapeSpec
from posekit.config import get_cfg
from posekit.utils.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")
FEATURES = ["p2", "p3", "p4", "p5"]
SHAPES = {name: ShapeSpec(channels=32, stride=4 * 2 ** k) for k, name in enumerate(FEATURES)}


def pyramid(size=8, channels=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, channels, size // 2 ** k, size // 2 ** k, generator=generator, dtype=torch.float64)
            for k in range(len(FEATURES))]


def randomised(module, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    return module.double()


def test_mid_v1_is_the_densepose_decoder_with_the_same_weights():
    cfg = get_cfg("ktn")
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    head.DECODER_CONV_DIMS, head.DECODER_OUT_DIMS, head.DECODER_NUM_CLASSES = 32, 24, 8
    mid = randomised(mid_v1(cfg, SHAPES, FEATURES))
    assert mid.predictor.out_channels == 24  # KTN v1's output width is DECODER_OUT_DIMS
    head.DECODER_NUM_CLASSES = 24
    decoder = Decoder.from_config(cfg, SHAPES, FEATURES).double()
    decoder.load_state_dict(mid.state_dict())  # same names and shapes
    features = pyramid()
    assert torch.equal(mid(features), decoder(features))
    # Panoptic-FPN decoding written out: per level [3x3 conv + ReLU, x2 bilinear] until stride 4, summed, 1x1 conv.
    weights = mid.state_dict()
    total = 0
    for k, (name, x) in enumerate(zip(FEATURES, features)):
        for block in range(max(1, k)):
            x = F.relu(F.conv2d(x, weights[f"{name}.{2 * block}.weight"], weights[f"{name}.{2 * block}.bias"], padding=1))
            if k:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        total = total + x
    expected = F.conv2d(total, weights["predictor.weight"], weights["predictor.bias"])
    assert mid(features).shape == (1, 24, 8, 8)
    torch.testing.assert_close(mid(features), expected)


def test_space_to_depth_is_phase_major():
    x = torch.arange(32.0).view(1, 2, 4, 4)  # channel 1 = channel 0 + 16
    out = space_to_depth(x)
    assert out.shape == (1, 8, 2, 2)
    # Phases (even row, even col), (even, odd), (odd, even), (odd, odd); channel = phase * C + c.
    assert out[0, 0].tolist() == [[0, 2], [8, 10]]
    assert out[0, 1].tolist() == [[16, 18], [24, 26]]
    assert out[0, 2].tolist() == [[1, 3], [9, 11]]
    assert out[0, 4].tolist() == [[4, 6], [12, 14]]
    assert out[0, 7].tolist() == [[21, 23], [29, 31]]


def test_space_to_depth_refuses_odd_sizes():
    with pytest.raises(DataError, match=r"even feature sizes, got \(5, 4\)"):
        space_to_depth(torch.zeros(1, 1, 5, 4))


def test_pixel_shuffle_of_the_top_down_path_on_a_hand_made_tensor():
    # out[c, 2h + i, 2w + j] = in[4c + 2i + j, h, w]
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert torch.nn.PixelShuffle(2)(x)[0].tolist() == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]


def reference_mid_v2(weights, features, multi_scale):
    """MID v2 as densepose.md 3.2 / 12 describe it, from the module's weights."""
    def conv(x, name, padding=0, dilation=1, relu=True):
        y = F.conv2d(x, weights[f"{name}.weight"], weights.get(f"{name}.bias"), padding=padding, dilation=dilation)
        return F.relu(y) if relu else y

    def s2d(x):
        return torch.cat([x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]], dim=1)

    adapted = [features[0]]
    for k in range(1, len(features)):
        adapted.append(features[k] + conv(s2d(adapted[-1]), f"bottom_up_{FEATURES[k - 1]}.adt_conv", padding=1))
    total = 0
    for k, (name, x) in enumerate(zip(FEATURES, adapted)):
        index = 0
        for _ in range(max(1, k)):
            x = conv(x, f"{name}.{index}", padding=1)
            if k:
                x = conv(x, f"{name}.{index + 1}")
                c = x.shape[1] // 4
                h, w = x.shape[-2:]
                # depth to space: out[c, 2h + i, 2w + j] = in[4c + 2i + j, h, w]
                x = x.view(1, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(1, c, 2 * h, 2 * w)
                index += 3
            else:
                index += 1
        total = total + x
    if multi_scale:
        def gn_relu(y, prefix):
            return F.relu(F.group_norm(y, 32, weights[f"{prefix}.weight"], weights[f"{prefix}.bias"]))
        branches = [gn_relu(F.conv2d(total, weights["trident_convs.0.0.weight"]), "trident_convs.0.1")]
        for d in (1, 2, 3):
            branches.append(gn_relu(F.conv2d(total, weights[f"trident_convs.{d}.0.weight"], padding=d, dilation=d),
                                    f"trident_convs.{d}.1"))
        total = torch.cat(branches, dim=1)
    return conv(total, "predictor", relu=False)


@pytest.mark.parametrize("multi_scale", [False, True])
def test_mid_v2_equals_the_written_out_computation(multi_scale):
    mid = randomised(MultiInstanceDecoderV2(SHAPES, FEATURES, 32, 16, 4, "", multi_scale))
    names = set(mid.state_dict())
    assert {"bottom_up_p2.adt_conv.weight", "bottom_up_p4.adt_conv.bias", "p5.6.weight", "p5.7.weight",
            "p3.1.weight", "predictor.weight"} <= names
    assert not any(name.startswith("bottom_up_p5") for name in names)
    assert ("trident_convs.3.1.bias" in names) == multi_scale
    features = pyramid()
    out = mid(features)
    assert out.shape == (1, 16, 8, 8)
    torch.testing.assert_close(out, reference_mid_v2(mid.state_dict(), features, multi_scale))


def test_mid_v2_asks_the_detector_to_pad_to_its_coarsest_stride():
    mid = MultiInstanceDecoderV2(SHAPES, FEATURES, 32, 16, 4, "", True)
    assert mid.size_divisibility == 32
    # With HRFPN's five levels (strides 4..64) space-to-depth reaches stride 32: images pad to 64.
    five = {f"p{k + 1}": ShapeSpec(channels=32, stride=4 * 2 ** k) for k in range(5)}
    assert MultiInstanceDecoderV2(five, list(five), 32, 16, 4, "", False).size_divisibility == 64
