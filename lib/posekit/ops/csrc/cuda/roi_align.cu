// CUDA RoIAlign: one thread per output element; the backward scatters with atomic adds.
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

struct PoolShape {
  int channels, height, width, pooled_h, pooled_w, sampling_ratio;
  bool aligned;
};

// Calls visit(plane offset, pixel index, weight) for the bilinear taps of output element `index`.
template <typename T, typename Index, typename Scalar, typename Visit>
__device__ void for_each_output_tap(Index index, const Scalar* rois, T spatial_scale, const PoolShape& s,
                                    Visit&& visit) {
  const int pw = index % s.pooled_w;
  const int ph = (index / s.pooled_w) % s.pooled_h;
  const int c = (index / s.pooled_w / s.pooled_h) % s.channels;
  const Index r = index / s.pooled_w / s.pooled_h / s.channels;
  const auto grid = make_roi_grid<T>(rois + 5 * r, spatial_scale, s.pooled_h, s.pooled_w, s.sampling_ratio,
                                     s.aligned);
  const int64_t plane = (static_cast<int64_t>(grid.batch_index) * s.channels + c) * s.height * s.width;
  for_each_bin_tap(
      grid, s.width, [&](int iy) { return roi_axis_sample(grid.y(ph, iy), s.height); },
      [&](int ix) { return roi_axis_sample(grid.x(pw, ix), s.width); },
      [&](int pixel, T weight) { visit(plane + pixel, weight); });
}

template <typename Scalar, typename Index>
__global__ void forward_kernel(Index n, const Scalar* input, const Scalar* rois, at::opmath_type<Scalar> scale,
                               PoolShape s, Scalar* output) {
  using acc_t = at::opmath_type<Scalar>;
  POSEKIT_GRID_STRIDE_LOOP_T(index, n, Index) {
    acc_t sum = 0;
    for_each_output_tap<acc_t>(index, rois, scale, s,
                               [&](int64_t pixel, acc_t weight) { sum += weight * static_cast<acc_t>(input[pixel]); });
    output[index] = static_cast<Scalar>(sum);
  }
}

template <typename Scalar, typename Index>
__global__ void backward_kernel(Index n, const Scalar* grad_output, const Scalar* rois,
                               at::opmath_type<Scalar> scale, PoolShape s, Scalar* grad_input) {
  using acc_t = at::opmath_type<Scalar>;
  POSEKIT_GRID_STRIDE_LOOP_T(index, n, Index) {
    const acc_t grad = grad_output[index];
    for_each_output_tap<acc_t>(index, rois, scale, s, [&](int64_t pixel, acc_t weight) {
      gpuAtomicAdd(grad_input + pixel, static_cast<Scalar>(weight * grad));
    });
  }
}

PoolShape pool_shape(int64_t channels, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
                     int64_t sampling_ratio, bool aligned) {
  return {static_cast<int>(channels), static_cast<int>(height), static_cast<int>(width), static_cast<int>(pooled_h),
          static_cast<int>(pooled_w), static_cast<int>(sampling_ratio), aligned};
}

}  // namespace

at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                     int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  const c10::cuda::CUDAGuard guard(input.device());
  const auto in = input.contiguous();
  const auto boxes = rois.contiguous();
  auto output = at::empty({rois.size(0), input.size(1), pooled_h, pooled_w}, input.options());
  const auto shape = pool_shape(input.size(1), input.size(2), input.size(3), pooled_h, pooled_w, sampling_ratio,
                                aligned);
  const int64_t n = output.numel();
  if (n == 0) return output;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "roi_align", [&] {
    with_index_type(n, [&](auto index) {
      forward_kernel<scalar_t, decltype(index)><<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          static_cast<decltype(index)>(n), in.data_ptr<scalar_t>(), boxes.data_ptr<scalar_t>(),
          static_cast<at::opmath_type<scalar_t>>(spatial_scale), shape, output.data_ptr<scalar_t>());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return output;
}

at::Tensor roi_align_backward(const at::Tensor& grad_output, const at::Tensor& rois, double spatial_scale,
                              int64_t pooled_h, int64_t pooled_w, int64_t batch, int64_t channels, int64_t height,
                              int64_t width, int64_t sampling_ratio, bool aligned) {
  const c10::cuda::CUDAGuard guard(grad_output.device());
  const auto grad = grad_output.contiguous();
  const auto boxes = rois.contiguous();
  auto grad_input = at::zeros({batch, channels, height, width}, grad_output.options());
  const auto shape = pool_shape(channels, height, width, pooled_h, pooled_w, sampling_ratio, aligned);
  const int64_t n = grad.numel();
  if (n == 0) return grad_input;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "roi_align_backward", [&] {
    with_index_type(n, [&](auto index) {
      backward_kernel<scalar_t, decltype(index)><<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          static_cast<decltype(index)>(n), grad.data_ptr<scalar_t>(), boxes.data_ptr<scalar_t>(),
          static_cast<at::opmath_type<scalar_t>>(spatial_scale), shape, grad_input.data_ptr<scalar_t>());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

}  // namespace cuda
}  // namespace posekit
