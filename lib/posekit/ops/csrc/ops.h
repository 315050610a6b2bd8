// Kernels of posekit's ops: one set per device, registered for torch.ops.posekit in ops.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/macros/Macros.h>

#include <cstdint>
#include <tuple>

namespace posekit {

// Shapes of a deformable convolution, for one image of the batch.
struct DeformGeometry {
  int64_t channels, height, width;
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t out_h, out_w;
  int64_t offset_groups;

  C10_HOST_DEVICE int64_t taps() const { return kernel_h * kernel_w; }
  C10_HOST_DEVICE int64_t pixels() const { return out_h * out_w; }
  // Where tap k of output row oy / column ox samples the input before its offset is added.
  C10_HOST_DEVICE int64_t origin_y(int64_t k, int64_t oy) const {
    return oy * stride_h - pad_h + (k / kernel_w) * dilation_h;
  }
  C10_HOST_DEVICE int64_t origin_x(int64_t k, int64_t ox) const {
    return ox * stride_w - pad_w + (k % kernel_w) * dilation_w;
  }
};

// Kernels every device has.
#define POSEKIT_DECLARE_KERNELS                                                                         \
  at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,            \
                       int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned);       \
  at::Tensor roi_align_backward(const at::Tensor& grad_output, const at::Tensor& rois, double spatial_scale, \
                                int64_t pooled_h, int64_t pooled_w, int64_t batch, int64_t channels,   \
                                int64_t height, int64_t width, int64_t sampling_ratio, bool aligned);   \
  at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);              \
  at::Tensor oks_nms(const at::Tensor& keypoints, const at::Tensor& scores, const at::Tensor& areas,    \
                     const at::Tensor& sigmas, double threshold);

namespace cpu {
POSEKIT_DECLARE_KERNELS
// Deformable convolution, channels-last in cache-sized blocks of pixels (cpu/deform_conv.cpp); mask is
// undefined when absent. The backward returns the input, offset, weight and mask gradients (the last
// empty without a mask).
at::Tensor deform_conv2d_forward(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
                                 const at::Tensor& mask, const DeformGeometry& geometry);
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
    const at::Tensor& mask, const DeformGeometry& geometry);
}  // namespace cpu

#ifdef WITH_CUDA
namespace cuda {
POSEKIT_DECLARE_KERNELS
// The per-image pieces of deformable convolution; the matrix products around them are in ops.cpp.
// input (C, H, W); offset (2 * G * taps, out_h, out_w); mask (G * taps, out_h, out_w) or undefined;
// columns (C * taps, out_h * out_w).
void deformable_im2col(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                       const DeformGeometry& geometry, at::Tensor& columns);
// Adds the input gradient of the sampled columns into grad_input.
void deformable_col2im(const at::Tensor& grad_columns, const at::Tensor& offset, const at::Tensor& mask,
                       const DeformGeometry& geometry, at::Tensor& grad_input);
// Writes the offset gradient, and the mask gradient when mask is defined.
void deformable_coordinate_grad(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                                const at::Tensor& mask, const DeformGeometry& geometry, at::Tensor& grad_offset,
                                at::Tensor& grad_mask);
}  // namespace cuda
#endif

#undef POSEKIT_DECLARE_KERNELS

}  // namespace posekit
