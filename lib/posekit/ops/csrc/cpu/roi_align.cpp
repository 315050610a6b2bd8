// CPU RoIAlign on channels-last copies: forward parallel over boxes, backward over channel blocks.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../ops.h"
#include "../sampling.h"

namespace posekit {
namespace cpu {
namespace {

// The samples of one box along one axis: index bin * grid + i.
template <typename T>
std::vector<AxisSample<T>> axis_samples(const RoiGrid<T>& grid, bool along_y, int bins, int size) {
  const int per_bin = along_y ? grid.grid_h : grid.grid_w;
  std::vector<AxisSample<T>> samples(static_cast<size_t>(bins) * per_bin);
  for (int p = 0; p < bins; ++p) {
    for (int i = 0; i < per_bin; ++i) {
      samples[p * per_bin + i] = roi_axis_sample(along_y ? grid.y(p, i) : grid.x(p, i), size);
    }
  }
  return samples;
}

struct PoolShape {
  int channels, height, width, pooled_h, pooled_w, sampling_ratio;
  bool aligned;
};

// A box's grid and its axis samples, computed once per call.
template <typename T>
struct BoxSamples {
  RoiGrid<T> grid;
  std::vector<AxisSample<T>> ys, xs;

  BoxSamples(const T* roi, T spatial_scale, const PoolShape& s)
      : grid(make_roi_grid<T>(roi, spatial_scale, s.pooled_h, s.pooled_w, s.sampling_ratio, s.aligned)),
        ys(axis_samples(grid, true, s.pooled_h, s.height)),
        xs(axis_samples(grid, false, s.pooled_w, s.width)) {}

  // Calls visit(pixel index within the image, weight) for every tap of bin (ph, pw).
  template <typename Visit>
  void for_each_tap(int ph, int pw, int width, Visit&& visit) const {
    for_each_bin_tap(
        grid, width, [&](int iy) { return ys[ph * grid.grid_h + iy]; },
        [&](int ix) { return xs[pw * grid.grid_w + ix]; }, visit);
  }
};

// Both passes read or write the feature map channels-last, so each tap moves a contiguous run of channels;
// the pooled tensor stays (K, C, pooled_h, pooled_w), gathered or scattered once per bin: converting it
// would copy every pooled value once more.
template <typename T>
void forward(const T* input, const T* rois, int64_t num_rois, T spatial_scale, const PoolShape& s, T* output) {
  const int64_t bins = int64_t(s.pooled_h) * s.pooled_w;
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> pooled(s.channels);
    for (int64_t r = begin; r < end; ++r) {
      const BoxSamples<T> box(rois + 5 * r, spatial_scale, s);
      const T* image = input + static_cast<int64_t>(box.grid.batch_index) * s.height * s.width * s.channels;
      for (int ph = 0; ph < s.pooled_h; ++ph) {
        for (int pw = 0; pw < s.pooled_w; ++pw) {
          std::fill(pooled.begin(), pooled.end(), T(0));
          T* out = pooled.data();
          box.for_each_tap(ph, pw, s.width, [&](int index, T weight) {
            const T* pixel = image + static_cast<int64_t>(index) * s.channels;
            for (int c = 0; c < s.channels; ++c) out[c] += weight * pixel[c];
          });
          T* box_out = output + r * s.channels * bins + ph * s.pooled_w + pw;
          for (int c = 0; c < s.channels; ++c) box_out[c * bins] = out[c];
        }
      }
    }
  });
}

// Channels per backward task: tasks own channel ranges, so their scatters never collide.
constexpr int64_t kChannelBlock = 32;

// grad_output is read through its strides: autograd hands the gradient of a sum over as one expanded value,
// which a contiguous copy would turn into K * C * bins values.
template <typename T>
void backward(const at::Tensor& grad_output, const T* rois, int64_t num_rois, T spatial_scale, const PoolShape& s,
              T* grad_input) {
  std::vector<BoxSamples<T>> boxes;
  boxes.reserve(num_rois);
  for (int64_t r = 0; r < num_rois; ++r) boxes.emplace_back(rois + 5 * r, spatial_scale, s);
  const int64_t blocks = (s.channels + kChannelBlock - 1) / kChannelBlock;
  const T* grad_data = grad_output.data_ptr<T>();
  const int64_t box_step = grad_output.stride(0), channel_step = grad_output.stride(1);
  const int64_t row_step = grad_output.stride(2), column_step = grad_output.stride(3);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    const int first = static_cast<int>(begin * kChannelBlock);
    const int last = static_cast<int>(std::min<int64_t>(end * kChannelBlock, s.channels));
    std::vector<T> bin_grad(last - first);  // one bin's gradient for channels [first, last)
    T* grad = bin_grad.data();
    for (int64_t r = 0; r < num_rois; ++r) {
      T* image = grad_input + static_cast<int64_t>(boxes[r].grid.batch_index) * s.height * s.width * s.channels;
      for (int ph = 0; ph < s.pooled_h; ++ph) {
        for (int pw = 0; pw < s.pooled_w; ++pw) {
          const T* box_grad = grad_data + r * box_step + ph * row_step + pw * column_step;
          for (int c = first; c < last; ++c) grad[c - first] = box_grad[c * channel_step];
          boxes[r].for_each_tap(ph, pw, s.width, [&](int index, T weight) {
            T* pixel = image + static_cast<int64_t>(index) * s.channels + first;
            for (int c = 0; c < last - first; ++c) pixel[c] += weight * grad[c];
          });
        }
      }
    }
  });
}

