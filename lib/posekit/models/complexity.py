"""Model size and cost as the official ``get_model_summary`` reports them (dekr.md 5).

Cost = multiply-adds of convolutions (deformable ones counted like ordinary ones) and linear layers,
``weight.numel() x output height x output width`` per conv; bias adds, norms, activations, resampling
and offset arithmetic are not counted. ``model_complexity`` builds and runs the model on the meta
device, so it allocates nothing and is instant even for W48 at 640x640.
"""
from typing import Tuple

import torch
from torch import nn
from yacs.config import CfgNode

from ..ops import DeformConv2d
from .build import build_model

COUNTED_CONVS = (nn.Conv2d, DeformConv2d)


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return module.weight.numel() * (output.numel() // output.shape[-1])
    return module.weight.numel() * output.shape[-2] * output.shape[-1] * output.shape[0]


def count_macs(model: nn.Module, input_shape: Tuple[int, ...]) -> int:
    """Conv + linear multiply-adds of one forward of an input of ``input_shape`` on the model's device."""
    total = 0

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += _macs(module, output)

    device = next(model.parameters()).device
    model.eval()
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, COUNTED_CONVS + (nn.Linear,))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return total


def model_complexity(cfg: CfgNode) -> Tuple[int, int]:
    """(parameters, MACs for one DATASET.INPUT_SIZE square RGB image) of the config's model."""
    with torch.device("meta"):
        model = build_model(cfg)
    size = cfg.DATASET.INPUT_SIZE
    return count_parameters(model), count_macs(model, (1, 3, size, size))
