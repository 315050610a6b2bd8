// CPU deformable convolution: a channels-last forward, and for the backward a bilinear im2col, its transpose
// and the offset / mask gradients, which work on blocks of pixels of one tap whose bilinear corners all
// channels of the offset group share.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <vector>

#include "../ops.h"
#include "../sampling.h"

namespace posekit {
namespace cpu {
namespace {

// Pixels per work item: a block's corners, computed once into a small buffer, serve every channel of the
// offset group while they are in cache.
constexpr int64_t kPixelBlock = 256;
// Sampled values per block of the channels-last forward: 128 KiB of float, about an L2 cache's share.
constexpr int64_t kColumnsPerBlock = 32768;

// Corners of pixels [first, first + count) of tap index `tap` (offset group * taps + tap) of one image.
template <typename T>
void fill_corners(const T* offset, const DeformGeometry& g, int64_t tap, int64_t first, int64_t count,
                  DeformCorners<T>* corners) {
  const int64_t k = tap % g.taps();
  const T* dy = offset + 2 * tap * g.pixels();
  const T* dx = dy + g.pixels();
  // Walk (oy, ox) alongside p: integer division per pixel would dominate the cost.
  int64_t oy = first / g.out_w, ox = first % g.out_w;
  for (int64_t p = first; p < first + count; ++p) {
    const T y = T(g.origin_y(k, oy)) + dy[p];
    const T x = T(g.origin_x(k, ox)) + dx[p];
    corners[p - first] = deform_corners<T>(g.height, g.width, y, x);
    if (++ox == g.out_w) {
      ox = 0;
      ++oy;
    }
  }
}

template <typename T>
T modulation(const T* mask, int64_t index) {
  return mask ? mask[index] : T(1);
}

// Tap index (offset group * taps + tap) of channel c's tap k.
int64_t tap_index(const DeformGeometry& g, int64_t c, int64_t k) {
  return (c / (g.channels / g.offset_groups)) * g.taps() + k;
}

template <typename T>
void im2col(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const DeformGeometry& g,
            at::Tensor& columns) {
  const int64_t group_channels = g.channels / g.offset_groups;
  const int64_t blocks = (g.pixels() + kPixelBlock - 1) / kPixelBlock;
  const T* input_data = input.data_ptr<T>();
  const T* mask_data = mask.defined() ? mask.data_ptr<T>() : nullptr;
  T* columns_data = columns.data_ptr<T>();
  at::parallel_for(0, g.offset_groups * g.taps() * blocks, 1, [&](int64_t begin, int64_t end) {
    DeformCorners<T> corners[kPixelBlock];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t tap = item / blocks, k = tap % g.taps(), group = tap / g.taps();
      const int64_t first = (item % blocks) * kPixelBlock, count = std::min(kPixelBlock, g.pixels() - first);
      fill_corners(offset.data_ptr<T>(), g, tap, first, count, corners);
      for (int64_t c = group * group_channels; c < (group + 1) * group_channels; ++c) {
        const T* plane = input_data + c * g.height * g.width;
        T* out = columns_data + (c * g.taps() + k) * g.pixels() + first;
        for (int64_t p = 0; p < count; ++p) {
          out[p] = modulation(mask_data, tap * g.pixels() + first + p) * corners[p].sample(plane);
        }
      }
    }
  });
}

template <typename T>
void col2im(const at::Tensor& grad_columns, const at::Tensor& offset, const at::Tensor& mask,
            const DeformGeometry& g, at::Tensor& grad_input) {
  const T* grad_data = grad_columns.data_ptr<T>();
  const T* mask_data = mask.defined() ? mask.data_ptr<T>() : nullptr;
  T* grad_input_data = grad_input.data_ptr<T>();
  // Tasks own ranges of channels, so their scatters never collide; within a range, a block of corners is
  // read once for all its channels.
  at::parallel_for(0, g.channels, 1, [&](int64_t begin, int64_t end) {
    DeformCorners<T> corners[kPixelBlock];
    for (int64_t tap = tap_index(g, begin, 0); tap <= tap_index(g, end - 1, g.taps() - 1); ++tap) {
      const int64_t k = tap % g.taps(), group_channels = g.channels / g.offset_groups;
      const int64_t group_begin = std::max(begin, (tap / g.taps()) * group_channels);
      const int64_t group_end = std::min(end, (tap / g.taps() + 1) * group_channels);
      for (int64_t first = 0; first < g.pixels(); first += kPixelBlock) {
        const int64_t count = std::min(kPixelBlock, g.pixels() - first);
        fill_corners(offset.data_ptr<T>(), g, tap, first, count, corners);
        for (int64_t c = group_begin; c < group_end; ++c) {
          const T* grad = grad_data + (c * g.taps() + k) * g.pixels() + first;
          T* plane = grad_input_data + c * g.height * g.width;
          for (int64_t p = 0; p < count; ++p) {
            const T scaled = grad[p] * modulation(mask_data, tap * g.pixels() + first + p);
            for (int q = 0; q < 4; ++q) plane[corners[p].index[q]] += corners[p].weight[q] * scaled;
          }
        }
      }
    }
  });
}

template <typename T>
void coordinate_grad(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                     const at::Tensor& mask, const DeformGeometry& g, at::Tensor& grad_offset,
                     at::Tensor& grad_mask) {
  const int64_t group_channels = g.channels / g.offset_groups;
  const T* grad_data = grad_columns.data_ptr<T>();
  const T* input_data = input.data_ptr<T>();
  const T* mask_data = mask.defined() ? mask.data_ptr<T>() : nullptr;
  T* grad_offset_data = grad_offset.data_ptr<T>();
  T* grad_mask_data = mask.defined() ? grad_mask.data_ptr<T>() : nullptr;
  const int64_t blocks = (g.pixels() + kPixelBlock - 1) / kPixelBlock;
  // One (offset group, tap, pixel block) per task, summing over the group's channels.
  at::parallel_for(0, g.offset_groups * g.taps() * blocks, 1, [&](int64_t begin, int64_t end) {
    T sum_y[kPixelBlock], sum_x[kPixelBlock], sum_value[kPixelBlock];
    DeformCorners<T> corners[kPixelBlock];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t tap = item / blocks, k = tap % g.taps(), group = tap / g.taps();
      const int64_t first = (item % blocks) * kPixelBlock, count = std::min(kPixelBlock, g.pixels() - first);
      const int64_t base = tap * g.pixels() + first;
      fill_corners(offset.data_ptr<T>(), g, tap, first, count, corners);
      std::fill_n(sum_y, count, T(0));
      std::fill_n(sum_x, count, T(0));
      std::fill_n(sum_value, count, T(0));
      for (int64_t c = group * group_channels; c < (group + 1) * group_channels; ++c) {
        const T* grad = grad_data + (c * g.taps() + k) * g.pixels() + first;
        const T* plane = input_data + c * g.height * g.width;
        for (int64_t p = 0; p < count; ++p) {
          for (int q = 0; q < 4; ++q) {
            const T value = plane[corners[p].index[q]] * grad[p];
            sum_y[p] += corners[p].d_y[q] * value;
            sum_x[p] += corners[p].d_x[q] * value;
            sum_value[p] += corners[p].weight[q] * value;
          }
        }
      }
      T* grad_dy = grad_offset_data + 2 * tap * g.pixels() + first;
      T* grad_dx = grad_dy + g.pixels();
      for (int64_t p = 0; p < count; ++p) {
        grad_dy[p] = sum_y[p] * modulation(mask_data, base + p);
        grad_dx[p] = sum_x[p] * modulation(mask_data, base + p);
        if (grad_mask_data) grad_mask_data[base + p] = sum_value[p];
      }
    }
  });
}

// Channels [begin, end) of one offset group that also share one weight group: contiguous in a sampled row.
struct ChannelRun {
  int64_t begin, end, weight_group;
};

// The channel runs of each offset group, computed once so that the sampling loop divides nothing.
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

// Rows (groups, taps, group channels) of pixels [first, first + count), sampled from a channels-last image
// (H, W, C): a sample's four bilinear corners are runs of contiguous channels, so one set of corner weights
// serves a vector of channels.
template <typename T>
void sample_rows_channels_last(const T* input, const T* offset, const T* mask, const DeformGeometry& g,
                               const std::vector<std::vector<ChannelRun>>& runs, int64_t weight_group_channels,
                               int64_t first, int64_t count, T* rows) {
  const int64_t channels = g.channels, taps = g.taps(), pixels = g.pixels();
  // Walk (oy, ox) alongside p: integer division per pixel and tap would dominate the cost.
  int64_t oy = first / g.out_w, ox = first % g.out_w;
  for (int64_t p = first; p < first + count; ++p) {
    T* row = rows + (p - first) * channels * taps;
    for (int64_t group = 0; group < g.offset_groups; ++group) {
      for (int64_t i = 0, k = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j, ++k) {
          const int64_t tap = group * taps + k;
          const T y = T(oy * g.stride_h - g.pad_h + i * g.dilation_h) + offset[2 * tap * pixels + p];
          const T x = T(ox * g.stride_w - g.pad_w + j * g.dilation_w) + offset[(2 * tap + 1) * pixels + p];
          const auto corners = deform_corners<T>(g.height, g.width, y, x);
          const T scale = modulation(mask, tap * pixels + p);
          const T w0 = corners.weight[0] * scale, w1 = corners.weight[1] * scale;
          const T w2 = corners.weight[2] * scale, w3 = corners.weight[3] * scale;
          const T* c0 = input + int64_t(corners.index[0]) * channels;
          const T* c1 = input + int64_t(corners.index[1]) * channels;
          const T* c2 = input + int64_t(corners.index[2]) * channels;
          const T* c3 = input + int64_t(corners.index[3]) * channels;
          for (const auto& run : runs[group]) {
            T* out = row + (run.weight_group * taps + k - run.weight_group) * weight_group_channels;
            for (int64_t c = run.begin; c < run.end; ++c) {
              out[c] = w0 * c0[c] + w1 * c1[c] + w2 * c2[c] + w3 * c3[c];
            }
          }
        }
      }
    }
    if (++ox == g.out_w) {
      ox = 0;
      ++oy;
    }
  }
}

}  // namespace

