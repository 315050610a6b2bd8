"""AMANet (densepose.md 4): multi-level ROI pooling, the AMA head, AMA v1 / relation-parts / AMAv2 predictors,
losses, the semantic branch and ``DensePoseAMAROIHeads``, which importing this package registers as
MODEL.ROI_HEADS.NAME "DensePoseAMAROIHeads" of the detector (``GeneralizedRCNN``)."""
from .head import DensePoseAMAHead
from .losses import AMALosses, ia_losses
from .pooler import MultiROIPooler, level_sizes
from .predictor import AMAPredictor, RelationPartsAMAPredictor, TaskTransformerAMAPredictorV2
from .roi_heads import DensePoseAMAROIHeads

__all__ = ["AMALosses", "AMAPredictor", "DensePoseAMAHead", "DensePoseAMAROIHeads", "MultiROIPooler",
           "RelationPartsAMAPredictor", "TaskTransformerAMAPredictorV2", "ia_losses",
           "level_sizes"]
