"""Small typed containers and box arithmetic shared by the model families."""
from .boxes import (box_area, box_sides, clip_boxes, half_open, inside_image, nonempty, pairwise_intersection,
                    pairwise_iou)
from .instances import DensePosePoints, Instances

__all__ = ["DensePosePoints", "Instances", "box_area", "box_sides", "clip_boxes", "half_open", "inside_image",
           "nonempty", "pairwise_intersection", "pairwise_iou"]
