"""Keypoint data sets: COCO, CrowdPose and COCO-format conversions (DeepFashion2 category 1)."""
from .coco import coco_layout
from .crowdpose import crowdpose_layout
from .keypoints import DatasetLayout, DekrTrainDataset, KeypointTestDataset

__all__ = ["DatasetLayout", "DekrTrainDataset", "KeypointTestDataset", "coco_layout", "crowdpose_layout"]
