// CPU deformable convolution, channels-last: a sample's four bilinear corners are runs of contiguous
// channels, so one set of corner weights serves a vector of channels. Work goes in cache-sized blocks of
// pixels: sample the block's rows (groups, taps, group channels), then multiply them at once.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define POSEKIT_AVX2 1
#endif

#include "../ops.h"
#include "../sampling.h"
#include "parallel.h"
#include "small_gemm.h"

namespace posekit {
namespace cpu {
namespace {

// Sampled values per block of pixels: 128 KiB of float, so that a block's rows and their gradients stay in
// the L2 cache between the sampling and the products.
constexpr int64_t kColumnsPerBlock = 32768;
// Pixels past the image in the channels-last input and the backward's input gradient: in the backward, the
// corners of a sample that fall outside the image read and write these (one per corner), unchecked.
constexpr int64_t kSparePixels = 4;
// How many rows ahead the sampling loops ask the cache for the stretch of a row that a tap reads or writes:
// the stretches of one tap lie a whole row apart, and the hardware did not fetch them in time (A/B on
// DEKR's adaptive convolution: backward 15-25% faster on 512 KiB blocks, about 8% on 128 KiB ones).
constexpr int64_t kPrefetchRows = 4;

inline void prefetch(const void* address, bool for_write) {
#if defined(__GNUC__)
  if (for_write) {
    __builtin_prefetch(address, 1);
  } else {
    __builtin_prefetch(address, 0);
  }
#endif
}

// Channels [begin, end) of one offset group that also share one weight group: contiguous in a sampled row.
struct ChannelRun {
  int64_t begin, end, weight_group;
};

// The channels of a weight group, padded with zero channels to a multiple of a float vector (4) when that
// adds at most a quarter: DEKR's 15-channel groups become 16, and the channel loops lose their scalar tails.
int64_t padded_group_channels(int64_t channels) {
  const int64_t padded = (channels + 3) / 4 * 4;
  return 4 * padded <= 5 * channels ? padded : channels;
}

// n rounded up to a multiple of kProductColumns.
int64_t product_columns(int64_t n) { return (n + kProductColumns - 1) / kProductColumns * kProductColumns; }

// How one image's tensors and a block's buffers are laid out. The input is copied channels-last with each
// weight group padded to padded_channels (zeros); rows hold, per weight group, its tap columns (taps x
// padded_channels) and unused columns up to group_columns, so that a row gradient, the one product output
// as wide as a row, is a whole number of product tiles wide.
struct Layout {
  const DeformGeometry& g;
  int64_t groups, group_channels, padded_channels, group_columns;
  std::vector<std::vector<ChannelRun>> runs;  // per offset group, in padded channel indices

  Layout(const DeformGeometry& geometry, int64_t weight_group_channels)
      : g(geometry),
        groups(geometry.channels / weight_group_channels),
        group_channels(weight_group_channels),
        padded_channels(padded_group_channels(weight_group_channels)),
        group_columns(product_columns(tap_columns())),
        runs(geometry.offset_groups) {
    // Computed once so that the sampling loops divide nothing.
    const int64_t offset_group_channels = g.channels / g.offset_groups;
    for (int64_t group = 0; group < g.offset_groups; ++group) {
      const int64_t group_end = (group + 1) * offset_group_channels;
      for (int64_t c = group * offset_group_channels; c < group_end;) {
        const int64_t weight_group = c / group_channels, weight_group_end = (weight_group + 1) * group_channels;
        const int64_t end = std::min(group_end, weight_group_end);
        // A run that ends its weight group takes the group's padding along.
        const int64_t padded_end = end == weight_group_end ? (weight_group + 1) * padded_channels : padded_index(end);
        runs[group].push_back({padded_index(c), padded_end, weight_group});
        c = end;
      }
    }
  }

  int64_t padded_index(int64_t channel) const {
    return channel / group_channels * padded_channels + channel % group_channels;
  }
  // Channels per pixel of the padded input.
  int64_t pixel_size() const { return groups * padded_channels; }
  // Where a row holds channel c (of `run`, padded) of tap k: index row_offset(run, k) + c.
  int64_t row_offset(const ChannelRun& run, int64_t k) const {
    return run.weight_group * (group_columns - padded_channels) + k * padded_channels;
  }
  int64_t row_size() const { return groups * group_columns; }
  // The columns of a weight group that hold samples, the first of its group_columns.
  int64_t tap_columns() const { return g.taps() * padded_channels; }
  // A weight group's tap columns as (taps, padded channels), of a tensor whose last dimension has them first.
  at::Tensor tap_channels(const at::Tensor& t) const {
    return t.narrow(-1, 0, tap_columns()).unflatten(-1, {g.taps(), padded_channels});
  }
};

// The four bilinear corners of one tap for a run of pixels, as arrays: computing them is then a loop without
// calls or branches, which the compiler vectorizes. Corner q of pixel r is input pixel index[q][r] with
// weight weight[q][r] (mask included when one is given); a corner outside the image has index 0 and weight 0.
// With fractions (for the backward) the weights are left out: the sample's fractional parts fraction_y[r] and
// fraction_x[r] give them, and a corner outside the image has index height * width + q instead, one of four
// spare pixels past the image that read zero and take the gradient nobody reads; a pixel's four corners then
// never share a destination, and the bilinear formulas need no case for the image border.
template <typename T>
struct TapCorners {
  std::vector<int32_t> index[4];
  std::vector<T> weight[4], fraction_y, fraction_x;

