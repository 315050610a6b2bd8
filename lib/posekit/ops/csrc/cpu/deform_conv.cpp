// CPU deformable convolution, channels-last: a sample's four bilinear corners are runs of contiguous
// channels, so one set of corner weights serves a vector of channels. Work goes in cache-sized blocks of
// pixels: sample the block's rows (groups, taps, group channels), then multiply them at once.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include "../ops.h"
#include "../sampling.h"

namespace posekit {
namespace cpu {
namespace {

// Sampled values per block of pixels: 128 KiB of float, about an L2 cache's share.
constexpr int64_t kColumnsPerBlock = 32768;

// Channels [begin, end) of one offset group that also share one weight group: contiguous in a sampled row.
struct ChannelRun {
  int64_t begin, end, weight_group;
};

// The channel runs of each offset group, computed once so that the sampling loops divide nothing.
std::vector<std::vector<ChannelRun>> channel_runs(const DeformGeometry& g, int64_t weight_group_channels) {
  const int64_t offset_group_channels = g.channels / g.offset_groups;
  std::vector<std::vector<ChannelRun>> runs(g.offset_groups);
  for (int64_t group = 0; group < g.offset_groups; ++group) {
    const int64_t group_end = (group + 1) * offset_group_channels;
    for (int64_t c = group * offset_group_channels; c < group_end;) {
      const int64_t weight_group = c / weight_group_channels;
      const int64_t end = std::min(group_end, (weight_group + 1) * weight_group_channels);
      runs[group].push_back({c, end, weight_group});
      c = end;
    }
  }
  return runs;
}

// How one image's tensors and a block's buffers are laid out.
struct Layout {
  const DeformGeometry& g;
  std::vector<std::vector<ChannelRun>> runs;
  int64_t weight_group_channels;

  // Where a row holds channel c (of `run`) of tap k: index row_offset(run, k) + c.
  int64_t row_offset(const ChannelRun& run, int64_t k) const {
    return (run.weight_group * g.taps() + k - run.weight_group) * weight_group_channels;
  }
  int64_t row_size() const { return g.channels * g.taps(); }
};

template <typename T>
T modulation(const T* mask, int64_t index) {
  return mask ? mask[index] : T(1);
}

// Calls visit(row index, offset group, tap k, tap index, corners, mask value) for every sample of pixels
// [first, first + count), walking (oy, ox) alongside p: integer division per sample would dominate the cost.
template <typename T, typename Visit>
void for_each_sample(const DeformGeometry& g, const T* offset, const T* mask, int64_t first, int64_t count,
                     Visit&& visit) {
  const int64_t taps = g.taps(), pixels = g.pixels();
  int64_t oy = first / g.out_w, ox = first % g.out_w;
  for (int64_t p = first; p < first + count; ++p) {
    for (int64_t group = 0; group < g.offset_groups; ++group) {
      for (int64_t i = 0, k = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j, ++k) {
          const int64_t tap = group * taps + k;
          const T y = T(oy * g.stride_h - g.pad_h + i * g.dilation_h) + offset[2 * tap * pixels + p];
          const T x = T(ox * g.stride_w - g.pad_w + j * g.dilation_w) + offset[(2 * tap + 1) * pixels + p];
          visit(p - first, group, k, tap, deform_corners<T>(g.height, g.width, y, x),
                modulation(mask, tap * pixels + p));
        }
      }
    }
    if (++ox == g.out_w) {
      ox = 0;
      ++oy;
    }
  }
}

// The four bilinear corners of one tap for a run of pixels, as arrays: computing them is then a loop without
// calls or branches, which the compiler vectorizes. Corner q of pixel r is input pixel index[q][r] with
// weight weight[q][r] (mask included); a corner outside the image has index 0 and weight 0.
template <typename T>
struct TapCorners {
  std::vector<int32_t> index[4];
  std::vector<T> weight[4];

