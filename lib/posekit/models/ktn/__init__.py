"""KTN and KTNv2 (densepose.md 3): multi-instance decoders, the KTNv2 head, knowledge transfer machines, KTN's
losses and ROI heads. Importing this package registers the ROI heads ("DensePoseKTNHeads",
"DensePoseKTNv2Heads"), the head "DensePoseKTNHead" and the predictors ("DensePoseKptRelationPredictor",
"KTNv2Predictor") of the detector (``GeneralizedRCNN``); ``export_keypoint_classifier`` writes keypoint
pre-training's classifier as KTM v1's input."""
from .export import export_keypoint_classifier
from .head import DensePoseKTNHead, ScaleConvs
from .ktm import (CachedKernel, DensePoseKptRelationPredictor, KeypointDeconvPredictor, KTNv2Predictor,
                  flatten_classifier, kernel_from_rows, relation_matrix, relation_parameter, transfer_mlp)
from .losses import KeypointLoss, KTNLosses
from .mid import FeatureAdaptation, MultiInstanceDecoderV2, mid_v1, space_to_depth
from .roi_heads import KTNROIHeads, KTNv2ROIHeads, mask_foreground_logits

__all__ = ["CachedKernel", "DensePoseKTNHead", "DensePoseKptRelationPredictor", "FeatureAdaptation",
           "KTNLosses", "KTNROIHeads", "KTNv2Predictor", "KTNv2ROIHeads", "KeypointDeconvPredictor", "KeypointLoss",
           "MultiInstanceDecoderV2", "ScaleConvs", "export_keypoint_classifier", "flatten_classifier",
           "kernel_from_rows", "mask_foreground_logits", "mid_v1", "relation_matrix", "relation_parameter",
           "space_to_depth", "transfer_mlp"]