  TapCorners(int64_t count, bool with_fractions) {
    for (int q = 0; q < 4; ++q) {
      index[q].resize(count);
      if (!with_fractions) weight[q].resize(count);
    }
    if (with_fractions) {
      fraction_y.resize(count);
      fraction_x.resize(count);
    }
  }
};

// 1 when n >= 0, else 0, from n's sign bit: integer comparisons would mix mask widths in the vectorized loop.
inline int32_t non_negative(int32_t n) { return int32_t(~uint32_t(n) >> 31); }

// flag (0 or 1) ? chosen : otherwise, with masks instead of a select.
inline int32_t choose(int32_t flag, int32_t chosen, int32_t otherwise) {
  return (chosen & -flag) | (otherwise & (flag - 1));
}

// The rules of deform_corners (sampling.h), restated for vectorization (no branch, no short-circuit): the
// floor is the truncation corrected downwards, and a sample outside (-1, size) on either axis is moved to 0
// and weighted 0. The mask, when given, multiplies the weights in a second pass. kExactInT: pixel indices
// are computed in T, exact while the image has at most 2^digits(T) pixels. kFractions: fractions and spare
// pixels instead of weights.
template <typename T, bool kExactInT, bool kFractions>
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
  T* __restrict__ fy = corners.fraction_y.data();
  T* __restrict__ fx = corners.fraction_x.data();
  const int32_t spare = kFractions ? height * width : 0;
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
    i0[r] = choose(top & left, corner, spare);
    i1[r] = choose(top & right, corner + 1, spare + int32_t(kFractions));
    i2[r] = choose(bottom & left, corner + width, spare + 2 * int32_t(kFractions));
    i3[r] = choose(bottom & right, corner + width + 1, spare + 3 * int32_t(kFractions));
    if (kFractions) {
      fy[r] = ly;
      fx[r] = lx;
    } else {
      w0[r] = (top & left) ? hy * hx : T(0);
      w1[r] = (top & right) ? hy * lx : T(0);
      w2[r] = (bottom & left) ? ly * hx : T(0);
      w3[r] = (bottom & right) ? ly * lx : T(0);
    }
  }
  if (mask && !kFractions) {
    for (int64_t r = 0; r < count; ++r) {
      w0[r] *= mask[r];
      w1[r] *= mask[r];
      w2[r] *= mask[r];
      w3[r] *= mask[r];
    }
  }
}

// Calls visit(group, k, tap, corners) for every tap of pixels [first, first + count), with the tap's corners
// for all of them: weights modulated by `mask` when given, or fractions when kFractions.
template <typename T, bool kFractions, typename Visit>
void for_each_tap(const DeformGeometry& g, const T* offset, const T* mask, int64_t first, int64_t count,
                  Visit&& visit) {
  const int64_t pixels = g.pixels();
  std::vector<T> base_y(count), base_x(count);
  for (int64_t r = 0, oy = first / g.out_w, ox = first % g.out_w; r < count; ++r) {
    base_y[r] = T(oy * g.stride_h - g.pad_h);
    base_x[r] = T(ox * g.stride_w - g.pad_w);
    if (++ox == g.out_w) {
      ox = 0;
      ++oy;
    }
  }
  TapCorners<T> corners(count, kFractions);
  const bool exact_in_t = g.height * g.width <= (int64_t(1) << std::numeric_limits<T>::digits);
  const auto corners_of_tap = exact_in_t ? tap_corners<T, true, kFractions> : tap_corners<T, false, kFractions>;
  for (int64_t group = 0; group < g.offset_groups; ++group) {
    for (int64_t k = 0; k < g.taps(); ++k) {
      const int64_t tap = group * g.taps() + k;
      corners_of_tap(int32_t(g.height), int32_t(g.width), base_y.data(), base_x.data(),
                     T((k / g.kernel_w) * g.dilation_h), T((k % g.kernel_w) * g.dilation_w),
                     offset + 2 * tap * pixels + first, offset + (2 * tap + 1) * pixels + first,
                     mask ? mask + tap * pixels + first : nullptr, count, corners);
      visit(group, k, tap, corners);
    }
  }
}

#ifdef POSEKIT_AVX2
// The offset group's channels when they are one run of whole vectors of 8 floats (DEKR's 15 channels padded to
// 16), which the AVX2 functions handle; else null.
const ChannelRun* vector_run(const Layout& layout, int64_t group) {
  const auto& runs = layout.runs[group];
  return runs.size() == 1 && (runs[0].end - runs[0].begin) % 8 == 0 ? &runs[0] : nullptr;
}

// sample_tap_rows for a vector_run: GCC left the generic channel loop scalar, and its run list and per-sample
// bookkeeping cost as much again.
__attribute__((noinline)) void sample_tap_rows_vectors(const Layout& layout, const ChannelRun& run, int64_t k,
                                                       const TapCorners<float>& corners, int64_t count,
                                                       const float* input, float* rows) {
  const int64_t channels = layout.pixel_size(), row_size = layout.row_size(), width = run.end - run.begin;
  const int32_t *i0 = corners.index[0].data(), *i1 = corners.index[1].data();
  const int32_t *i2 = corners.index[2].data(), *i3 = corners.index[3].data();
  const float *w0 = corners.weight[0].data(), *w1 = corners.weight[1].data();
  const float *w2 = corners.weight[2].data(), *w3 = corners.weight[3].data();
  input += run.begin;
  rows += layout.row_offset(run, k) + run.begin;
  for (int64_t r = 0; r < count; ++r, rows += row_size) {
    if (r + kPrefetchRows < count) prefetch(rows + kPrefetchRows * row_size, true);
    const float *c0 = input + i0[r] * channels, *c1 = input + i1[r] * channels;
    const float *c2 = input + i2[r] * channels, *c3 = input + i3[r] * channels;
    const __m256 weight0 = _mm256_set1_ps(w0[r]), weight1 = _mm256_set1_ps(w1[r]);
    const __m256 weight2 = _mm256_set1_ps(w2[r]), weight3 = _mm256_set1_ps(w3[r]);
    for (int64_t c = 0; c < width; c += 8) {
      __m256 sum = _mm256_mul_ps(weight0, _mm256_loadu_ps(c0 + c));
      sum = _mm256_fmadd_ps(weight1, _mm256_loadu_ps(c1 + c), sum);
      sum = _mm256_fmadd_ps(weight2, _mm256_loadu_ps(c2 + c), sum);
      _mm256_storeu_ps(rows + c, _mm256_fmadd_ps(weight3, _mm256_loadu_ps(c3 + c), sum));
    }
  }
}
#endif

// Writes tap k of offset group `group` into the rows of `count` pixels: the bilinear samples at its corners.
template <typename T>
void sample_tap_rows(const Layout& layout, int64_t group, int64_t k, const TapCorners<T>& corners, int64_t count,
                     const T* input, T* rows) {
#ifdef POSEKIT_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (const ChannelRun* run = vector_run(layout, group)) {
      return sample_tap_rows_vectors(layout, *run, k, corners, count, input, rows);
    }
  }
