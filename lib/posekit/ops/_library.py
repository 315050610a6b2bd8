"""Loads the compiled kernels (torch.ops.posekit) and gives them autograd and fake (meta) implementations.

The fake implementations compute output shapes without data, so torch.compile and torch.export can
trace models that use the ops.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

try:
    from posekit import _C  # noqa: F401  (loading it registers torch.ops.posekit)
except ImportError as error:
    raise ImportError(
        "posekit's compiled ops (posekit._C) are not built or do not load: run `make setup` or "
        f"`pip install --no-build-isolation --no-deps -e .` in the posekit checkout ({error})"
    ) from error

_ops = torch.ops.posekit


def deform_conv2d(input: Tensor, offset: Tensor, weight: Tensor, bias: Optional[Tensor], mask: Optional[Tensor],
                  stride: Tuple[int, int], padding: Tuple[int, int], dilation: Tuple[int, int]) -> Tensor:
    """Validated deformable convolution."""
    return _ops.deform_conv2d(input, offset, weight, bias, mask, stride, padding, dilation)


def roi_align(input: Tensor, rois: Tensor, spatial_scale: float, output_size: Tuple[int, int],
              sampling_ratio: int, aligned: bool) -> Tensor:
    """Validated RoIAlign on Tensor[K, 5] rois."""
    return _ops.roi_align(input, rois, spatial_scale, output_size[0], output_size[1], sampling_ratio, aligned)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Validated NMS."""
    return _ops.nms(boxes, scores, iou_threshold)


def oks_nms(keypoints: Tensor, scores: Tensor, areas: Tensor, sigmas: Tensor, threshold: float) -> Tensor:
    """Validated OKS-NMS."""
    return _ops.oks_nms(keypoints, scores, areas, sigmas, threshold)


@torch.library.register_fake("posekit::deform_conv2d")
def _deform_conv2d_fake(input, offset, weight, bias, mask, stride, padding, dilation):
    return input.new_empty((input.shape[0], weight.shape[0], offset.shape[2], offset.shape[3]))


@torch.library.register_fake("posekit::deform_conv2d_backward")
def _deform_conv2d_backward_fake(grad_output, input, offset, weight, mask, stride, padding, dilation):
    grad_mask = torch.empty_like(mask) if mask is not None else input.new_empty((0,))
    return torch.empty_like(input), torch.empty_like(offset), torch.empty_like(weight), grad_mask


def _deform_conv2d_setup(ctx, inputs, output):
    input, offset, weight, bias, mask, stride, padding, dilation = inputs
    ctx.save_for_backward(input, offset, weight, mask)
    ctx.geometry = (stride, padding, dilation)
    ctx.has_bias = bias is not None


def _deform_conv2d_backward(ctx, grad_output):
    input, offset, weight, mask = ctx.saved_tensors
    grad_input, grad_offset, grad_weight, grad_mask = _ops.deform_conv2d_backward(
        grad_output, input, offset, weight, mask, *ctx.geometry)
    grad_bias = grad_output.sum((0, 2, 3)) if ctx.has_bias else None
    return grad_input, grad_offset, grad_weight, grad_bias, grad_mask if mask is not None else None, None, None, None


torch.library.register_autograd("posekit::deform_conv2d", _deform_conv2d_backward,
                                setup_context=_deform_conv2d_setup)


@torch.library.register_fake("posekit::roi_align")
def _roi_align_fake(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))


@torch.library.register_fake("posekit::roi_align_backward")
def _roi_align_backward_fake(grad_output, rois, spatial_scale, pooled_height, pooled_width, batch_size, channels,
                             height, width, sampling_ratio, aligned):
    return grad_output.new_empty((batch_size, channels, height, width))


def _roi_align_setup(ctx, inputs, output):
    input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned = inputs
    ctx.save_for_backward(rois)
    ctx.pooling = (spatial_scale, pooled_height, pooled_width)
    ctx.input_shape = tuple(input.shape)
    ctx.sampling = (sampling_ratio, aligned)


def _roi_align_backward(ctx, grad_output):
    (rois,) = ctx.saved_tensors
    grad_input = _ops.roi_align_backward(grad_output, rois, *ctx.pooling, *ctx.input_shape, *ctx.sampling)
    return grad_input, None, None, None, None, None, None


torch.library.register_autograd("posekit::roi_align", _roi_align_backward, setup_context=_roi_align_setup)


def _kept_indices_fake(reference: Tensor) -> Tensor:
    # How many survive depends on the data.
    kept = torch.library.get_ctx().new_dynamic_size()
    return reference.new_empty((kept,), dtype=torch.long)


@torch.library.register_fake("posekit::nms")
def _nms_fake(boxes, scores, iou_threshold):
    return _kept_indices_fake(boxes)


@torch.library.register_fake("posekit::oks_nms")
def _oks_nms_fake(keypoints, scores, areas, sigmas, threshold):
    return _kept_indices_fake(keypoints)
