// CUDA pieces of deformable convolution: bilinear im2col, its transpose, and the offset / mask gradients.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>

#include "../ops.h"
#include "../sampling.h"
#include "launch.cuh"

namespace posekit {
namespace cuda {
namespace {

// Offset, and mask, of one image; the tap index is offset group * taps + tap.
template <typename T>
struct TapInputs {
  const T* offset;
  const T* mask;  // nullptr without modulation
  int64_t pixels;

  __device__ T dy(int64_t tap, int64_t p) const { return offset[2 * tap * pixels + p]; }
  __device__ T dx(int64_t tap, int64_t p) const { return offset[(2 * tap + 1) * pixels + p]; }
  __device__ T modulation(int64_t tap, int64_t p) const { return mask ? mask[tap * pixels + p] : T(1); }

  // Bilinear corners of tap k (offset-table index `tap`) at output pixel p.
  template <typename Acc>
  __device__ DeformCorners<Acc> corners(const DeformGeometry& g, int64_t tap, int64_t k, int64_t p) const {
    const Acc y = Acc(g.origin_y(k, p / g.out_w)) + Acc(dy(tap, p));
    const Acc x = Acc(g.origin_x(k, p % g.out_w)) + Acc(dx(tap, p));
    return deform_corners<Acc>(g.height, g.width, y, x);
  }
};

template <typename T>
TapInputs<T> tap_inputs(const at::Tensor& offset, const at::Tensor& mask, const DeformGeometry& g) {
  return {offset.data_ptr<T>(), mask.defined() ? mask.data_ptr<T>() : nullptr, g.pixels()};
}

// Element (c, k, p) of the columns: its channel, tap, pixel and tap index within the offsets.
struct ColumnElement {
  int64_t c, k, p, tap;

  __device__ ColumnElement(int64_t index, const DeformGeometry& g) {
    p = index % g.pixels();
    k = (index / g.pixels()) % g.taps();
    c = index / (g.pixels() * g.taps());
    tap = (c / (g.channels / g.offset_groups)) * g.taps() + k;
  }
};

template <typename T>
__global__ void im2col_kernel(const T* input, TapInputs<T> taps, DeformGeometry g, T* columns) {
  using acc_t = at::opmath_type<T>;
  POSEKIT_GRID_STRIDE_LOOP(index, g.channels * g.taps() * g.pixels()) {
    const ColumnElement e(index, g);
    const auto corners = taps.template corners<acc_t>(g, e.tap, e.k, e.p);
    const acc_t value = corners.sample(input + e.c * g.height * g.width);
    columns[index] = static_cast<T>(value * static_cast<acc_t>(taps.modulation(e.tap, e.p)));
  }
}

template <typename T>
__global__ void col2im_kernel(const T* grad_columns, TapInputs<T> taps, DeformGeometry g, T* grad_input) {
  using acc_t = at::opmath_type<T>;
  POSEKIT_GRID_STRIDE_LOOP(index, g.channels * g.taps() * g.pixels()) {
    const ColumnElement e(index, g);
    const acc_t scaled = static_cast<acc_t>(grad_columns[index]) * static_cast<acc_t>(taps.modulation(e.tap, e.p));
    const auto corners = taps.template corners<acc_t>(g, e.tap, e.k, e.p);
    T* plane = grad_input + e.c * g.height * g.width;
    for (int q = 0; q < 4; ++q) {
      if (corners.weight[q] != acc_t(0)) gpuAtomicAdd(plane + corners.index[q], static_cast<T>(corners.weight[q] * scaled));
    }
  }
}

// One thread per (offset group, tap, pixel); the sums run over the channels of the group.
template <typename T>
__global__ void coordinate_grad_kernel(const T* grad_columns, const T* input, TapInputs<T> taps, DeformGeometry g,
                                       T* grad_offset, T* grad_mask) {
  using acc_t = at::opmath_type<T>;
  const int64_t group_channels = g.channels / g.offset_groups;
  POSEKIT_GRID_STRIDE_LOOP(index, g.offset_groups * g.taps() * g.pixels()) {
    const int64_t p = index % g.pixels(), tap = index / g.pixels();
    const int64_t k = tap % g.taps(), group = tap / g.taps();
    const auto corners = taps.template corners<acc_t>(g, tap, k, p);
    acc_t sum_y = 0, sum_x = 0, sum_value = 0;
    for (int64_t c = group * group_channels; c < (group + 1) * group_channels; ++c) {
      const acc_t grad = grad_columns[(c * g.taps() + k) * g.pixels() + p];
      const T* plane = input + c * g.height * g.width;
      for (int q = 0; q < 4; ++q) {
        const acc_t value = static_cast<acc_t>(plane[corners.index[q]]) * grad;
        sum_y += corners.d_y[q] * value;
        sum_x += corners.d_x[q] * value;
        sum_value += corners.weight[q] * value;
      }
    }
    const acc_t modulation = taps.modulation(tap, p);
    grad_offset[2 * tap * g.pixels() + p] = static_cast<T>(sum_y * modulation);
    grad_offset[(2 * tap + 1) * g.pixels() + p] = static_cast<T>(sum_x * modulation);
    if (grad_mask) grad_mask[index] = static_cast<T>(sum_value);
  }
}

}  // namespace

void deformable_im2col(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                       const DeformGeometry& geometry, at::Tensor& columns) {
  const c10::cuda::CUDAGuard guard(input.device());
  const int64_t n = geometry.channels * geometry.taps() * geometry.pixels();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "deformable_im2col", [&] {
    im2col_kernel<scalar_t><<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        input.data_ptr<scalar_t>(), tap_inputs<scalar_t>(offset, mask, geometry), geometry,
        columns.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void deformable_col2im(const at::Tensor& grad_columns, const at::Tensor& offset, const at::Tensor& mask,
                       const DeformGeometry& geometry, at::Tensor& grad_input) {
  const c10::cuda::CUDAGuard guard(grad_columns.device());
  const int64_t n = geometry.channels * geometry.taps() * geometry.pixels();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_columns.scalar_type(), "deformable_col2im", [&] {
    col2im_kernel<scalar_t><<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        grad_columns.data_ptr<scalar_t>(), tap_inputs<scalar_t>(offset, mask, geometry), geometry,
        grad_input.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

void deformable_coordinate_grad(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                                const at::Tensor& mask, const DeformGeometry& geometry, at::Tensor& grad_offset,
                                at::Tensor& grad_mask) {
  const c10::cuda::CUDAGuard guard(input.device());
  const int64_t n = geometry.offset_groups * geometry.taps() * geometry.pixels();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "deformable_coordinate_grad", [&] {
    coordinate_grad_kernel<scalar_t><<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        grad_columns.data_ptr<scalar_t>(), input.data_ptr<scalar_t>(), tap_inputs<scalar_t>(offset, mask, geometry),
        geometry, grad_offset.data_ptr<scalar_t>(), mask.defined() ? grad_mask.data_ptr<scalar_t>() : nullptr);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace cuda
}  // namespace posekit
