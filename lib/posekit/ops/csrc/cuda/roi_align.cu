// CUDA RoIAlign: one thread per output element; the backward scatters with atomic adds.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/cuda/detail/IntegerDivider.cuh>

#include <algorithm>
#include <type_traits>

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

// Output element `index` of the (K, C, pooled_h, pooled_w) result as box, channel, row and column.
template <typename Index>
struct OutputBin {
  Index box;
  int channel, row, column;
};

// Splits output indices with ATen's multiply-shift dividers where Index is 32-bit: a division by a runtime
// value costs about 20 instructions otherwise, and there are three per output element.
template <typename Index>
struct OutputSplitter {
  using Word = std::conditional_t<sizeof(Index) == sizeof(int), unsigned int, uint64_t>;
  at::cuda::detail::IntDivider<Word> columns, rows, channels;

  explicit OutputSplitter(const PoolShape& s) : columns(s.pooled_w), rows(s.pooled_h), channels(s.channels) {}

  __device__ OutputBin<Index> operator()(Index index) const {
    const auto column = columns.divmod(static_cast<Word>(index));
    const auto row = rows.divmod(column.div);
    const auto channel = channels.divmod(row.div);
    return {static_cast<Index>(channel.div), static_cast<int>(channel.mod), static_cast<int>(row.mod),
            static_cast<int>(column.mod)};
  }
};

// Calls visit(element offset in the (N, C, H, W) map, weight) for the bilinear taps of output element `index`.
// Offsets are Index-typed, so 32-bit wherever the map allows: one add per tap before the address.
template <typename T, typename Index, typename Scalar, typename Visit>
__device__ void for_each_output_tap(Index index, const OutputSplitter<Index>& split, const Scalar* rois,
                                    T spatial_scale, const PoolShape& s, Visit&& visit) {
  const OutputBin<Index> bin = split(index);
  const auto grid = make_roi_grid<T>(rois + 5 * bin.box, spatial_scale, s.pooled_h, s.pooled_w, s.sampling_ratio,
                                     s.aligned);
  const Index plane = (static_cast<Index>(grid.batch_index) * s.channels + bin.channel) * s.height * s.width;
  for_each_bin_tap(
      grid, s.width, [&](int iy) { return roi_axis_sample(grid.y(bin.row, iy), s.height); },
      [&](int ix) { return roi_axis_sample(grid.x(bin.column, ix), s.width); },
      [&](int pixel, T weight) { visit(plane + pixel, weight); });
}

template <typename Scalar, typename Index>
__global__ void forward_kernel(Index n, OutputSplitter<Index> split, const Scalar* __restrict__ input,
                               const Scalar* rois, at::opmath_type<Scalar> scale, PoolShape s,
                               Scalar* __restrict__ output) {
  using acc_t = at::opmath_type<Scalar>;
  POSEKIT_GRID_STRIDE_LOOP_T(index, n, Index) {
    acc_t sum = 0;
    for_each_output_tap<acc_t>(index, split, rois, scale, s,
                               [&](Index tap, acc_t weight) { sum += weight * static_cast<acc_t>(input[tap]); });
    output[index] = static_cast<Scalar>(sum);
  }
}

template <typename Scalar, typename Index>
__global__ void backward_kernel(Index n, OutputSplitter<Index> split, const Scalar* grad_output, const Scalar* rois,
                                at::opmath_type<Scalar> scale, PoolShape s, Scalar* grad_input) {
  using acc_t = at::opmath_type<Scalar>;
  POSEKIT_GRID_STRIDE_LOOP_T(index, n, Index) {
    const acc_t grad = grad_output[index];
    for_each_output_tap<acc_t>(index, split, rois, scale, s, [&](Index tap, acc_t weight) {
      gpuAtomicAdd(grad_input + tap, static_cast<Scalar>(weight * grad));
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
    with_index_type(std::max(n, in.numel()), [&](auto index) {
      using Index = decltype(index);
      forward_kernel<scalar_t, Index><<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          static_cast<Index>(n), OutputSplitter<Index>(shape), in.data_ptr<scalar_t>(), boxes.data_ptr<scalar_t>(),
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
    with_index_type(std::max(n, grad_input.numel()), [&](auto index) {
      using Index = decltype(index);
      backward_kernel<scalar_t, Index><<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          static_cast<Index>(n), OutputSplitter<Index>(shape), grad.data_ptr<scalar_t>(), boxes.data_ptr<scalar_t>(),
          static_cast<at::opmath_type<scalar_t>>(spatial_scale), shape, grad_input.data_ptr<scalar_t>());
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

}  // namespace cuda
}  // namespace posekit
