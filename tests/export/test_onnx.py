"""ONNX export: tools/export_onnx.py writes a standard-ONNX DEKR that onnxruntime runs like PyTorch.

Relative error throughout: max |onnxruntime - PyTorch| / max |PyTorch| over the whole output tensor.
"""
import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

from posekit.config import load_cfg
from posekit.data.image_io import read_rgb
from posekit.data.metadata import keypoint_set_from_cfg
from posekit.export.onnx import to_onnx
from posekit.export.runtime import OnnxRuntimeNetwork
from posekit.inference.dekr import predict_image
from posekit.models import build_model
from posekit.models.dekr.adaptive_conv import AdaptBlock
from posekit.ops import DeformConv2d

REPO = Path(__file__).resolve().parents[2]
TINY_CFG = REPO / "experiments" / "samples" / "dekr_tiny_coco.yaml"
MAX_RELATIVE_ERROR = 1e-4


def relative_error(actual: np.ndarray, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|."""
    expected = expected.detach().numpy()
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def ort_session(path_or_bytes) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])


def perturb_adaptive_convs(network: nn.Module, generator: torch.Generator) -> None:
    """Give every AdaptBlock a non-trivial affine map (A near the identity) and shift u of about a pixel."""
    for block in network.modules():
        if isinstance(block, AdaptBlock):
            for conv, base in ((block.transform_matrix_conv, torch.tensor([1.0, 0.0, 0.0, 1.0])),
                               (block.translation_conv, torch.zeros(2))):
                conv.weight.data = 0.02 * torch.randn(conv.weight.shape, generator=generator)
                conv.bias.data = base + 1.5 * (torch.rand(base.shape, generator=generator) - 0.5)


@pytest.fixture(scope="module")
def tiny_network() -> nn.Module:
    """The tiny sample DEKR with random weights and perturbed adaptive-conv offset predictors; a raised
    heatmap bias (as in the tiny_dekr_weights fixture) makes images yield people."""
    generator = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    network = build_model(load_cfg(str(TINY_CFG), [])).eval()
    perturb_adaptive_convs(network, generator)
    network.head_heatmap[1].bias.data += 0.3
    return network


@pytest.fixture(scope="module")
def exported(tiny_network, tmp_path_factory):
    """(path, tool output) of tools/export_onnx.py run on the tiny network's saved weights."""
    folder = tmp_path_factory.mktemp("onnx")
    weights, out = folder / "tiny.pth", folder / "tiny.onnx"
    torch.save(tiny_network.state_dict(), weights)
    spec = importlib.util.spec_from_file_location("export_onnx", REPO / "tools" / "export_onnx.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--cfg", str(TINY_CFG), "--out", str(out), "TEST.MODEL_FILE", str(weights)]) == 0
    return out


def test_offsets_are_fractional_and_large(tiny_network):
    # Precondition of the comparison below: sampling is really bilinear and leaves the pixel grid.
    block = next(m for m in tiny_network.modules() if isinstance(m, AdaptBlock))
    offsets = block.offsets(torch.randn(1, 15, 16, 16))
    fractions = offsets - offsets.round()
    assert offsets.abs().mean() > 0.3
    assert fractions.abs().mean() > 0.15


def test_graph_is_standard_onnx_with_deform_conv(exported):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 10
    assert {(entry.domain, entry.version) for entry in model.opset_import} == {("", 19)}
    assert sum(node.op_type == "DeformConv" for node in model.graph.node) == 2 * 17
    assert all(node.domain == "" for node in model.graph.node)
    assert [value.name for value in model.graph.output] == ["heatmap", "offset"]


@pytest.mark.parametrize("shape", [(1, 3, 192, 320), (2, 3, 320, 128)])
def test_onnxruntime_matches_pytorch(exported, tiny_network, shape):
    image = torch.randn(shape, generator=torch.Generator().manual_seed(shape[2]))
    with torch.no_grad():
        expected = tiny_network(image)
    outputs = ort_session(str(exported)).run(["heatmap", "offset"], {"image": image.numpy()})
    for actual, reference in zip(outputs, expected):
        assert actual.shape == tuple(reference.shape)
        assert relative_error(actual, reference) <= MAX_RELATIVE_ERROR


def test_posekit_pipeline_runs_on_the_exported_model(exported, tiny_network):
    cfg = load_cfg(str(TINY_CFG), [])
    image = read_rgb(str(REPO / "data" / "samples" / "coco" / "images" / "val2017" / "000000000785.jpg"))
    keypoint_set = keypoint_set_from_cfg(cfg)
    with torch.no_grad():
        expected_poses, expected_scores = predict_image(tiny_network, image, cfg, keypoint_set)
    poses, scores = predict_image(OnnxRuntimeNetwork(exported), image, cfg, keypoint_set)
    assert len(expected_poses) > 0
    np.testing.assert_allclose(poses, expected_poses, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("groups, offset_groups, stride, dilation, with_bias, with_mask", [
    (1, 1, 1, 1, True, False),
    (2, 2, 2, 1, False, True),
    (4, 2, 1, 2, True, True),
])
def test_deform_conv_layer_attributes(groups, offset_groups, stride, dilation, with_bias, with_mask):
    # The DEKR graph only uses groups=1, no bias and no mask: check the other attributes and inputs too.
    generator = torch.Generator().manual_seed(groups * 10 + stride)
    layer = DeformConv2d(8, 8, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups,
                         bias=with_bias).eval()
    image = torch.randn(1, 8, 11, 13, generator=generator)
    out_h, out_w = (11 - 1) // stride + 1, (13 - 1) // stride + 1
    offset = 2 * torch.randn(1, 2 * offset_groups * 9, out_h, out_w, generator=generator)
    mask = torch.rand(1, offset_groups * 9, out_h, out_w, generator=generator) if with_mask else None
    inputs = (image, offset) if mask is None else (image, offset, mask)
    names = ["image", "offset", "mask"][:len(inputs)]
    model = to_onnx(layer, inputs, names, ["out"])
    node = next(n for n in model.graph.node if n.op_type == "DeformConv")
    attributes = {a.name: list(a.ints) or a.i for a in node.attribute}
    assert attributes["group"] == groups and attributes["offset_group"] == offset_groups
    assert attributes["strides"] == [stride] * 2 and attributes["dilations"] == [dilation] * 2
    actual = ort_session(model.SerializeToString()).run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]
    with torch.no_grad():
        assert relative_error(actual, layer(*inputs)) <= MAX_RELATIVE_ERROR