#endif
  const int64_t channels = layout.pixel_size();
  for (int64_t r = 0; r < count; ++r) {
    const T w0 = corners.weight[0][r], w1 = corners.weight[1][r];
    const T w2 = corners.weight[2][r], w3 = corners.weight[3][r];
    const T* c0 = input + int64_t(corners.index[0][r]) * channels;
    const T* c1 = input + int64_t(corners.index[1][r]) * channels;
    const T* c2 = input + int64_t(corners.index[2][r]) * channels;
    const T* c3 = input + int64_t(corners.index[3][r]) * channels;
    for (const auto& run : layout.runs[group]) {
      T* out = rows + r * layout.row_size() + layout.row_offset(run, k);
      if (r + kPrefetchRows < count) prefetch(out + kPrefetchRows * layout.row_size(), true);
      for (int64_t c = run.begin; c < run.end; ++c) out[c] = w0 * c0[c] + w1 * c1[c] + w2 * c2[c] + w3 * c3[c];
    }
  }
}

// Rows of pixels [first, first + count): the modulated bilinear samples of a channels-last image (H, W, C),
// one tap at a time: the tap's corners for all the pixels, then their channels into the rows.
template <typename T>
void sample_rows(const T* input, const T* offset, const T* mask, const Layout& layout, int64_t first, int64_t count,
                 T* rows) {
  for_each_tap<T, false>(layout.g, offset, mask, first, count,
                         [&](int64_t group, int64_t k, int64_t, const TapCorners<T>& corners) {
    sample_tap_rows(layout, group, k, corners, count, input, rows);
  });
}

// A sample's output-row gradient dotted with its derivatives along y and x and with its value.
template <typename T>
struct SampleDots {
  T y = 0, x = 0, value = 0;

  SampleDots& operator+=(const SampleDots& other) {
    y += other.y;
    x += other.x;
    value += other.value;
    return *this;
  }
};

