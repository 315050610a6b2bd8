"""``LCRNetEstimator``: LCR-Net with MODEL.WEIGHTS, returning people with 2D and 3D poses (lcrnet.md 3.8, 4)."""
from typing import Dict, List

from ...structures import Instances
from ..detector.estimator import DetectorEstimator

Person = Dict[str, object]


class LCRNetEstimator(DetectorEstimator):
    """``predict(image)`` -> people by decreasing score: {"score" (a sum of proposal probabilities, may exceed 1),
    "pose2d" float64 (J, 2) pixels, "pose3d" float64 (J, 3) metres (torso-centred, LCR axes: X toward the
    image's left, Y up, Z away from the camera), "bbox" [x1, y1, x2, y2] the bounds of the 2D joints}."""

    def results(self, instances: Instances) -> List[Person]:
        """One image's pose proposals integrated into people (MODEL.LCRNET.PPI)."""
        return self.model.people(instances)
