"""DensePose head bodies on pooled ROI features (densepose.md 2.2), with detectron2 DensePose's parameter names.

``DensePoseV1ConvXHead``: NUM_STACKED_CONVS convs + ReLU (``body_conv_fcn1..N``). ``DensePoseDeepLabHead``:
ASPP (``ASPP.convs.*``, ``ASPP.project.*``), an optional non-local block (``NLBlock.*``), then the stacked
convs with GroupNorm (``body_conv_fcnK.norm.*``). Heads are registered by their ROI_DENSEPOSE_HEAD.NAME.
"""
import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from ...utils.errors import ConfigError
from ..layers import Conv2d, c2_msra_fill, get_norm
from ..layers.norm import GROUP_NORM_GROUPS
from ...utils.registry import Registry

DENSEPOSE_HEAD_REGISTRY: Registry = Registry("DensePose head")
# Dilations of the three 3x3 ASPP branches (detectron2 DensePose's choice, 56 rather than DeepLab's 18).
ASPP_DILATIONS = (6, 12, 56)


def msra_fill(module: nn.Module) -> None:
    """Kaiming-normal weights (fan_out, ReLU gain) and zero biases of every parameter of ``module``."""
    for name, param in module.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(param)
        elif name.endswith("weight"):
            nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")


class DensePoseV1ConvXHead(nn.Module):
    """Stacked ``kernel``x``kernel`` convs, each followed by ReLU; spatial size preserved."""

    def __init__(self, input_channels: int, hidden_dim: int, kernel_size: int, num_convs: int) -> None:
        super().__init__()
        channels = input_channels
        for k in range(num_convs):
            self.add_module(f"body_conv_fcn{k + 1}",
                            nn.Conv2d(channels, hidden_dim, kernel_size, padding=kernel_size // 2))
            channels = hidden_dim
        self.num_convs = num_convs
        self.n_out_channels = channels
        msra_fill(self)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_channels: int) -> "DensePoseV1ConvXHead":
        """The head of MODEL.ROI_DENSEPOSE_HEAD."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        return cls(input_channels, head.CONV_HEAD_DIM, head.CONV_HEAD_KERNEL, head.NUM_STACKED_CONVS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C_in, S, S) -> (R, C_head, S, S)."""
        for k in range(self.num_convs):
            x = F.relu(getattr(self, f"body_conv_fcn{k + 1}")(x))
        return x


def _gn_relu_branch(*layers: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(*layers, nn.GroupNorm(GROUP_NORM_GROUPS, channels), nn.ReLU())


class ASPPPooling(nn.Sequential):
    """Image-level branch: global average, 1x1 conv, GN, ReLU, broadcast back to the input size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False),
                         nn.GroupNorm(GROUP_NORM_GROUPS, out_channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C, H, W) -> (R, C_out, H, W), constant over space."""
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and an image-level branch, concatenated, 1x1 + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilations=ASPP_DILATIONS) -> None:
        super().__init__()
        branches = [_gn_relu_branch(nn.Conv2d(in_channels, out_channels, 1, bias=False), channels=out_channels)]
        branches += [_gn_relu_branch(nn.Conv2d(in_channels, out_channels, 3, padding=d, dilation=d, bias=False),
                                     channels=out_channels) for d in dilations]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C_in, H, W) -> (R, C_out, H, W)."""
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class NonLocalBlock2D(nn.Module):
    """Embedded-Gaussian non-local block with 2x2 max-pooled keys/values and a zero-initialised GN output, so
    that it starts as the identity."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.inter_channels = max(channels // 2, 1)
        self.g = nn.Sequential(nn.Conv2d(channels, self.inter_channels, 1), nn.MaxPool2d(2))
        self.theta = nn.Conv2d(channels, self.inter_channels, 1)
        self.phi = nn.Sequential(nn.Conv2d(channels, self.inter_channels, 1), nn.MaxPool2d(2))
        self.W = nn.Sequential(nn.Conv2d(self.inter_channels, channels, 1), nn.GroupNorm(GROUP_NORM_GROUPS, channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + W(softmax(theta(x)^T phi(x)) g(x)), shapes preserved."""
        batch = x.shape[0]
        values = self.g(x).flatten(2).transpose(1, 2)
        queries = self.theta(x).flatten(2).transpose(1, 2)
        keys = self.phi(x).flatten(2)
        attended = torch.softmax(queries @ keys, dim=-1) @ values
        attended = attended.transpose(1, 2).reshape(batch, self.inter_channels, *x.shape[2:])
        return x + self.W(attended)


def add_normed_body_convs(head: nn.Module, input_channels: int, hidden_dim: int, kernel_size: int, num_convs: int,
                          norm: str) -> None:
    """Add ``body_conv_fcn1..N`` to ``head``: convs carrying the DEEPLAB.NORM norm (no bias with one), c2 MSRA init
    (the DeepLab head's and KTNv2's DensePoseKTNHead's body)."""
    channels = input_channels
    for k in range(1, num_convs + 1):
        conv = Conv2d(channels, hidden_dim, kernel_size, padding=kernel_size // 2, bias=not norm,
                      norm=get_norm(norm, hidden_dim, "MODEL.ROI_DENSEPOSE_HEAD.DEEPLAB.NORM"))
        c2_msra_fill(conv)
        head.add_module(f"body_conv_fcn{k}", conv)
        channels = hidden_dim


class DensePoseDeepLabHead(nn.Module):
    """ASPP (to the input width), optional non-local block, stacked convs with GroupNorm and ReLU."""

    def __init__(self, input_channels: int, hidden_dim: int, kernel_size: int, num_convs: int, norm: str,
                 use_nonlocal: bool) -> None:
        super().__init__()
        if norm not in ("GN", ""):
            raise ConfigError(f"MODEL.ROI_DENSEPOSE_HEAD.DEEPLAB.NORM: expected 'GN' or '', got '{norm}'")
        self.ASPP = ASPP(input_channels, input_channels)
        self.NLBlock = NonLocalBlock2D(input_channels) if use_nonlocal else None
        add_normed_body_convs(self, input_channels, hidden_dim, kernel_size, num_convs, norm)
        self.num_convs = num_convs
        self.n_out_channels = hidden_dim

    @classmethod
    def from_config(cls, cfg: CfgNode, input_channels: int) -> "DensePoseDeepLabHead":
        """The head of MODEL.ROI_DENSEPOSE_HEAD (DEEPLAB.NORM, DEEPLAB.NONLOCAL_ON)."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        return cls(input_channels, head.CONV_HEAD_DIM, head.CONV_HEAD_KERNEL, head.NUM_STACKED_CONVS,
                   head.DEEPLAB.NORM, bool(head.DEEPLAB.NONLOCAL_ON))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C_in, S, S) -> (R, C_head, S, S)."""
        x = self.ASPP(x)
        if self.NLBlock is not None:
            x = self.NLBlock(x)
        for k in range(self.num_convs):
            x = F.relu(getattr(self, f"body_conv_fcn{k + 1}")(x))
        return x


DENSEPOSE_HEAD_REGISTRY.register("DensePoseV1ConvXHead", DensePoseV1ConvXHead.from_config)
DENSEPOSE_HEAD_REGISTRY.register("DensePoseDeepLabHead", DensePoseDeepLabHead.from_config)


def build_densepose_head(cfg: CfgNode, input_channels: int) -> nn.Module:
    """The head named by MODEL.ROI_DENSEPOSE_HEAD.NAME."""
    name = cfg.MODEL.ROI_DENSEPOSE_HEAD.NAME
    return DENSEPOSE_HEAD_REGISTRY.get(name, "MODEL.ROI_DENSEPOSE_HEAD.NAME")(cfg, input_channels)