  explicit TapCorners(int64_t count) {
    for (int q = 0; q < 4; ++q) {
      index[q].resize(count);
      weight[q].resize(count);
    }
  }
};

// 1 when n >= 0, else 0, from n's sign bit: integer comparisons would mix mask widths in the vectorized loop.
inline int32_t non_negative(int32_t n) { return int32_t(~uint32_t(n) >> 31); }

// The rules of deform_corners (sampling.h), restated for vectorization (no branch, no short-circuit): the
// floor is the truncation corrected downwards, and a sample outside (-1, size) on either axis is moved to 0
// and weighted 0. The mask, when given, multiplies the weights in a second pass. kExactInT: pixel indices
// are computed in T, exact while the image has at most 2^digits(T) pixels.
template <typename T, bool kExactInT>
void tap_corners(int32_t height, int32_t width, const T* __restrict__ base_y, const T* __restrict__ base_x, T tap_y,
                 T tap_x, const T* __restrict__ offset_y, const T* __restrict__ offset_x, const T* __restrict__ mask,
                 int64_t count, TapCorners<T>& corners) {
  int32_t* __restrict__ i0 = corners.index[0].data();
  int32_t* __restrict__ i1 = corners.index[1].data();
  int32_t* __restrict__ i2 = corners.index[2].data();
  int32_t* __restrict__ i3 = corners.index[3].data();
  T* __restrict__ w0 = corners.weight[0].data();
  T* __restrict__ w1 = corners.weight[1].data();
  T* __restrict__ w2 = corners.weight[2].data();
  T* __restrict__ w3 = corners.weight[3].data();
  // The arrays never overlap; GCC would otherwise give up on the run-time overlap checks it needs.
#pragma GCC ivdep
  for (int64_t r = 0; r < count; ++r) {
    const T sample_y = base_y[r] + tap_y + offset_y[r];
    const T sample_x = base_x[r] + tap_x + offset_x[r];
    // Flags are 0 or 1 in int32_t and indices are masked with -flag: bool selects stop GCC's vectorizer.
    const int32_t inside = int32_t(sample_y > T(-1)) & int32_t(sample_y < T(height)) & int32_t(sample_x > T(-1)) &
                           int32_t(sample_x < T(width));
    const T y = inside ? sample_y : T(0), x = inside ? sample_x : T(0);
    const int32_t y_trunc = int32_t(y), x_trunc = int32_t(x);
    const int32_t y0 = y_trunc - int32_t(T(y_trunc) > y), x0 = x_trunc - int32_t(T(x_trunc) > x);
    const T ly = y - T(y0), lx = x - T(x0);
    const T hy = T(1) - ly, hx = T(1) - lx;
    const int32_t top = inside & non_negative(y0), bottom = inside & non_negative(height - 2 - y0);
    const int32_t left = non_negative(x0), right = non_negative(width - 2 - x0);
    // SSE2 has no 32-bit integer multiply: the product in T vectorizes.
    const int32_t corner = kExactInT ? int32_t(T(y0) * T(width) + T(x0)) : y0 * width + x0;
    i0[r] = corner & -(top & left);
    i1[r] = (corner + 1) & -(top & right);
    i2[r] = (corner + width) & -(bottom & left);
    i3[r] = (corner + width + 1) & -(bottom & right);
    w0[r] = (top & left) ? hy * hx : T(0);
    w1[r] = (top & right) ? hy * lx : T(0);
    w2[r] = (bottom & left) ? ly * hx : T(0);
    w3[r] = (bottom & right) ? ly * lx : T(0);
  }
  if (mask) {
    for (int64_t r = 0; r < count; ++r) {
      w0[r] *= mask[r];
      w1[r] *= mask[r];
      w2[r] *= mask[r];
      w3[r] *= mask[r];
    }
  }
}

// Rows of pixels [first, first + count): the modulated bilinear samples of a channels-last image (H, W, C),
// one tap at a time: the tap's corners for all the pixels, then their channels into the rows.
template <typename T>
void sample_rows(const T* input, const T* offset, const T* mask, const Layout& layout, int64_t first, int64_t count,
                 T* rows) {
  const DeformGeometry& g = layout.g;
  const int64_t channels = g.channels, pixels = g.pixels();
  std::vector<T> base_y(count), base_x(count);
  for (int64_t r = 0, oy = first / g.out_w, ox = first % g.out_w; r < count; ++r) {
    base_y[r] = T(oy * g.stride_h - g.pad_h);
    base_x[r] = T(ox * g.stride_w - g.pad_w);
    if (++ox == g.out_w) {
      ox = 0;
      ++oy;
    }
  }
  TapCorners<T> corners(count);
  const bool exact_in_t = g.height * g.width <= (int64_t(1) << std::numeric_limits<T>::digits);
  const auto corners_of_tap = exact_in_t ? tap_corners<T, true> : tap_corners<T, false>;
  for (int64_t group = 0; group < g.offset_groups; ++group) {
    for (int64_t k = 0; k < g.taps(); ++k) {
      const int64_t tap = group * g.taps() + k;
      corners_of_tap(int32_t(g.height), int32_t(g.width), base_y.data(), base_x.data(),
                     T((k / g.kernel_w) * g.dilation_h), T((k % g.kernel_w) * g.dilation_w),
                     offset + 2 * tap * pixels + first, offset + (2 * tap + 1) * pixels + first,
                     mask ? mask + tap * pixels + first : nullptr, count, corners);
      for (int64_t r = 0; r < count; ++r) {
        const T w0 = corners.weight[0][r], w1 = corners.weight[1][r];
        const T w2 = corners.weight[2][r], w3 = corners.weight[3][r];
        const T* c0 = input + int64_t(corners.index[0][r]) * channels;
        const T* c1 = input + int64_t(corners.index[1][r]) * channels;
        const T* c2 = input + int64_t(corners.index[2][r]) * channels;
        const T* c3 = input + int64_t(corners.index[3][r]) * channels;
        for (const auto& run : layout.runs[group]) {
          T* out = rows + r * layout.row_size() + layout.row_offset(run, k);
          for (int64_t c = run.begin; c < run.end; ++c) out[c] = w0 * c0[c] + w1 * c1[c] + w2 * c2[c] + w3 * c3[c];
        }
      }
    }
  }
}

// From the gradient of a block's rows: adds the input gradient into grad_input (H, W, C) and writes the
// offset gradient and, with a mask, the mask gradient of pixels [first, first + count).
template <typename T>
void scatter_row_grads(const T* input, const T* offset, const T* mask, const Layout& layout, int64_t first,
                       int64_t count, const T* grad_rows, T* grad_input, T* grad_offset, T* grad_mask) {
  const int64_t channels = layout.g.channels, pixels = layout.g.pixels();
  for_each_sample<T>(layout.g, offset, mask, first, count,
                     [&](int64_t row, int64_t group, int64_t k, int64_t tap, const DeformCorners<T>& corners,
                         T scale) {
    const int64_t index[4] = {int64_t(corners.index[0]) * channels, int64_t(corners.index[1]) * channels,
                              int64_t(corners.index[2]) * channels, int64_t(corners.index[3]) * channels};
    // corner_grad[q]: the row gradient dotted with corner q's channels; the coordinate and mask gradients
    // are their weighted sums.
    T corner_grad[4] = {0, 0, 0, 0};
    for (const auto& run : layout.runs[group]) {
      const T* grad = grad_rows + row * layout.row_size() + layout.row_offset(run, k);
      for (int q = 0; q < 4; ++q) {
        const T* corner = input + index[q];
        T* corner_grad_input = grad_input + index[q];
        const T weight = corners.weight[q] * scale;
        // Corners outside the image have index 0 and weight 0: adding zero there is harmless.
        for (int64_t c = run.begin; c < run.end; ++c) {
          corner_grad[q] += corner[c] * grad[c];
          corner_grad_input[c] += weight * grad[c];
        }
      }
    }
    T sum_y = 0, sum_x = 0, sum_value = 0;
    for (int q = 0; q < 4; ++q) {
      sum_y += corners.d_y[q] * corner_grad[q];
      sum_x += corners.d_x[q] * corner_grad[q];
      sum_value += corners.weight[q] * corner_grad[q];
    }
    const int64_t p = first + row;
    grad_offset[2 * tap * pixels + p] = sum_y * scale;
    grad_offset[(2 * tap + 1) * pixels + p] = sum_x * scale;
    if (grad_mask) grad_mask[tap * pixels + p] = sum_value;
  });
}

// The weight as (groups, out / groups, taps * group channels), its rows ordered (tap, channel) as a row is.
at::Tensor weight_rows(const at::Tensor& weight, int64_t groups, int64_t taps) {
  return weight.reshape({groups, weight.size(0) / groups, weight.size(1), taps})
      .transpose(2, 3)
      .reshape({groups, weight.size(0) / groups, -1})
      .contiguous();
}

// What the forward and the backward share: the tensors in the layouts the loops read, and the blocks of
// pixels they work in.
struct BlockedConv {
  Layout layout;
  int64_t groups, group_out, group_columns, block, blocks;
  at::Tensor input, offset, mask, weights;  // channels-last input; mask undefined when absent

