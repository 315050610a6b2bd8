// CUDA greedy NMS: a kernel marks, for every candidate pair in score order, whether the higher-scored
// one suppresses the other (64 candidates per bit word); the host then scans the words greedily.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <vector>

#include "../ops.h"
#include "launch.cuh"

namespace posekit {
namespace cuda {
namespace {

constexpr int kWordBits = 64;

// exceeds(i, j), i before j in score order: candidate j is suppressed if i is kept.
template <typename Exceeds>
__global__ void suppression_mask_kernel(int64_t n, Exceeds exceeds, unsigned long long* mask) {
  const int64_t words = (n + kWordBits - 1) / kWordBits;
  const int64_t i = static_cast<int64_t>(blockIdx.y) * kWordBits + threadIdx.x;
  const int64_t word = blockIdx.x;
  if (word < static_cast<int64_t>(blockIdx.y) || i >= n) return;
  unsigned long long bits = 0;
  for (int t = 0; t < kWordBits; ++t) {
    const int64_t j = word * kWordBits + t;
    if (j > i && j < n && exceeds(i, j)) bits |= 1ULL << t;
  }
  mask[i * words + word] = bits;
}

template <typename T>
struct IouExceeds {
  const T* boxes;  // sorted by score
  at::opmath_type<T> threshold;

  __device__ bool operator()(int64_t i, int64_t j) const {
    using acc_t = at::opmath_type<T>;
    const T* a = boxes + 4 * i;
    const T* b = boxes + 4 * j;
    const acc_t w = ::max(acc_t(0), ::min(acc_t(a[2]), acc_t(b[2])) - ::max(acc_t(a[0]), acc_t(b[0])));
    const acc_t h = ::max(acc_t(0), ::min(acc_t(a[3]), acc_t(b[3])) - ::max(acc_t(a[1]), acc_t(b[1])));
    const acc_t inter = w * h;
    const acc_t area_a = (acc_t(a[2]) - acc_t(a[0])) * (acc_t(a[3]) - acc_t(a[1]));
    const acc_t area_b = (acc_t(b[2]) - acc_t(b[0])) * (acc_t(b[3]) - acc_t(b[1]));
    return inter / (area_a + area_b - inter) > threshold;
  }
};

template <typename T>
struct OksExceeds {
  const T* keypoints;  // (n, joints, 3), sorted by score
  const T* areas;      // sorted by score
  const T* sigmas;
  int64_t joints;
  at::opmath_type<T> threshold;

  __device__ bool operator()(int64_t kept, int64_t other) const {
    using acc_t = at::opmath_type<T>;
    // numpy's spacing(1), the epsilon of the COCO tools
    const acc_t scale = acc_t(areas[kept]) + acc_t(2.220446049250313e-16);
    acc_t sum = 0;
    for (int64_t j = 0; j < joints; ++j) {
      const acc_t dx = acc_t(keypoints[(kept * joints + j) * 3]) - acc_t(keypoints[(other * joints + j) * 3]);
      const acc_t dy = acc_t(keypoints[(kept * joints + j) * 3 + 1]) - acc_t(keypoints[(other * joints + j) * 3 + 1]);
      const acc_t variance = acc_t(4) * acc_t(sigmas[j]) * acc_t(sigmas[j]);
      sum += ::exp(-(dx * dx + dy * dy) / variance / scale / acc_t(2));
    }
    return sum / acc_t(joints) > threshold;
  }
};

// Greedy scan of the suppression words on the host; returns positions in score order that are kept.
std::vector<int64_t> scan_mask(const at::Tensor& mask_cuda, int64_t n) {
  const int64_t words = (n + kWordBits - 1) / kWordBits;
  const auto mask = mask_cuda.cpu();
  const auto* rows = reinterpret_cast<const unsigned long long*>(mask.data_ptr<int64_t>());
  std::vector<unsigned long long> removed(words, 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (removed[i / kWordBits] & (1ULL << (i % kWordBits))) continue;
    keep.push_back(i);
    for (int64_t w = i / kWordBits; w < words; ++w) removed[w] |= rows[i * words + w];
  }
  return keep;
}

template <typename Exceeds>
at::Tensor greedy_keep(const at::Tensor& order, int64_t n, const Exceeds& exceeds) {
  const int64_t words = (n + kWordBits - 1) / kWordBits;
  auto mask = at::zeros({n, words}, order.options());
  const dim3 blocks(static_cast<unsigned int>(words), static_cast<unsigned int>(words));
  suppression_mask_kernel<<<blocks, kWordBits, 0, c10::cuda::getCurrentCUDAStream()>>>(
      n, exceeds, reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto keep = scan_mask(mask, n);
  const auto positions = at::tensor(keep, order.options().device(at::kCPU)).to(order.device());
  return order.index_select(0, positions);
}

at::Tensor score_order(const at::Tensor& scores) {
  return std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
}

}  // namespace

at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  const c10::cuda::CUDAGuard guard(boxes.device());
  const auto order = score_order(scores);
  const auto sorted = boxes.index_select(0, order).contiguous();
  return AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "nms", [&] {
    const IouExceeds<scalar_t> exceeds{sorted.data_ptr<scalar_t>(),
                                       static_cast<at::opmath_type<scalar_t>>(iou_threshold)};
    return greedy_keep(order, boxes.size(0), exceeds);
  });
}

at::Tensor oks_nms(const at::Tensor& keypoints, const at::Tensor& scores, const at::Tensor& areas,
                   const at::Tensor& sigmas, double threshold) {
  const c10::cuda::CUDAGuard guard(keypoints.device());
  const auto order = score_order(scores);
  const auto sorted_keypoints = keypoints.index_select(0, order).contiguous();
  const auto sorted_areas = areas.index_select(0, order).contiguous();
  const auto sigma = sigmas.contiguous();
  return AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, keypoints.scalar_type(), "oks_nms", [&] {
    const OksExceeds<scalar_t> exceeds{sorted_keypoints.data_ptr<scalar_t>(), sorted_areas.data_ptr<scalar_t>(),
                                       sigma.data_ptr<scalar_t>(), keypoints.size(1),
                                       static_cast<at::opmath_type<scalar_t>>(threshold)};
    return greedy_keep(order, keypoints.size(0), exceeds);
  });
}

}  // namespace cuda
}  // namespace posekit
