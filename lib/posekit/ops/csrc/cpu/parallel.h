// Work sharing for the CPU kernels.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace posekit {
namespace cpu {

// Calls visit(item) for every item in [0, count) on at::parallel_for's threads, handing the items out one at a
// time instead of splitting them evenly in advance: items of unequal cost (boxes of different sizes), or a
// thread that a shared machine runs late, would otherwise leave the other threads waiting at the end.
template <typename Visit>
void parallel_items(int64_t count, Visit&& visit) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(count, at::get_num_threads()), 1, [&](int64_t, int64_t) {
    for (int64_t item = next++; item < count; item = next++) visit(item);
  });
}

}  // namespace cpu
}  // namespace posekit
