// CPU greedy non-maximum suppression on boxes (IoU) and on poses (object keypoint similarity).
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <vector>

#include "../ops.h"

namespace posekit {
namespace cpu {
namespace {

// Visits candidates by decreasing score (stable, so equal scores keep index order); keeps a candidate
// unless exceeds(kept, candidate) holds for an already kept one. Returns kept indices in visiting order.
template <typename Exceeds>
at::Tensor greedy_keep(const at::Tensor& scores, Exceeds&& exceeds) {
  const auto order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true)).contiguous();
  const int64_t* order_data = order.data_ptr<int64_t>();
  const int64_t count = scores.size(0);
  std::vector<char> suppressed(count, 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < count; ++i) {
    if (suppressed[i]) continue;
    const int64_t kept = order_data[i];
    keep.push_back(kept);
    for (int64_t j = i + 1; j < count; ++j) {
      if (!suppressed[j] && exceeds(kept, order_data[j])) suppressed[j] = 1;
    }
  }
  return at::tensor(keep, scores.options().dtype(at::kLong));
}

template <typename T>
at::Tensor box_nms(const at::Tensor& boxes, const at::Tensor& scores, T threshold) {
  const T* b = boxes.data_ptr<T>();
  std::vector<T> areas(boxes.size(0));
  for (size_t i = 0; i < areas.size(); ++i) areas[i] = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
  return greedy_keep(scores, [&](int64_t i, int64_t j) {
    const T w = std::max(T(0), std::min(b[4 * i + 2], b[4 * j + 2]) - std::max(b[4 * i], b[4 * j]));
    const T h = std::max(T(0), std::min(b[4 * i + 3], b[4 * j + 3]) - std::max(b[4 * i + 1], b[4 * j + 1]));
    const T inter = w * h;
    return inter / (areas[i] + areas[j] - inter) > threshold;
  });
}

template <typename T>
at::Tensor pose_nms(const at::Tensor& keypoints, const at::Tensor& scores, const at::Tensor& areas,
                    const at::Tensor& sigmas, T threshold) {
  const int64_t joints = keypoints.size(1);
  const T* k = keypoints.data_ptr<T>();
  const T* a = areas.data_ptr<T>();
  std::vector<T> variances(joints);
  for (int64_t j = 0; j < joints; ++j) variances[j] = std::pow(2 * sigmas.data_ptr<T>()[j], 2);
  // numpy's spacing(1), the epsilon of the COCO tools
  const T eps = static_cast<T>(std::numeric_limits<double>::epsilon());
  return greedy_keep(scores, [&](int64_t kept, int64_t other) {
    T sum = 0;
    for (int64_t j = 0; j < joints; ++j) {
      const T dx = k[(kept * joints + j) * 3] - k[(other * joints + j) * 3];
      const T dy = k[(kept * joints + j) * 3 + 1] - k[(other * joints + j) * 3 + 1];
      sum += std::exp(-(dx * dx + dy * dy) / variances[j] / (a[kept] + eps) / 2);
    }
    return sum / joints > threshold;
  });
}

}  // namespace

at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  const auto b = boxes.contiguous();
  return AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "nms", [&] {
    return box_nms<scalar_t>(b, scores, static_cast<scalar_t>(iou_threshold));
  });
}

at::Tensor oks_nms(const at::Tensor& keypoints, const at::Tensor& scores, const at::Tensor& areas,
                   const at::Tensor& sigmas, double threshold) {
  const auto k = keypoints.contiguous();
  const auto a = areas.contiguous();
  const auto s = sigmas.contiguous();
  return AT_DISPATCH_FLOATING_TYPES(keypoints.scalar_type(), "oks_nms", [&] {
    return pose_nms<scalar_t>(k, scores, a, s, static_cast<scalar_t>(threshold));
  });
}

}  // namespace cpu
}  // namespace posekit
