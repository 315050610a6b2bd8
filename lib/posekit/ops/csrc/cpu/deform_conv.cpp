// CPU pieces of deformable convolution: bilinear im2col, its transpose, and the offset / mask gradients.
// They work on blocks of pixels of one tap, whose bilinear corners all channels of the offset group share.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "../ops.h"
#include "../sampling.h"

namespace posekit {
namespace cpu {
namespace {

// Pixels per work item: a block's corners, computed once into a small buffer, serve every channel of the
// offset group while they are in cache.
constexpr int64_t kPixelBlock = 256;

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

}  // namespace

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