  BlockedConv(const at::Tensor& input_, const at::Tensor& offset_, const at::Tensor& weight, const at::Tensor& mask_,
              const DeformGeometry& g)
      : layout{g, channel_runs(g, weight.size(1)), weight.size(1)},
        groups(g.channels / weight.size(1)),
        group_out(weight.size(0) / groups),
        group_columns(layout.row_size() / groups),
        block(std::clamp<int64_t>(kColumnsPerBlock / layout.row_size(), 16, 1024)),
        blocks((g.pixels() + block - 1) / block),
        input(input_.contiguous(at::MemoryFormat::ChannelsLast)),
        offset(offset_.contiguous()),
        mask(mask_.defined() ? mask_.contiguous() : mask_),
        weights(weight_rows(weight, groups, g.taps())) {}

  // Calls visit(thread, image, first pixel, pixel count) for every block, on worker threads that keep the
  // caller's inference mode and dispatch state (visit runs ATen ops).
  template <typename Visit>
  void for_each_block(Visit&& visit) const {
    const at::ThreadLocalState caller_state;
    at::parallel_for(0, input.size(0) * blocks, 1, [&](int64_t begin, int64_t end) {
      const at::ThreadLocalStateGuard state_guard(caller_state);
      for (int64_t item = begin; item < end; ++item) {
        const int64_t first = (item % blocks) * block;
        visit(int64_t(at::get_thread_num()), item / blocks, first, std::min(block, layout.g.pixels() - first));
      }
    });
  }

