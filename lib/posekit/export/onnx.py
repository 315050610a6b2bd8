"""ONNX export of DEKR: ``posekit::deform_conv2d`` becomes the standard ONNX ``DeformConv`` operator.

Uses the TorchScript-based exporter with a registered symbolic. The torch.export-based exporter (with a
``custom_translation_table``) gives the same graph, but took 8x the CPU time on the tiny sample model
(48 s vs 6 s on torch 2.13) and is missing from torch 2.4, the oldest torch posekit supports.
"""
import io
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import onnx
import torch
from torch import nn
from torch.onnx import symbolic_helper

from ..utils.io import atomic_write

OPSET_VERSION = 19  # the first opset with DeformConv
IR_VERSION = 10  # pinned: onnxruntime (1.31) refuses models whose IR is newer than it knows
INPUT_NAME = "image"
OUTPUT_NAMES = ("heatmap", "offset")
DYNAMIC_AXES = {
    INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
    "heatmap": {0: "batch", 2: "out_height", 3: "out_width"},
    "offset": {0: "batch", 2: "out_height", 3: "out_width"},
}
CUSTOM_OP = "posekit::deform_conv2d"


def _traced_channels(g, index: int) -> int:
    """Dim 1 of the op's input ``index`` as traced: the ONNX value may have lost it to a dynamic reshape."""
    sizes = g.original_node.inputsAt(index).type().varyingSizes()
    if not sizes or sizes[1] is None:
        raise ValueError(f"ONNX DeformConv needs the channel count of input {index} of {CUSTOM_OP}")
    return sizes[1]


def _optional_inputs(g, values: List) -> List:
    """Trailing absent inputs dropped, inner ones replaced by ONNX's empty-input placeholder."""
    while values and symbolic_helper._is_none(values[-1]):
        values.pop()
    return [symbolic_helper._optional_input_placeholder_tensor(g) if symbolic_helper._is_none(v) else v
            for v in values]


def deform_conv2d_symbolic(g, input, offset, weight, bias, mask, stride, padding, dilation):
    """``posekit::deform_conv2d`` as one ``DeformConv`` node: both lay offsets out as (dy, dx) per tap, taps row-major."""
    in_channels, offset_channels = _traced_channels(g, 0), _traced_channels(g, 1)
    _, group_channels, kernel_h, kernel_w = g.original_node.inputsAt(2).type().sizes()
    pad_h, pad_w = symbolic_helper._get_const(padding, "is", "padding")
    return g.op("DeformConv", *_optional_inputs(g, [input, weight, offset, bias, mask]),
                dilations_i=symbolic_helper._get_const(dilation, "is", "dilation"),
                group_i=in_channels // group_channels,
                kernel_shape_i=[kernel_h, kernel_w],
                offset_group_i=offset_channels // (2 * kernel_h * kernel_w),
                pads_i=[pad_h, pad_w, pad_h, pad_w],
                strides_i=symbolic_helper._get_const(stride, "is", "stride"))


torch.onnx.register_custom_op_symbolic(CUSTOM_OP, deform_conv2d_symbolic, OPSET_VERSION)


def check_exported(model: onnx.ModelProto) -> None:
    """Raise if the graph is invalid ONNX or still holds a node only posekit could run."""
    onnx.checker.check_model(model, full_check=True)
    custom = sorted({node.op_type for node in model.graph.node if node.domain not in ("", "ai.onnx")})
    if custom:
        raise ValueError(f"the exported graph holds non-standard operators: {', '.join(custom)}")


def to_onnx(module: nn.Module, inputs: Tuple[torch.Tensor, ...], input_names: Sequence[str],
            output_names: Sequence[str], dynamic_axes: Optional[Dict[str, Dict[int, str]]] = None) -> onnx.ModelProto:
    """Trace ``module`` on ``inputs`` into a checked, standard-ONNX model (opset 19, IR 10)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The deprecation notice concerns the exporter choice explained above; the tracer warnings come
        # from argument checks in posekit.ops, which do not shape the graph.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(module.eval(), inputs, buffer, dynamo=False, opset_version=OPSET_VERSION,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes)
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = IR_VERSION
    check_exported(model)
    return model


def export_dekr(network: nn.Module, path: Union[str, Path], input_size: int) -> onnx.ModelProto:
    """Export a DEKR network to ``path``: input ``image`` (N, 3, H, W) float RGB pixel values 0..255 (the
    ImageNet normalisation is inside the graph), outputs ``heatmap`` and ``offset``.

    H and W are dynamic but, as for the network itself, must be multiples of 32. ``input_size`` is the
    side of the square example image the graph is traced with.
    """
    example = torch.zeros(1, 3, input_size, input_size, device=next(network.parameters()).device)
    model = to_onnx(network, (example,), [INPUT_NAME], OUTPUT_NAMES, DYNAMIC_AXES)
    atomic_write(path, lambda tmp: onnx.save(model, tmp))
    return model