at::Tensor deform_conv2d_forward(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
                                 const at::Tensor& mask, const DeformGeometry& g) {
  const int64_t batch = input.size(0), out_channels = weight.size(0), weight_group_channels = weight.size(1);
  const int64_t groups = g.channels / weight_group_channels, taps = g.taps(), pixels = g.pixels();
  const int64_t group_columns = taps * weight_group_channels, group_out = out_channels / groups;
  const auto in = input.contiguous(at::MemoryFormat::ChannelsLast);
  const auto off = offset.contiguous();
  const auto modulation_mask = mask.defined() ? mask.contiguous() : mask;
  // Weight rows ordered (tap, channel) within each group, as the sampled rows are.
  const auto weights = weight.reshape({groups, group_out, weight_group_channels, taps})
                           .transpose(2, 3)
                           .reshape({groups, group_out, group_columns})
                           .contiguous();
  auto output = at::empty({batch, out_channels, pixels}, input.options());
  // Sampling a block of pixels and multiplying it at once keeps the block's columns in cache: a whole
  // image's columns (taps times the input) would stream through memory twice.
  const int64_t block = std::clamp<int64_t>(kColumnsPerBlock / (g.channels * taps), 16, 1024);
  const int64_t blocks = (pixels + block - 1) / block;
  const auto runs = channel_runs(g, weight_group_channels);
  // Worker threads run at::mm_out, so they need this thread's inference mode and dispatch state.
  const at::ThreadLocalState caller_state;
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv2d_forward", [&] {
    at::parallel_for(0, batch * blocks, 1, [&](int64_t begin, int64_t end) {
      const at::ThreadLocalStateGuard state_guard(caller_state);
      auto rows = at::empty({block, groups * group_columns}, input.options());
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / blocks, first = (item % blocks) * block, count = std::min(block, pixels - first);
        sample_rows_channels_last<scalar_t>(in[b].data_ptr<scalar_t>(), off[b].data_ptr<scalar_t>(),
                                            mask.defined() ? modulation_mask[b].data_ptr<scalar_t>() : nullptr, g,
                                            runs, weight_group_channels, first, count, rows.data_ptr<scalar_t>());
        for (int64_t group = 0; group < groups; ++group) {
          // (group out, count) = weights @ rows^T, written in place into the image's output columns.
          auto out = output[b].narrow(0, group * group_out, group_out).narrow(1, first, count);
          auto columns = rows.narrow(0, 0, count).narrow(1, group * group_columns, group_columns);
          at::mm_out(out, weights[group], columns.t());
        }
      }
    });
  });
  return output.view({batch, out_channels, g.out_h, g.out_w});
}

void deformable_im2col(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                       const DeformGeometry& geometry, at::Tensor& columns) {
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deformable_im2col",
                             [&] { im2col<scalar_t>(input, offset, mask, geometry, columns); });
}

void deformable_col2im(const at::Tensor& grad_columns, const at::Tensor& offset, const at::Tensor& mask,
                       const DeformGeometry& geometry, at::Tensor& grad_input) {
  AT_DISPATCH_FLOATING_TYPES(grad_columns.scalar_type(), "deformable_col2im",
                             [&] { col2im<scalar_t>(grad_columns, offset, mask, geometry, grad_input); });
}

void deformable_coordinate_grad(const at::Tensor& grad_columns, const at::Tensor& input, const at::Tensor& offset,
                                const at::Tensor& mask, const DeformGeometry& geometry, at::Tensor& grad_offset,
                                at::Tensor& grad_mask) {
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deformable_coordinate_grad", [&] {
    coordinate_grad<scalar_t>(grad_columns, input, offset, mask, geometry, grad_offset, grad_mask);
  });
}

}  // namespace cpu
}  // namespace posekit
