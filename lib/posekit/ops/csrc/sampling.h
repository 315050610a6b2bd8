// Bilinear sampling rules shared by the CPU and CUDA kernels (host and device code).
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>

namespace posekit {

// The four bilinear neighbours of a deformable-convolution sample; neighbours outside the image, and all
// four when y <= -1, y >= height, x <= -1 or x >= width, have weight zero (and index 0, a safe read).
template <typename T>
struct DeformCorners {
  int index[4];
  T weight[4];
  T d_y[4], d_x[4];  // derivatives of the weights along y and x

  template <typename Scalar>
  C10_HOST_DEVICE T sample(const Scalar* plane) const {
    return weight[0] * T(plane[index[0]]) + weight[1] * T(plane[index[1]]) + weight[2] * T(plane[index[2]]) +
           weight[3] * T(plane[index[3]]);
  }
};

template <typename T>
C10_HOST_DEVICE inline DeformCorners<T> deform_corners(int height, int width, T y, T x) {
  DeformCorners<T> c{};
  if (!(y > T(-1) && y < T(height) && x > T(-1) && x < T(width))) return c;
  // A true floor: truncating y + 1 instead rounds y = height - 1e-6 (float32) up to height, which would
  // read the first pixel of the next row with full weight.
  const int y0 = static_cast<int>(floor(y));
  const int x0 = static_cast<int>(floor(x));
  const T ly = y - T(y0), lx = x - T(x0);
  const T hy = T(1) - ly, hx = T(1) - lx;
  // Branch-free: a corner outside the image keeps index 0 and zero weights.
  const bool top = y0 >= 0, bottom = y0 + 1 <= height - 1;
  const bool left = x0 >= 0, right = x0 + 1 <= width - 1;
  const bool inside[4] = {top && left, top && right, bottom && left, bottom && right};
  const int index[4] = {y0 * width + x0, y0 * width + x0 + 1, (y0 + 1) * width + x0, (y0 + 1) * width + x0 + 1};
  const T weight[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
  const T d_y[4] = {-hx, -lx, hx, lx};
  const T d_x[4] = {-hy, hy, -ly, ly};
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    c.index[q] = inside[q] ? index[q] : 0;
    c.weight[q] = inside[q] ? weight[q] : T(0);
    c.d_y[q] = inside[q] ? d_y[q] : T(0);
    c.d_x[q] = inside[q] ? d_x[q] : T(0);
  }
  return c;
}

// One axis of a RoIAlign sample: the two neighbouring pixels, their weights, and whether it counts.
template <typename T>
struct AxisSample {
  int low, high;
  T low_weight, high_weight;
  bool valid;
};

// RoIAlign's rules: a sample beyond one pixel outside the map is zero; otherwise it is clamped into it.
template <typename T>
C10_HOST_DEVICE inline AxisSample<T> roi_axis_sample(T coordinate, int size) {
  if (coordinate < T(-1) || coordinate > T(size)) return {0, 0, T(0), T(0), false};
  if (coordinate <= T(0)) coordinate = T(0);
  int low = static_cast<int>(coordinate);
  int high = low + 1;
  if (low >= size - 1) {
    low = high = size - 1;
    coordinate = T(low);
  }
  const T frac = coordinate - T(low);
  return {low, high, T(1) - frac, frac, true};
}

// Where one box's bins and samples lie, in feature-map pixels.
template <typename T>
struct RoiGrid {
  int batch_index;
  T start_y, start_x, bin_h, bin_w;
  int grid_h, grid_w;
  // Sample spacing (bin / samples per bin) and 1 / samples averaged per bin: multiplies, not divisions, per
  // sample and per tap (coordinates differ from dividing each time by rounding only).
  T step_y, step_x, inverse_count;

  // Coordinate of sample i of bin p along y (or x).
  C10_HOST_DEVICE T y(int p, int i) const { return start_y + p * bin_h + (i + T(0.5)) * step_y; }
  C10_HOST_DEVICE T x(int p, int i) const { return start_x + p * bin_w + (i + T(0.5)) * step_x; }
};

// roi is (batch index, x1, y1, x2, y2) in image coordinates.
template <typename T, typename Scalar>
C10_HOST_DEVICE inline RoiGrid<T> make_roi_grid(const Scalar* roi, T spatial_scale, int pooled_h, int pooled_w,
                                                int sampling_ratio, bool aligned) {
  const T shift = aligned ? T(0.5) : T(0);
  RoiGrid<T> grid;
  grid.batch_index = static_cast<int>(roi[0]);
  grid.start_x = static_cast<T>(roi[1]) * spatial_scale - shift;
  grid.start_y = static_cast<T>(roi[2]) * spatial_scale - shift;
  T roi_w = static_cast<T>(roi[3]) * spatial_scale - shift - grid.start_x;
  T roi_h = static_cast<T>(roi[4]) * spatial_scale - shift - grid.start_y;
  if (!aligned) {
    // Legacy mode: boxes are at least one pixel in size.
    roi_w = roi_w > T(1) ? roi_w : T(1);
    roi_h = roi_h > T(1) ? roi_h : T(1);
  }
  grid.bin_h = roi_h / T(pooled_h);
  grid.bin_w = roi_w / T(pooled_w);
  grid.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(::ceil(roi_h / T(pooled_h)));
  grid.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(::ceil(roi_w / T(pooled_w)));
  // Inverted boxes in aligned mode have no samples and pool to zero.
  grid.grid_h = grid.grid_h > 0 ? grid.grid_h : 0;
  grid.grid_w = grid.grid_w > 0 ? grid.grid_w : 0;
  grid.step_y = grid.bin_h / T(grid.grid_h > 0 ? grid.grid_h : 1);
  grid.step_x = grid.bin_w / T(grid.grid_w > 0 ? grid.grid_w : 1);
  const int count = grid.grid_h * grid.grid_w;
  grid.inverse_count = T(1) / T(count > 0 ? count : 1);
  return grid;
}

// Calls visit(pixel index, weight) for the four bilinear taps of every sample of one bin of a box;
// y_sample(i) and x_sample(i) give the bin's i-th AxisSample along each axis.
template <typename T, typename YSample, typename XSample, typename Visit>
C10_HOST_DEVICE inline void for_each_bin_tap(const RoiGrid<T>& grid, int width, YSample&& y_sample,
                                             XSample&& x_sample, Visit&& visit) {
  for (int iy = 0; iy < grid.grid_h; ++iy) {
    const AxisSample<T> sy = y_sample(iy);
    if (!sy.valid) continue;
    const int top = sy.low * width, bottom = sy.high * width;
    // The 1 / count average rides on the row weights: one multiply per tap instead of two.
    const T top_weight = sy.low_weight * grid.inverse_count, bottom_weight = sy.high_weight * grid.inverse_count;
    for (int ix = 0; ix < grid.grid_w; ++ix) {
      const AxisSample<T> sx = x_sample(ix);
      if (!sx.valid) continue;
      visit(top + sx.low, top_weight * sx.low_weight);
      visit(top + sx.high, top_weight * sx.high_weight);
      visit(bottom + sx.low, bottom_weight * sx.low_weight);
      visit(bottom + sx.high, bottom_weight * sx.high_weight);
    }
  }
}

}  // namespace posekit