#ifdef POSEKIT_AVX2
// The sums of the lanes of y, x and value: a tree of horizontal additions, where the compiler's reduction
// epilogue adds the lanes one by one (a fifth of the backward's scatter loop).
inline SampleDots<float> lane_sums(__m256 y, __m256 x, __m256 value) {
  const __m256 pairs = _mm256_hadd_ps(_mm256_hadd_ps(y, x), _mm256_hadd_ps(value, value));
  const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(pairs), _mm256_extractf128_ps(pairs, 1));
  return {_mm_cvtss_f32(sums), _mm_cvtss_f32(_mm_shuffle_ps(sums, sums, 1)),
          _mm_cvtss_f32(_mm_shuffle_ps(sums, sums, 2))};
}
#endif

// One sample in the backward: its four corners' input pixels and input-gradient pixels (spare ones past the
// image read zero), its fractional position within them, and its mask value (1 without a mask).
template <typename T>
struct SampleGrads {
  const T* input[4];
  T* grad_input[4];
  T fraction_y, fraction_x, scale;

  // For channels [begin, end): writes the modulated sample into `row` (the weight gradient multiplies it),
  // adds the input gradient, and returns the row gradient `grad` dotted with the unmodulated sample's
  // derivatives and value.
  SampleDots<T> scatter(const T* __restrict__ grad, T* __restrict__ row, int64_t begin, int64_t end) const {
    const T *__restrict__ v0 = input[0], *__restrict__ v1 = input[1];
    const T *__restrict__ v2 = input[2], *__restrict__ v3 = input[3];
    T *__restrict__ g0 = grad_input[0], *__restrict__ g1 = grad_input[1];
    T *__restrict__ g2 = grad_input[2], *__restrict__ g3 = grad_input[3];
    const T ly = fraction_y, lx = fraction_x;
    T y = 0, x = 0, value = 0;
    // Two passes over the channels, each with few enough live values to stay in registers; the channels'
    // corners are in the L1 cache for the second.
    // A reduction vectorizes only when its order may change: sums over a few channels tolerate it.
#pragma omp simd reduction(+ : y, x, value)
    for (int64_t c = begin; c < end; ++c) {
      const T gc = grad[c];
      // Interpolated along x on the top and bottom rows, then along y: the derivative along y is their
      // difference, and the one along x the rows' differences interpolated along y.
      const T top_step = v1[c] - v0[c], bottom_step = v3[c] - v2[c];
      const T top = v0[c] + lx * top_step, bottom = v2[c] + lx * bottom_step;
      const T sample = top + ly * (bottom - top);
      row[c] = sample * scale;
      y += gc * (bottom - top);
      x += gc * (top_step + ly * (bottom_step - top_step));
      value += gc * sample;
    }
    const T hy = T(1) - ly, hx = T(1) - lx;
    const T w0 = hy * hx * scale, w1 = hy * lx * scale, w2 = ly * hx * scale, w3 = ly * lx * scale;
    for (int64_t c = begin; c < end; ++c) {
      const T gc = grad[c];
      g0[c] += w0 * gc;
      g1[c] += w1 * gc;
      g2[c] += w2 * gc;
      g3[c] += w3 * gc;
    }
    return {y, x, value};
  }
};

