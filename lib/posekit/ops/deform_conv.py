"""Deformable convolution (DCN v1, and v2 with a modulation mask) with torchvision's interface."""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from posekit.ops import _library
from posekit.ops._checks import (IntPair, autocast_enabled, check_floating, check_same, check_shape, check_tensor,
                                 pair, to_float32)


def _output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _check_deform_args(input: Tensor, offset: Tensor, weight: Tensor, bias: Optional[Tensor],
                       mask: Optional[Tensor], stride, padding, dilation) -> Tuple[int, int]:
    """Validate deform_conv2d's arguments; returns the output size (out_h, out_w)."""
    check_tensor(input, "input", "[batch, in_channels, H, W]", 4)
    check_floating(input, "input")
    check_tensor(weight, "weight", "[out_channels, in_channels / groups, kh, kw]", 4)
    check_same(input, "input", weight, "weight")
    out_channels, group_channels, kh, kw = weight.shape
    batch, channels, height, width = input.shape
    if group_channels == 0 or channels % group_channels or out_channels % (channels // group_channels):
        raise ValueError(f"weight must have shape [out_channels, in_channels / groups, kh, kw] with groups "
                         f"dividing in_channels={channels} and out_channels; got {tuple(weight.shape)}")
    out_h = _output_size(height, kh, stride[0], padding[0], dilation[0])
    out_w = _output_size(width, kw, stride[1], padding[1], dilation[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"input of size {height}x{width} is too small for a {kh}x{kw} kernel with "
                         f"stride={stride}, padding={padding}, dilation={dilation}")
    shape = "[batch, 2 * offset_groups * kh * kw, out_h, out_w]"
    check_tensor(offset, "offset", shape, 4)
    check_same(input, "input", offset, "offset")
    offset_groups = offset.shape[1] // (2 * kh * kw)
    if offset_groups == 0 or offset.shape[1] % (2 * kh * kw) or channels % offset_groups:
        raise ValueError(f"offset must have shape {shape} with 2 * kh * kw = {2 * kh * kw} dividing its channels "
                         f"and offset_groups dividing in_channels={channels}; got {tuple(offset.shape)}")
    check_shape(offset, "offset", (batch, offset.shape[1], out_h, out_w), shape)
    if mask is not None:
        shape = "[batch, offset_groups * kh * kw, out_h, out_w]"
        check_tensor(mask, "mask", shape, 4)
        check_same(input, "input", mask, "mask")
        check_shape(mask, "mask", (batch, offset_groups * kh * kw, out_h, out_w), shape)
    if bias is not None:
        check_tensor(bias, "bias", "[out_channels]", 1)
        check_same(input, "input", bias, "bias")
        check_shape(bias, "bias", (out_channels,), "[out_channels]")
    return out_h, out_w


def deform_conv2d(input: Tensor, offset: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                  stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                  mask: Optional[Tensor] = None) -> Tensor:
    """Deformable 2-D convolution; offset holds (dy, dx) per tap, taps row-major, per offset group.

    Tap (i, j) of output pixel (oy, ox) samples input at (oy*stride - padding + i*dilation + dy,
    ox*stride - padding + j*dilation + dx) bilinearly, pixels outside the input counting as zero, and
    is multiplied by ``mask`` when given. Input channels split evenly into the offset groups.
    """
    if autocast_enabled(input):
        # As torchvision's autocast kernel: sample and accumulate in float32, return the input's dtype.
        with torch.autocast(input.device.type, enabled=False):
            input32, offset, weight, bias, mask = to_float32(input, offset, weight, bias, mask)
            return deform_conv2d(input32, offset, weight, bias, stride, padding, dilation, mask).to(input.dtype)
    stride = pair(stride, "stride", 1)
    padding = pair(padding, "padding", 0)
    dilation = pair(dilation, "dilation", 1)
    out_h, out_w = _check_deform_args(input, offset, weight, bias, mask, stride, padding, dilation)
    if input.numel() == 0:
        # No batch, channels or pixels: every sample is zero padding.
        out = input.new_zeros((input.shape[0], weight.shape[0], out_h, out_w))
        return out if bias is None else out + bias.view(1, -1, 1, 1)
    return _library.deform_conv2d(input, offset, weight, bias, mask, stride, padding, dilation)


class DeformConv2d(nn.Module):
    """Deformable convolution layer; parameters ``weight`` and ``bias`` as in torchvision.ops.DeformConv2d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = pair(stride, "stride", 1)
        self.padding = pair(padding, "padding", 0)
        self.dilation = pair(dilation, "dilation", 1)
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform weight and fan-in uniform bias, the initialisation of nn.Conv2d."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor, offset: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Convolve ``input`` at positions shifted by ``offset`` (and modulated by ``mask``)."""
        return deform_conv2d(input, offset, self.weight, self.bias, self.stride, self.padding,
                             self.dilation, mask)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}")
