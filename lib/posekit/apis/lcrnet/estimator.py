"""``LCRNetEstimator``: LCR-Net with MODEL.WEIGHTS, returning people with 2D and 3D poses (lcrnet.md 3.8, 4)."""
from typing import Dict, List

from yacs.config import CfgNode

from ...data.lcrnet_mapper import LCRNetMapper
from ...models.lcrnet import POSE_TRANSFORMS
from ...structures import Instances
from ..detector.estimator import DetectorEstimator

Person = Dict[str, object]


class LCRNetEstimator(DetectorEstimator):
    """``predict(image)`` -> people by decreasing score: {"score" (a sum of proposal probabilities, may exceed 1),
    "pose2d" float64 (J, 2) pixels, "pose3d" float64 (J, 3) metres (torso-centred, LCR axes: X toward the
    image's left, Y up, Z away from the camera), "bbox" [x1, y1, x2, y2] the bounds of the 2D joints}."""

    def __init__(self, cfg: CfgNode) -> None:
        super().__init__(cfg)
        # Images resized as LCR-Net's (INPUT.RESIZE_LIBRARY), not the detector's.
        self.mapper = LCRNetMapper.from_config(cfg, is_train=False, pose_transforms=POSE_TRANSFORMS)

    def results(self, instances: Instances) -> List[Person]:
        """One image's pose proposals integrated into people (MODEL.LCRNET.PPI)."""
        return self.model.people(instances)
