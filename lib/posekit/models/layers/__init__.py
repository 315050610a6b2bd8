"""Building blocks shared by the detector backbones and heads: norms, a conv carrying its norm, shapes."""
from .conv import Conv2d, c2_msra_fill, c2_xavier_fill
from .norm import AffineChannel2d, FrozenBatchNorm2d, get_norm, norm_as_affine
from .shape import ShapeSpec

__all__ = ["AffineChannel2d", "Conv2d", "FrozenBatchNorm2d", "ShapeSpec", "c2_msra_fill", "c2_xavier_fill",
           "get_norm", "norm_as_affine"]