#ifdef POSEKIT_AVX2
// scatter_tap_grads for a vector_run: the channel loop in one pass, every per-sample value a local. The generic
// loop, with its run list and per-sample structure, spent 190 instructions per sample around 64 of channel
// work for DEKR's 16 channels; this one 81.
__attribute__((noinline)) void scatter_tap_grads_vectors(const Layout& layout, const ChannelRun& run, int64_t k,
                                                         const TapCorners<float>& corners, int64_t count,
                                                         const float* input, const float* mask, const float* grad_rows,
                                                         float* rows, float* grad_input, float* grad_y, float* grad_x,
                                                         float* grad_mask) {
  const int64_t channels = layout.pixel_size(), row_size = layout.row_size(), width = run.end - run.begin;
  const int32_t *i0 = corners.index[0].data(), *i1 = corners.index[1].data();
  const int32_t *i2 = corners.index[2].data(), *i3 = corners.index[3].data();
  const float *fraction_y = corners.fraction_y.data(), *fraction_x = corners.fraction_x.data();
  input += run.begin;
  grad_input += run.begin;
  grad_rows += layout.row_offset(run, k) + run.begin;
  rows += layout.row_offset(run, k) + run.begin;
  for (int64_t r = 0; r < count; ++r, grad_rows += row_size, rows += row_size) {
    if (r + kPrefetchRows < count) {
      prefetch(grad_rows + kPrefetchRows * row_size, false);
      prefetch(rows + kPrefetchRows * row_size, true);
    }
    const int64_t at0 = i0[r] * channels, at1 = i1[r] * channels, at2 = i2[r] * channels, at3 = i3[r] * channels;
    const float scale = mask ? mask[r] : 1.f, fy = fraction_y[r], fx = fraction_x[r];
    const __m256 ly = _mm256_set1_ps(fy), lx = _mm256_set1_ps(fx), modulation = _mm256_set1_ps(scale);
    const float hy_scaled = (1.f - fy) * scale, ly_scaled = fy * scale;
    const __m256 w0 = _mm256_set1_ps(hy_scaled * (1.f - fx)), w1 = _mm256_set1_ps(hy_scaled * fx);
    const __m256 w2 = _mm256_set1_ps(ly_scaled * (1.f - fx)), w3 = _mm256_set1_ps(ly_scaled * fx);
    __m256 y = _mm256_setzero_ps(), x = _mm256_setzero_ps(), value = _mm256_setzero_ps();
    for (int64_t c = 0; c < width; c += 8) {
      const __m256 gc = _mm256_loadu_ps(grad_rows + c);
      const __m256 v0 = _mm256_loadu_ps(input + at0 + c), v1 = _mm256_loadu_ps(input + at1 + c);
      const __m256 v2 = _mm256_loadu_ps(input + at2 + c), v3 = _mm256_loadu_ps(input + at3 + c);
      // As in SampleGrads::scatter: interpolated along x on the top and bottom rows, then along y.
      const __m256 top_step = _mm256_sub_ps(v1, v0), bottom_step = _mm256_sub_ps(v3, v2);
      const __m256 top = _mm256_fmadd_ps(lx, top_step, v0), bottom = _mm256_fmadd_ps(lx, bottom_step, v2);
      const __m256 step_y = _mm256_sub_ps(bottom, top);
      const __m256 sample = _mm256_fmadd_ps(ly, step_y, top);
      _mm256_storeu_ps(rows + c, _mm256_mul_ps(sample, modulation));
      y = _mm256_fmadd_ps(gc, step_y, y);
      x = _mm256_fmadd_ps(gc, _mm256_fmadd_ps(ly, _mm256_sub_ps(bottom_step, top_step), top_step), x);
      value = _mm256_fmadd_ps(gc, sample, value);
      float* g0 = grad_input + at0 + c;
      float* g1 = grad_input + at1 + c;
      float* g2 = grad_input + at2 + c;
      float* g3 = grad_input + at3 + c;
      _mm256_storeu_ps(g0, _mm256_fmadd_ps(w0, gc, _mm256_loadu_ps(g0)));
      _mm256_storeu_ps(g1, _mm256_fmadd_ps(w1, gc, _mm256_loadu_ps(g1)));
      _mm256_storeu_ps(g2, _mm256_fmadd_ps(w2, gc, _mm256_loadu_ps(g2)));
      _mm256_storeu_ps(g3, _mm256_fmadd_ps(w3, gc, _mm256_loadu_ps(g3)));
    }
    const SampleDots<float> dots = lane_sums(y, x, value);
    grad_y[r] = dots.y * scale;
    grad_x[r] = dots.x * scale;
    if (grad_mask) grad_mask[r] = dots.value;
  }
}
#endif

// scatter_row_grads for tap k of offset group `group`: writes the gradients of its offsets along y and x
// into grad_y and grad_x, and of its mask into grad_mask when given. A function of its own: inlined into the
// loop over taps, GCC kept the corner pointers and weights of the channel loop on the stack (the backward
// ran about 10% slower).
template <typename T>
__attribute__((noinline)) void scatter_tap_grads(const Layout& layout, int64_t group, int64_t k,
                                                 const TapCorners<T>& corners, int64_t count, const T* input,
                                                 const T* mask, const T* grad_rows, T* rows, T* grad_input,
                                                 T* grad_y, T* grad_x, T* grad_mask) {
#ifdef POSEKIT_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (const ChannelRun* run = vector_run(layout, group)) {
      return scatter_tap_grads_vectors(layout, *run, k, corners, count, input, mask, grad_rows, rows, grad_input,
                                       grad_y, grad_x, grad_mask);
    }
  }
#endif
  const int64_t channels = layout.pixel_size();
  for (int64_t r = 0; r < count; ++r) {
    SampleGrads<T> sample;
    for (int q = 0; q < 4; ++q) {
      const int64_t index = corners.index[q][r];
      sample.input[q] = input + index * channels;
      sample.grad_input[q] = grad_input + index * channels;
    }
    sample.fraction_y = corners.fraction_y[r];
    sample.fraction_x = corners.fraction_x[r];
    sample.scale = mask ? mask[r] : T(1);
    SampleDots<T> dots;
    for (const auto& run : layout.runs[group]) {
      const int64_t at = r * layout.row_size() + layout.row_offset(run, k);
      if (r + kPrefetchRows < count) {
        prefetch(grad_rows + at + kPrefetchRows * layout.row_size(), false);
        prefetch(rows + at + kPrefetchRows * layout.row_size(), true);
      }
      dots += sample.scatter(grad_rows + at, rows + at, run.begin, run.end);
    }
    grad_y[r] = dots.y * sample.scale;
    grad_x[r] = dots.x * sample.scale;
    if (grad_mask) grad_mask[r] = dots.value;
  }
}

