"""``DensePoseEstimator``: DensePose R-CNN with MODEL.WEIGHTS, returning people as plain arrays (densepose.md 2.5)."""
from typing import Dict, List

import numpy as np
import torch

from ...models.densepose.chart_result import chart_result
from ...structures import Instances
from ..detector.estimator import DetectorEstimator

Person = Dict[str, object]


class DensePoseEstimator(DetectorEstimator):
    """``predict(image)`` -> people by decreasing score: {"bbox": float32 (4,) x1, y1, x2, y2, "score": float,
    "labels": uint8 (h, w) chart 0..24 over the box, "uv": float32 (2, h, w)}, with w = max(int(x2 - x1), 1) and
    h = max(int(y2 - y1), 1) as detectron2's chart result; models that predict keypoints (KTN) add "keypoints":
    float32 (17, 3) x, y (image pixels) and score."""

    @staticmethod
    def results(instances: Instances) -> List[Person]:
        """One image's people with their chart results."""
        return people_from_instances(instances)


def people_from_instances(instances: Instances) -> List[Person]:
    """The chart result (and keypoints, when predicted) of every detection, by decreasing score."""
    order = torch.argsort(instances.scores, descending=True, stable=True).tolist()
    charts = instances.has("pred_densepose_fine_segm")  # keypoint pre-training models have none
    people = []
    for i in order:
        box = instances.pred_boxes[i]
        person = {"bbox": box.cpu().numpy().astype(np.float32), "score": float(instances.scores[i])}
        if charts:
            result = chart_result(instances.pred_densepose_coarse_segm[i], instances.pred_densepose_fine_segm[i],
                                  instances.pred_densepose_u[i], instances.pred_densepose_v[i], box)
            person.update(labels=result.labels.cpu().numpy(), uv=result.uv.cpu().numpy())
        if instances.has("pred_keypoints"):
            person["keypoints"] = instances.pred_keypoints[i].cpu().numpy().astype(np.float32)
        people.append(person)
    return people
