"""Keypoint data sets: COCO, CrowdPose, COCO-format conversions (DeepFashion2 category 1) and ``custom`` json."""
from .coco import coco_layout
from .crowdpose import crowdpose_layout
from .custom import custom_layout
from .keypoints import DatasetLayout, DekrMapper, KeypointTestDataset, dekr_train_dataset, keypoint_records

__all__ = ["DatasetLayout", "DekrMapper", "KeypointTestDataset", "coco_layout", "crowdpose_layout", "custom_layout",
           "dekr_train_dataset", "keypoint_records"]