// From the gradient of a block's rows: writes the block's sampled rows, adds the input gradient into
// grad_input, and writes the offset gradient and, with a mask, the mask gradient of pixels [first, first +
// count). `input` and grad_input hold H * W + kSparePixels pixels of C channels. One tap at a time:
// its corners for all the pixels, then the channels per pixel.
template <typename T>
void scatter_row_grads(const T* input, const T* offset, const T* mask, const Layout& layout, int64_t first,
                       int64_t count, const T* grad_rows, T* rows, T* grad_input, T* grad_offset, T* grad_mask) {
  const int64_t pixels = layout.g.pixels();
  for_each_tap<T, true>(layout.g, offset, nullptr, first, count,
                        [&](int64_t group, int64_t k, int64_t tap, const TapCorners<T>& corners) {
    scatter_tap_grads<T>(layout, group, k, corners, count, input, mask ? mask + tap * pixels + first : nullptr,
                         grad_rows, rows, grad_input, grad_offset + 2 * tap * pixels + first,
                         grad_offset + (2 * tap + 1) * pixels + first,
                         grad_mask ? grad_mask + tap * pixels + first : nullptr);
  });
}

// The weight as (groups, out / groups, group columns), its columns ordered as a row's, zero in the padding.
at::Tensor weight_rows(const at::Tensor& weight, const Layout& layout) {
  const int64_t group_out = weight.size(0) / layout.groups;
  auto rows = at::zeros({layout.groups, group_out, layout.group_columns}, weight.options());
  layout.tap_channels(rows)
      .narrow(3, 0, layout.group_channels)
      .copy_(weight.reshape({layout.groups, group_out, layout.group_channels, layout.g.taps()}).transpose(2, 3));
  return rows;
}

// Where element (i, j, 0, ...) of a tensor of two or more dimensions is: indexing ops (select) per block
// cost as much as a small block's products.
template <typename T>
T* element(const at::Tensor& t, int64_t i, int64_t j = 0) {
  return t.data_ptr<T>() + i * t.stride(0) + j * t.stride(1);
}

// Calls visit(image, first pixel, pixel count) for every stretch of `length` consecutive pixels of `batch`
// images of `pixels` pixels each, on worker threads.
template <typename Visit>
void for_each_stretch(int64_t batch, int64_t pixels, int64_t length, Visit&& visit) {
  const int64_t stretches = (pixels + length - 1) / length;
  parallel_items(batch * stretches, [&](int64_t item) {
    const int64_t first = (item % stretches) * length;
    visit(item / stretches, first, std::min(length, pixels - first));
  });
}

// The layout changes between NCHW and padded channels-last go in tiles of this many pixels: a tile's
// channels-last pixels (16 KiB of DEKR's floats) stay in the L1 cache while its stretch of every channel
// plane is read or written in order. ATen's strided copy between the two layouts took 0.5 ms per call on
// DEKR's 15 x 128 x 128 input, these about 0.2 ms.
constexpr int64_t kPixelsPerTile = 256;

// The input (N, C, H, W) as (N, H * W + kSparePixels, groups, padded channels), zero in the channel padding
// and the spare pixels.
at::Tensor padded_channels_last(const at::Tensor& input_, const Layout& layout) {
  const auto input = input_.contiguous();
  const int64_t batch = input.size(0), channels = input.size(1), pixels = input.size(2) * input.size(3);
  const int64_t pixel_size = layout.pixel_size(), group_channels = layout.group_channels;
  auto padded = at::empty({batch, pixels + kSparePixels, layout.groups, layout.padded_channels}, input.options());
  padded.narrow(1, pixels, kSparePixels).zero_();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "padded_channels_last", [&] {
    const scalar_t* from = input.data_ptr<scalar_t>();
    scalar_t* to = padded.data_ptr<scalar_t>();
    for_each_stretch(batch, pixels, kPixelsPerTile, [&](int64_t b, int64_t first, int64_t count) {
      scalar_t* tile = to + (b * (pixels + kSparePixels) + first) * pixel_size;
      for (int64_t group = 0; group < layout.groups; ++group) {
        scalar_t* group_tile = tile + group * layout.padded_channels;
        for (int64_t c = 0; c < group_channels; ++c) {
          const scalar_t* plane = from + (b * channels + group * group_channels + c) * pixels + first;
          for (int64_t p = 0; p < count; ++p) group_tile[p * pixel_size + c] = plane[p];
        }
        for (int64_t c = group_channels; c < layout.padded_channels; ++c) {
          for (int64_t p = 0; p < count; ++p) group_tile[p * pixel_size + c] = 0;
        }
      }
    });
  });
  return padded;
}

