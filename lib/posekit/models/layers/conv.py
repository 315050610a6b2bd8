"""A convolution that carries its norm and activation, so checkpoints name them ``<conv>.weight`` and
``<conv>.norm.*`` as detectron2's do, and detectron2's two weight initialisations."""
from typing import Callable, Optional

import torch
from torch import nn


class Conv2d(nn.Conv2d):
    """nn.Conv2d followed by the optional ``norm`` module and ``activation`` callable it holds."""

    def __init__(self, *args, norm: Optional[nn.Module] = None,
                 activation: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def c2_msra_fill(conv: nn.Conv2d) -> None:
    """Caffe2's MSRA fill: He-normal weights over fan-out (for ReLU), zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def c2_xavier_fill(conv: nn.Conv2d) -> None:
    """Caffe2's Xavier fill: uniform in +-sqrt(3 / fan_in) (kaiming_uniform with a=1), zero bias."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