  // A buffer for the rows of one block.
  at::Tensor new_rows() const { return at::empty({block, layout.row_size()}, input.options()); }
  // Group `group`'s columns of the first `count` rows.
  at::Tensor columns(const at::Tensor& rows, int64_t count, int64_t group) const {
    return rows.narrow(0, 0, count).narrow(1, group * group_columns, group_columns);
  }

  // Samples image b's rows of pixels [first, first + count) into `rows`.
  template <typename T>
  void sample(int64_t b, int64_t first, int64_t count, at::Tensor& rows) const {
    sample_rows<T>(input[b].data_ptr<T>(), offset[b].data_ptr<T>(), mask_data<T>(b), layout, first, count,
                   rows.data_ptr<T>());
  }
  template <typename T>
  const T* mask_data(int64_t b) const {
    return mask.defined() ? mask[b].data_ptr<T>() : nullptr;
  }
};

}  // namespace

at::Tensor deform_conv2d_forward(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
                                 const at::Tensor& mask, const DeformGeometry& g) {
  const BlockedConv conv(input, offset, weight, mask, g);
  auto output = at::empty({input.size(0), weight.size(0), g.pixels()}, input.options());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv2d_forward", [&] {
    conv.for_each_block([&](int64_t, int64_t b, int64_t first, int64_t count) {
      auto rows = conv.new_rows();
      conv.sample<scalar_t>(b, first, count, rows);
      for (int64_t group = 0; group < conv.groups; ++group) {
        // (group out, count) = weights @ rows^T, written in place into the image's output columns.
        auto out = output[b].narrow(0, group * conv.group_out, conv.group_out).narrow(1, first, count);
        at::mm_out(out, conv.weights[group], conv.columns(rows, count, group).t());
      }
    });
  });
  return output.view({input.size(0), weight.size(0), g.out_h, g.out_w});
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
    const at::Tensor& mask, const DeformGeometry& g) {
  const BlockedConv conv(input, offset, weight, mask, g);
  const int64_t batch = input.size(0);
  const auto grad = grad_output.contiguous().view({batch, weight.size(0), g.pixels()});
  // Blocks of different threads scatter into the same input pixels: each thread sums into its own copy.
  const int64_t threads = at::get_num_threads();
  auto grad_input = at::zeros({threads, batch, g.height * g.width * g.channels}, input.options());
  auto grad_weights = at::zeros({threads, conv.groups, conv.group_out, conv.group_columns}, input.options());
  auto grad_offset = at::zeros_like(conv.offset);
  auto grad_mask = mask.defined() ? at::zeros_like(conv.mask) : at::empty({0}, input.options());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv2d_backward", [&] {
    conv.for_each_block([&](int64_t thread, int64_t b, int64_t first, int64_t count) {
      auto rows = conv.new_rows(), grad_rows = conv.new_rows();
      conv.sample<scalar_t>(b, first, count, rows);
      for (int64_t group = 0; group < conv.groups; ++group) {
        const auto grad_block = grad[b].narrow(0, group * conv.group_out, conv.group_out).narrow(1, first, count);
        auto grad_columns = conv.columns(grad_rows, count, group);
        at::mm_out(grad_columns, grad_block.t(), conv.weights[group]);
        grad_weights[thread][group].addmm_(grad_block, conv.columns(rows, count, group));
      }
      scatter_row_grads<scalar_t>(conv.input[b].data_ptr<scalar_t>(), conv.offset[b].data_ptr<scalar_t>(),
                                  conv.mask_data<scalar_t>(b), conv.layout, first, count,
                                  grad_rows.data_ptr<scalar_t>(), grad_input[thread][b].data_ptr<scalar_t>(),
                                  grad_offset[b].data_ptr<scalar_t>(),
                                  mask.defined() ? grad_mask[b].data_ptr<scalar_t>() : nullptr);
    });
  });
  const auto grad_input_nchw =
      grad_input.sum(0).view({batch, g.height, g.width, g.channels}).permute({0, 3, 1, 2}).contiguous();
  const auto grad_weight = grad_weights.sum(0)
                               .view({conv.groups, conv.group_out, g.taps(), weight.size(1)})
                               .transpose(2, 3)
                               .reshape(weight.sizes());
  return {grad_input_nchw, grad_offset, grad_weight, grad_mask};
}

}  // namespace cpu
}  // namespace posekit