PoolShape pool_shape(int64_t channels, int64_t height, int64_t width, int64_t pooled_h, int64_t pooled_w,
                     int64_t sampling_ratio, bool aligned) {
  return {static_cast<int>(channels), static_cast<int>(height), static_cast<int>(width), static_cast<int>(pooled_h),
          static_cast<int>(pooled_w), static_cast<int>(sampling_ratio), aligned};
}

// (N, C, H, W) <-> (N, H, W, C) as contiguous tensors.
at::Tensor channels_last(const at::Tensor& t) { return t.permute({0, 2, 3, 1}).contiguous(); }
at::Tensor channels_first(const at::Tensor& t) { return t.permute({0, 3, 1, 2}).contiguous(); }

}  // namespace

at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, double spatial_scale, int64_t pooled_h,
                     int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  const auto in = channels_last(input);
  const auto boxes = rois.contiguous();
  auto output = at::empty({rois.size(0), input.size(1), pooled_h, pooled_w}, input.options());
  const auto shape = pool_shape(input.size(1), input.size(2), input.size(3), pooled_h, pooled_w, sampling_ratio,
                                aligned);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "roi_align", [&] {
    forward<scalar_t>(in.data_ptr<scalar_t>(), boxes.data_ptr<scalar_t>(), rois.size(0),
                      static_cast<scalar_t>(spatial_scale), shape, output.data_ptr<scalar_t>());
  });
  return output;
}

at::Tensor roi_align_backward(const at::Tensor& grad_output, const at::Tensor& rois, double spatial_scale,
                              int64_t pooled_h, int64_t pooled_w, int64_t batch, int64_t channels, int64_t height,
                              int64_t width, int64_t sampling_ratio, bool aligned) {
  const auto boxes = rois.contiguous();
  auto grad_input = at::zeros({batch, height, width, channels}, grad_output.options());
  const auto shape = pool_shape(channels, height, width, pooled_h, pooled_w, sampling_ratio, aligned);
  AT_DISPATCH_FLOATING_TYPES(grad_output.scalar_type(), "roi_align_backward", [&] {
    backward<scalar_t>(grad_output, boxes.data_ptr<scalar_t>(), rois.size(0),
                       static_cast<scalar_t>(spatial_scale), shape, grad_input.data_ptr<scalar_t>());
  });
  return channels_first(grad_input);
}

}  // namespace cpu
}  // namespace posekit
