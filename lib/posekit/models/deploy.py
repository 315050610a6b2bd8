"""A trained network's inference form: batch norms folded into the convolutions before them, channels_last.

In eval mode a BatchNorm2d is a per-channel affine map, so after a convolution it can be merged into the
convolution's weight and bias: one kernel instead of two per layer. A folded model computes the same
function (up to float rounding) but can no longer be trained or saved as an official checkpoint: prepare
it after loading weights, for inference only. channels_last (NHWC) is the layout oneDNN's CPU convolutions
and the GPU's tensor-core convolutions run fastest in.
"""
from typing import Callable, Iterator, Tuple

import torch
from torch import nn

from ..ops import DeformConv2d
from .layers import Conv2d as NormedConv2d
from .layers.norm import norm_as_affine

FOLDABLE = (nn.Conv2d, DeformConv2d)
# Besides conv -> norm neighbours in a Sequential and the detector's convolutions that hold their norm
# (``layers.Conv2d``), a module class may declare the (convolution, norm) attributes it applies in that
# order as ``CONV_NORM_PAIRS``. Other modules' attributes are left alone: a name says nothing about the
# order they run in. A norm folds when it is a fixed per-channel affine map in eval mode (BatchNorm2d,
# FrozenBatchNorm2d, AffineChannel2d).
PAIRS_ATTRIBUTE = "CONV_NORM_PAIRS"

Pair = Tuple[nn.Module, nn.Module, Callable[[], None]]


def prepare_for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device`` in eval mode, batch norms folded, parameters channels_last (in place)."""
    model = fold_batch_norms(model.to(device).eval())
    return model.to(memory_format=torch.channels_last)


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Fold, in place, every fixed affine norm that directly follows a conv into it; returns ``model``."""
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode (call model.eval() first): a training "
                         "model's batch norms use batch statistics, which cannot be folded")
    for module in list(model.modules()):
        for conv, norm, remove_norm in list(_conv_norm_pairs(module)):
            _fold(conv, norm)
            remove_norm()
    return model


def _conv_norm_pairs(module: nn.Module) -> Iterator[Pair]:
    """(conv, norm, a function replacing the norm by Identity) for the pairs ``module`` holds directly."""
    if isinstance(module, nn.Sequential):
        children = list(module)
        for index in range(len(children) - 1):
            if _is_pair(children[index], children[index + 1]):
                yield children[index], children[index + 1], _replacer(module, str(index + 1))
    if isinstance(module, NormedConv2d) and _is_pair(module, module.norm):
        yield module, module.norm, lambda: setattr(module, "norm", None)
    for conv_name, norm_name in getattr(type(module), PAIRS_ATTRIBUTE, ()):
        conv, norm = getattr(module, conv_name), getattr(module, norm_name)
        if _is_pair(conv, norm):
            yield conv, norm, _replacer(module, norm_name)


def _is_pair(conv: object, norm: object) -> bool:
    return isinstance(conv, FOLDABLE) and isinstance(norm, nn.Module) and norm_as_affine(norm) is not None


def _replacer(module: nn.Module, name: str) -> Callable[[], None]:
    return lambda: setattr(module, name, nn.Identity())


@torch.no_grad()
def _fold(conv: nn.Module, norm: nn.Module) -> None:
    """conv's weight and bias become those of norm(conv(x)), computed in float64."""
    scale, shift = norm_as_affine(norm)
    bias = torch.zeros_like(shift) if conv.bias is None else conv.bias.double()
    conv.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