// The sum of the threads' input gradients (threads, N, H * W + kSparePixels, groups, padded channels), those
// of the threads in `used` only, as a contiguous (N, C, H, W) tensor.
at::Tensor sum_to_nchw(const at::Tensor& thread_grads, const std::vector<char>& used, const Layout& layout,
                       at::IntArrayRef sizes) {
  auto grad = at::empty(sizes, thread_grads.options());
  const int64_t batch = sizes[0], channels = sizes[1], pixels = sizes[2] * sizes[3];
  const int64_t pixel_size = layout.pixel_size();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "sum_to_nchw", [&] {
    std::vector<const scalar_t*> copies;
    for (int64_t t = 0; t < int64_t(used.size()); ++t) {
      if (used[t]) copies.push_back(element<scalar_t>(thread_grads, t));
    }
    scalar_t* to = grad.data_ptr<scalar_t>();
    for_each_stretch(batch, pixels, kPixelsPerTile, [&](int64_t b, int64_t first, int64_t count) {
      for (int64_t channel = 0; channel < channels; ++channel) {
        const int64_t at = (b * (pixels + kSparePixels) + first) * pixel_size + layout.padded_index(channel);
        scalar_t* __restrict__ plane = to + (b * channels + channel) * pixels + first;
        std::fill_n(plane, count, scalar_t(0));
        for (const scalar_t* copy : copies) {
          const scalar_t* __restrict__ tile = copy + at;
          for (int64_t p = 0; p < count; ++p) plane[p] += tile[p * pixel_size];
        }
      }
    });
  });
  return grad;
}

// What the forward and the backward share: the tensors in the layouts the loops read, and the blocks of
// pixels they work in.
struct BlockedConv {
  Layout layout;
  int64_t group_out, padded_out, block;  // padded_out: group_out rounded up to product columns
  at::Tensor input, offset, mask;  // input padded channels-last; mask undefined when absent

  BlockedConv(const at::Tensor& input_, const at::Tensor& offset_, const at::Tensor& weight, const at::Tensor& mask_,
              const DeformGeometry& g)
      : layout(g, weight.size(1)),
        group_out(weight.size(0) / layout.groups),
        padded_out(product_columns(group_out)),
        block(std::clamp<int64_t>(kColumnsPerBlock / layout.row_size(), 16, 1024)),
        input(padded_channels_last(input_, layout)),
        offset(offset_.contiguous()),
        mask(mask_.defined() ? mask_.contiguous() : mask_) {}

  // Calls visit(thread, image, first pixel, pixel count) for every block, on worker threads.
  template <typename Visit>
  void for_each_block(Visit&& visit) const {
    for_each_stretch(input.size(0), layout.g.pixels(), block, [&](int64_t b, int64_t first, int64_t count) {
      visit(int64_t(at::get_thread_num()), b, first, count);
    });
  }

  // Buffers of `block` rows of `columns` for every thread (element(buffers, thread) is one), allocated once per
  // call: a fresh buffer per block costs a page fault per 4 KiB whenever the allocator has handed its memory
  // back.
  at::Tensor thread_buffers(int64_t columns) const {
    return at::empty({at::get_num_threads(), block, columns}, input.options());
  }

  // Samples image b's rows of pixels [first, first + count) into `rows`.
  template <typename T>
  void sample(int64_t b, int64_t first, int64_t count, T* rows) const {
    sample_rows<T>(element<T>(input, b), element<T>(offset, b), mask_data<T>(b), layout, first, count, rows);
  }
  template <typename T>
  const T* mask_data(int64_t b) const {
    return mask.defined() ? element<T>(mask, b) : nullptr;
  }
};

}  // namespace

