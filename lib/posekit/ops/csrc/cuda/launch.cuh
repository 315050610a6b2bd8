// Launch helpers shared by posekit's CUDA kernels.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <limits>

namespace posekit {
namespace cuda {

constexpr int kThreads = 256;

// Enough blocks of kThreads for n elements; kernels loop with a grid stride beyond that cap.
inline unsigned int blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65535));
}

// Index is int where the element count fits: 64-bit division and modulo cost tens of instructions each.
#define POSEKIT_GRID_STRIDE_LOOP_T(index, n, Index)                                           \
  for (Index index = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; index < (n); \
       index += static_cast<Index>(blockDim.x) * gridDim.x)

#define POSEKIT_GRID_STRIDE_LOOP(index, n) POSEKIT_GRID_STRIDE_LOOP_T(index, n, int64_t)

// Calls launch(Index{}) with Index int when n elements can be indexed by an int (with room for the last
// grid stride, at most 65535 * kThreads, to step past n without overflowing), else int64_t.
template <typename Launch>
void with_index_type(int64_t n, Launch&& launch) {
  if (n <= std::numeric_limits<int>::max() / 2) {
    launch(int{});
  } else {
    launch(int64_t{});
  }
}

}  // namespace cuda
}  // namespace posekit
