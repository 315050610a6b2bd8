// Matrix products with one small dimension, as the CPU deformable convolution needs them on blocks of a few
// hundred pixels: 15 output channels against 144 sampled columns. A library GEMM ran these at about half the
// machine's rate (20-24 of ~45 GMAC/s single-threaded on AVX2) and cost a call per block; register tiles of
// 6 rows by two vectors reach 35-45.
#pragma once

#include <cstdint>
#include <cstring>

// Without AVX, GCC notes that passing a 32-byte vector changes the calling convention; these vectors never
// cross a function boundary that is not inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace posekit {
namespace cpu {

// 32 bytes of T: one AVX register, or two SSE ones where the build has no AVX.
template <typename T>
using Vector __attribute__((vector_size(32))) = T;

template <typename T>
constexpr int64_t kVectorLanes = 32 / sizeof(T);

// Rows of C per tile (each row's broadcast element of A feeds all its vectors) and vectors of C per row:
// 12 accumulators, enough independent sums to keep two FMA units busy, and few enough for 16 registers.
constexpr int kTileRows = 6, kTileVectors = 2;

// Column counts of B and C must be multiples of this: a tile row's two vectors of float.
constexpr int64_t kProductColumns = kTileVectors * 32 / sizeof(float);

template <typename T>
inline Vector<T> load_vector(const T* from) {
  Vector<T> v;
  std::memcpy(&v, from, sizeof(v));  // unaligned load
  return v;
}

template <typename T>
inline void store_vector(T* to, const Vector<T>& v) {
  std::memcpy(to, &v, sizeof(v));
}

// A matrix of which element (m, k) is at data[m * row_step + k * column_step].
template <typename T>
struct Strided {
  const T* data;
  int64_t row_step, column_step;
};

// kRows rows and kTileVectors vectors of columns of C = (or +=) A B, over the K columns of A.
template <typename T, int kRows>
inline void product_tile(int64_t K, Strided<T> a, const T* __restrict__ b, int64_t b_row_step, T* __restrict__ c,
                         int64_t c_row_step, bool accumulate) {
  Vector<T> sums[kRows][kTileVectors];
#pragma GCC unroll 8
  for (int m = 0; m < kRows; ++m) {
#pragma GCC unroll 2
    for (int v = 0; v < kTileVectors; ++v) {
      sums[m][v] = accumulate ? load_vector(c + m * c_row_step + v * kVectorLanes<T>) : Vector<T>{};
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    Vector<T> b_row[kTileVectors];
#pragma GCC unroll 2
    for (int v = 0; v < kTileVectors; ++v) b_row[v] = load_vector(b + k * b_row_step + v * kVectorLanes<T>);
#pragma GCC unroll 8
    for (int m = 0; m < kRows; ++m) {
      const T a_mk = a.data[m * a.row_step + k * a.column_step];
#pragma GCC unroll 2
      for (int v = 0; v < kTileVectors; ++v) sums[m][v] += a_mk * b_row[v];
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < kRows; ++m) {
#pragma GCC unroll 2
    for (int v = 0; v < kTileVectors; ++v) store_vector<T>(c + m * c_row_step + v * kVectorLanes<T>, sums[m][v]);
  }
}

// The last rows of C, fewer than a tile's.
template <typename T, int kRows = kTileRows - 1>
inline void product_tile_rows(int rows, int64_t K, Strided<T> a, const T* b, int64_t b_row_step, T* c,
                              int64_t c_row_step, bool accumulate) {
  if constexpr (kRows > 1) {
    if (rows < kRows) return product_tile_rows<T, kRows - 1>(rows, K, a, b, b_row_step, c, c_row_step, accumulate);
  }
  product_tile<T, kRows>(K, a, b, b_row_step, c, c_row_step, accumulate);
}

// C (M x N, rows c_row_step apart) = A B, or += A B with `accumulate`, for A (M x K) and B (K x N, rows
// b_row_step apart); N a multiple of kProductColumns.
template <typename T>
void small_gemm(int64_t M, int64_t N, int64_t K, Strided<T> a, const T* b, int64_t b_row_step, T* c,
                int64_t c_row_step, bool accumulate) {
  static_assert(kProductColumns % (kTileVectors * kVectorLanes<T>) == 0, "tiles must divide the columns");
  for (int64_t n = 0; n < N; n += kTileVectors * kVectorLanes<T>) {
    int64_t m = 0;
    for (; m + kTileRows <= M; m += kTileRows) {
      const Strided<T> a_rows{a.data + m * a.row_step, a.row_step, a.column_step};
      product_tile<T, kTileRows>(K, a_rows, b + n, b_row_step, c + m * c_row_step + n, c_row_step, accumulate);
    }
    if (m < M) {
      const Strided<T> a_rows{a.data + m * a.row_step, a.row_step, a.column_step};
      product_tile_rows<T>(int(M - m), K, a_rows, b + n, b_row_step, c + m * c_row_step + n, c_row_step,
                           accumulate);
    }
  }
}

}  // namespace cpu
}  // namespace posekit

#pragma GCC diagnostic pop