at::Tensor deform_conv2d_forward(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
                                 const at::Tensor& mask, const DeformGeometry& g) {
  const BlockedConv conv(input, offset, weight, mask, g);
  const Layout& layout = conv.layout;
  const int64_t pixels = g.pixels();
  auto output = at::empty({input.size(0), weight.size(0), pixels}, input.options());
  // (groups, tap columns, padded out): the products' right-hand side, one weight row per tap column.
  auto weights = at::zeros({layout.groups, layout.tap_columns(), conv.padded_out}, weight.options());
  weights.narrow(2, 0, conv.group_out)
      .copy_(weight_rows(weight, layout).narrow(2, 0, layout.tap_columns()).transpose(1, 2));
  const auto thread_rows = conv.thread_buffers(layout.row_size());
  const auto thread_sums = conv.thread_buffers(conv.padded_out);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv2d_forward", [&] {
    conv.for_each_block([&](int64_t thread, int64_t b, int64_t first, int64_t count) {
      scalar_t* rows = element<scalar_t>(thread_rows, thread);
      scalar_t* sums = element<scalar_t>(thread_sums, thread);
      conv.sample<scalar_t>(b, first, count, rows);
      for (int64_t group = 0; group < layout.groups; ++group) {
        // (count, padded out) = rows @ weights, then transposed into the image's output columns.
        small_gemm<scalar_t>(count, conv.padded_out, layout.tap_columns(),
                             {rows + group * layout.group_columns, layout.row_size(), 1},
                             element<scalar_t>(weights, group), conv.padded_out, sums, conv.padded_out, false);
        scalar_t* out = element<scalar_t>(output, b, group * conv.group_out) + first;
        for (int64_t o = 0; o < conv.group_out; ++o) {
          for (int64_t r = 0; r < count; ++r) out[o * pixels + r] = sums[r * conv.padded_out + o];
        }
      }
    });
  });
  return output.view({input.size(0), weight.size(0), g.out_h, g.out_w});
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
    const at::Tensor& mask, const DeformGeometry& g) {
  const BlockedConv conv(input, offset, weight, mask, g);
  const Layout& layout = conv.layout;
  const int64_t batch = input.size(0), pixel_size = layout.pixel_size();
  const int64_t groups = layout.groups, group_out = conv.group_out, padded_out = conv.padded_out;
  // A view where it can be one: autograd hands the gradient of a sum over as one expanded value.
  const auto grad = grad_output.flatten(2);
  const int64_t grad_channel_step = grad.stride(1), grad_pixel_step = grad.stride(2);
  const auto weights = weight_rows(weight, layout);
  // Blocks of different threads scatter into the same input pixels: each thread sums into its own copy, which
  // it zeroes itself before its first block (in parallel, and only the threads that get blocks).
  const int64_t threads = at::get_num_threads(), image_pixels = g.height * g.width;
  auto grad_input = at::empty({threads, batch, (image_pixels + kSparePixels) * pixel_size}, input.options());
  std::vector<char> used(threads, 0);
  // Transposed, (tap columns, padded out) per group: the block's rows are the products' left-hand side.
  auto grad_weights = at::zeros({threads, groups, layout.tap_columns(), padded_out}, input.options());
  // Every element of these is written.
  auto grad_offset = at::empty_like(conv.offset);
  auto grad_mask = mask.defined() ? at::empty_like(conv.mask) : at::empty({0}, input.options());
  const auto thread_rows = conv.thread_buffers(layout.row_size());
  const auto thread_grad_rows = conv.thread_buffers(layout.row_size());
  const auto thread_grad_block = conv.thread_buffers(groups * padded_out);
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "deform_conv2d_backward", [&] {
    conv.for_each_block([&](int64_t thread, int64_t b, int64_t first, int64_t count) {
      if (!used[thread]) {
        std::fill_n(element<scalar_t>(grad_input, thread), grad_input.stride(0), scalar_t(0));
        used[thread] = 1;
      }
      scalar_t* rows = element<scalar_t>(thread_rows, thread);
      scalar_t* grad_rows = element<scalar_t>(thread_grad_rows, thread);
      // The block's output gradient, (groups, count, padded out): transposed so that products read it in order.
      scalar_t* grad_block = element<scalar_t>(thread_grad_block, thread);
      const scalar_t* grad_image = element<scalar_t>(grad, b) + first * grad_pixel_step;
      for (int64_t group = 0; group < groups; ++group) {
        scalar_t* group_grad = grad_block + group * conv.block * padded_out;
        for (int64_t o = 0; o < group_out; ++o) {
          const scalar_t* from = grad_image + (group * group_out + o) * grad_channel_step;
          for (int64_t r = 0; r < count; ++r) group_grad[r * padded_out + o] = from[r * grad_pixel_step];
        }
        // (count, group columns) = block gradient @ weights.
        small_gemm<scalar_t>(count, layout.group_columns, group_out, {group_grad, padded_out, 1},
                             element<scalar_t>(weights, group), layout.group_columns,
                             grad_rows + group * layout.group_columns, layout.row_size(), false);
      }
      scatter_row_grads<scalar_t>(element<scalar_t>(conv.input, b), element<scalar_t>(conv.offset, b),
                                  conv.mask_data<scalar_t>(b), layout, first, count, grad_rows, rows,
                                  element<scalar_t>(grad_input, thread, b), element<scalar_t>(grad_offset, b),
                                  mask.defined() ? element<scalar_t>(grad_mask, b) : nullptr);
      for (int64_t group = 0; group < groups; ++group) {
        // (tap columns, padded out) += rows^T @ block gradient.
        small_gemm<scalar_t>(layout.tap_columns(), padded_out, count,
                             {rows + group * layout.group_columns, 1, layout.row_size()},
                             grad_block + group * conv.block * padded_out, padded_out,
                             element<scalar_t>(grad_weights, thread, group), padded_out, true);
      }
    });
  });
  const auto grad_input_nchw = sum_to_nchw(grad_input, used, layout, input.sizes());
  // (groups, tap columns, padded out) -> (groups, group out, channels, taps).
  const auto grad_weight = layout.tap_channels(grad_weights.sum(0).transpose(1, 2))
                               .narrow(1, 0, group_out)
                               .narrow(3, 0, layout.group_channels)
                               .transpose(2, 3)
                               .reshape(weight.sizes());
  return {grad_input_nchw, grad_offset, grad_weight, grad_mask};
}

}  // namespace cpu
}  // namespace posekit
