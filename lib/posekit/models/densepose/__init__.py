"""DensePose R-CNN (densepose.md 2): heads, predictors and ``DensePoseROIHeads``, which importing this package
registers as MODEL.ROI_HEADS.NAME "DensePoseROIHeads" of the detector (``GeneralizedRCNN``), and the conversion
of a detection's outputs to detectron2's chart result."""
from .chart_result import DensePoseChartResult, chart_result, int_box_xywh
from .head import DENSEPOSE_HEAD_REGISTRY, DensePoseDeepLabHead, DensePoseV1ConvXHead, build_densepose_head
from .predictor import DENSEPOSE_PREDICTOR_REGISTRY, DensePoseChartPredictor, build_densepose_predictor
from .roi_heads import FIELD_PREFIX, Decoder, DensePoseROIHeads

__all__ = ["DENSEPOSE_HEAD_REGISTRY", "DENSEPOSE_PREDICTOR_REGISTRY", "Decoder", "DensePoseChartPredictor",
           "DensePoseChartResult", "DensePoseDeepLabHead", "DensePoseROIHeads", "DensePoseV1ConvXHead",
           "FIELD_PREFIX", "build_densepose_head", "build_densepose_predictor", "chart_result", "int_box_xywh"]
