// Registers torch.ops.posekit: schemas, the deformable-convolution entry points of each device (the CUDA
// one an im2col + GEMM driver around cuda/deform_conv.cu), and the CPU / CUDA kernels. Importing
// posekit._C loads this library.
#include <Python.h>

#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "ops.h"

namespace posekit {
namespace {

DeformGeometry make_geometry(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  const int64_t taps = weight.size(2) * weight.size(3);
  return {input.size(1),  input.size(2),  input.size(3),  weight.size(2), weight.size(3),
          stride[0],      stride[1],      padding[0],     padding[1],     dilation[0],
          dilation[1],    offset.size(2), offset.size(3), offset.size(1) / (2 * taps)};
}

at::Tensor add_bias(at::Tensor output, const std::optional<at::Tensor>& bias) {
  return bias.has_value() ? output.add_(bias->view({1, -1, 1, 1})) : output;
}

at::Tensor deform_conv2d_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& mask,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto g = make_geometry(input, offset, weight, stride, padding, dilation);
  return add_bias(cpu::deform_conv2d_forward(input, offset, weight, mask.value_or(at::Tensor()), g), bias);
}

// Gradients for input, offset, weight and mask (an empty tensor without mask); the bias gradient is a
// plain sum that autograd code computes.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
    const std::optional<at::Tensor>& mask, at::IntArrayRef stride, at::IntArrayRef padding,
    at::IntArrayRef dilation) {
  const auto g = make_geometry(input, offset, weight, stride, padding, dilation);
  return cpu::deform_conv2d_backward(grad_output, input, offset, weight, mask.value_or(at::Tensor()), g);
}

#ifdef WITH_CUDA
at::Tensor image_of(const at::Tensor& batch, int64_t b) { return batch.defined() ? batch[b] : at::Tensor(); }

// The weight as (groups, out_channels / groups, in_channels / groups * taps), matching the columns' rows.
at::Tensor weight_matrix(const at::Tensor& weight, const DeformGeometry& g) {
  const int64_t groups = g.channels / weight.size(1);
  return weight.reshape({groups, weight.size(0) / groups, -1});
}

at::Tensor deform_conv2d_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& mask,
                              at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto g = make_geometry(input, offset, weight, stride, padding, dilation);
  const auto in = input.contiguous(), off = offset.contiguous();
  const auto modulation = mask.has_value() ? mask->contiguous() : at::Tensor();
  const auto weights = weight_matrix(weight.contiguous(), g);
  const int64_t groups = weights.size(0);
  auto output = at::empty({input.size(0), weight.size(0), g.out_h, g.out_w}, input.options());
  auto columns = at::empty({g.channels * g.taps(), g.pixels()}, input.options());
  for (int64_t b = 0; b < input.size(0); ++b) {
    cuda::deformable_im2col(in[b], off[b], image_of(modulation, b), g, columns);
    auto out = output[b].view({groups, -1, g.pixels()});
    at::bmm_out(out, weights, columns.view({groups, -1, g.pixels()}));
  }
  return add_bias(output, bias);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
    const std::optional<at::Tensor>& mask, at::IntArrayRef stride, at::IntArrayRef padding,
    at::IntArrayRef dilation) {
  const auto g = make_geometry(input, offset, weight, stride, padding, dilation);
  const auto in = input.contiguous(), off = offset.contiguous(), grad = grad_output.contiguous();
  const auto modulation = mask.has_value() ? mask->contiguous() : at::Tensor();
  const auto weights = weight_matrix(weight.contiguous(), g);
  const int64_t groups = weights.size(0);
  auto grad_input = at::zeros_like(in);
  auto grad_offset = at::zeros_like(off);
  auto grad_mask = mask.has_value() ? at::zeros_like(modulation) : at::empty({0}, input.options());
  auto grad_weight = at::zeros_like(weights);
  auto columns = at::empty({g.channels * g.taps(), g.pixels()}, input.options());
  auto grad_columns = at::empty_like(columns);
  for (int64_t b = 0; b < input.size(0); ++b) {
    const auto grad_b = grad[b].view({groups, -1, g.pixels()});
    auto grad_columns_view = grad_columns.view({groups, -1, g.pixels()});
    at::bmm_out(grad_columns_view, weights.transpose(1, 2), grad_b);
    auto grad_input_b = grad_input[b];
    cuda::deformable_col2im(grad_columns, off[b], image_of(modulation, b), g, grad_input_b);
    auto grad_offset_b = grad_offset[b];
    auto grad_mask_b = image_of(mask.has_value() ? grad_mask : at::Tensor(), b);
    cuda::deformable_coordinate_grad(grad_columns, in[b], off[b], image_of(modulation, b), g, grad_offset_b,
                                     grad_mask_b);
    cuda::deformable_im2col(in[b], off[b], image_of(modulation, b), g, columns);
    grad_weight.baddbmm_(grad_b, columns.view({groups, -1, g.pixels()}).transpose(1, 2));
  }
  return {grad_input, grad_offset, grad_weight.view_as(weight), grad_mask};
}
#endif

}  // namespace

TORCH_LIBRARY(posekit, m) {
  m.def("deform_conv2d(Tensor input, Tensor offset, Tensor weight, Tensor? bias, Tensor? mask, int[2] stride, "
        "int[2] padding, int[2] dilation) -> Tensor");
  m.def("deform_conv2d_backward(Tensor grad_output, Tensor input, Tensor offset, Tensor weight, Tensor? mask, "
        "int[2] stride, int[2] padding, int[2] dilation) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("roi_align(Tensor input, Tensor rois, float spatial_scale, int pooled_height, int pooled_width, "
        "int sampling_ratio, bool aligned) -> Tensor");
  m.def("roi_align_backward(Tensor grad_output, Tensor rois, float spatial_scale, int pooled_height, "
        "int pooled_width, int batch_size, int channels, int height, int width, int sampling_ratio, "
        "bool aligned) -> Tensor");
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
  m.def("oks_nms(Tensor keypoints, Tensor scores, Tensor areas, Tensor sigmas, float threshold) -> Tensor");
}

#define POSEKIT_REGISTER_KERNELS(device_namespace)                     \
  m.impl("deform_conv2d", &deform_conv2d_##device_namespace);          \
  m.impl("deform_conv2d_backward", &deform_conv2d_backward_##device_namespace); \
  m.impl("roi_align", &device_namespace::roi_align);                   \
  m.impl("roi_align_backward", &device_namespace::roi_align_backward); \
  m.impl("nms", &device_namespace::nms);                               \
  m.impl("oks_nms", &device_namespace::oks_nms);

TORCH_LIBRARY_IMPL(posekit, CPU, m) { POSEKIT_REGISTER_KERNELS(cpu) }

#ifdef WITH_CUDA
TORCH_LIBRARY_IMPL(posekit, CUDA, m) { POSEKIT_REGISTER_KERNELS(cuda) }
#endif

}  // namespace posekit

// A Python extension module with no attributes: importing posekit._C is what loads the kernels above.
PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "posekit's compiled ops (torch.ops.posekit)", -1,
                               nullptr};
  return PyModule_Create(&module);
}
