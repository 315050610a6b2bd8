"""KTNv2's DensePose head body ``DensePoseKTNHead`` (densepose.md 3.3, 12), registered in the DensePose head
registry: ``ScaleConvs`` (one 3x3 kernel shared by three dilations) then NUM_STACKED_CONVS 3x3 convs with
GroupNorm (``body_conv_fcn1..N``, the norm of DEEPLAB.NORM) and ReLU. KTN v1 uses DensePoseV1ConvXHead."""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from ..densepose.head import DENSEPOSE_HEAD_REGISTRY, add_normed_body_convs
from ..layers.norm import GROUP_NORM_GROUPS

SCALE_DILATIONS = (1, 6, 12)


class ScaleConvs(nn.Module):
    """One 3x3 kernel ``weight`` (C -> C, no bias) applied at each dilation (padding = dilation), each result
    through its own GroupNorm (``norms.k``) + ReLU; a 1x1 branch (``conv1``); the results concatenated as
    [dilations..., 1x1] and projected back to C by a 1x1 conv + ReLU (``project``)."""

    def __init__(self, channels: int, dilations: Sequence[int] = SCALE_DILATIONS) -> None:
        super().__init__()
        self.dilations = tuple(dilations)
        self.weight = nn.Parameter(torch.empty(channels, channels, 3, 3))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.norms = nn.ModuleList([nn.GroupNorm(GROUP_NORM_GROUPS, channels) for _ in self.dilations])
        self.conv1 = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False),
                                   nn.GroupNorm(GROUP_NORM_GROUPS, channels), nn.ReLU())
        self.project = nn.Sequential(nn.Conv2d(channels * (len(self.dilations) + 1), channels, 1, bias=False),
                                     nn.ReLU())
        for conv in (self.conv1[0], self.project[0]):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """(R, C, S, S) -> (R, C, S, S)."""
        branches = [F.relu(norm(F.conv2d(x, self.weight, padding=d, dilation=d)))
                    for d, norm in zip(self.dilations, self.norms)]
        return self.project(torch.cat(branches + [self.conv1(x)], dim=1))


class DensePoseKTNHead(nn.Module):
    """ScaleConvs on the pooled feature, then ``num_convs`` x [3x3 conv (no bias with a norm), norm, ReLU]."""

    def __init__(self, input_channels: int, hidden_dim: int, kernel_size: int, num_convs: int, norm: str) -> None:
        super().__init__()
        self.ScaleConvs = ScaleConvs(input_channels)
        add_normed_body_convs(self, input_channels, hidden_dim, kernel_size, num_convs, norm)
        self.num_convs = num_convs
        self.n_out_channels = hidden_dim

    @classmethod
    def from_config(cls, cfg: CfgNode, input_channels: int) -> "DensePoseKTNHead":
        """The head of MODEL.ROI_DENSEPOSE_HEAD (CONV_HEAD_DIM, NUM_STACKED_CONVS, DEEPLAB.NORM)."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        return cls(input_channels, head.CONV_HEAD_DIM, head.CONV_HEAD_KERNEL, head.NUM_STACKED_CONVS,
                   head.DEEPLAB.NORM)

    def forward(self, x: Tensor) -> Tensor:
        """(R, C_in, S, S) -> (R, C_head, S, S)."""
        x = self.ScaleConvs(x)
        for k in range(1, self.num_convs + 1):
            x = F.relu(getattr(self, f"body_conv_fcn{k}")(x))
        return x


DENSEPOSE_HEAD_REGISTRY.register("DensePoseKTNHead", DensePoseKTNHead.from_config)
