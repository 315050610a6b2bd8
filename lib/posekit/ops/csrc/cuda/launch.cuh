// Launch helpers shared by posekit's CUDA kernels.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

namespace posekit {
namespace cuda {

constexpr int kThreads = 256;

// Enough blocks of kThreads for n elements; kernels loop with a grid stride beyond that cap.
inline unsigned int blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65535));
}

#define POSEKIT_GRID_STRIDE_LOOP(index, n)                                                              \
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < (n); \
       index += static_cast<int64_t>(blockDim.x) * gridDim.x)

}  // namespace cuda
}  // namespace posekit
