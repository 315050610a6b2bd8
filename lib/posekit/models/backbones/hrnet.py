"""HRNet (Sun et al., CVPR 2019) as built by the official DEKR ``PoseHigherResolutionNet``.

Module names, registration order and construction order follow the official code, so official
checkpoints load with ``strict=True`` and a seeded build draws the same random numbers.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Type

import torch
from torch import nn
from yacs.config import CfgNode

from ...utils.errors import ConfigError

BN_MOMENTUM = 0.1
# The official stem width and layer1 depth. posekit's optional MODEL.SPEC.STEM section changes them
# (NUM_CHANNELS, NUM_BLOCKS) so that tiny models for tests and the CPU demo stay cheap.
STEM_CHANNELS = 64
STEM_BLOCKS = 4
# The two stride-2 stem convolutions put the first branch at 1/4 of the input.
STEM_STRIDE = 4


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """The BatchNorm every HRNet/DEKR layer uses (eps 1e-5, momentum 0.1)."""
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution without bias, padded to keep the size at stride 1."""
    return nn.Conv2d(in_channels, out_channels, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (the standard block; see dekr.md 2.3)."""

    expansion = 1
    # (conv, norm) attributes where the norm is applied straight to the conv's output (for BN folding).
    CONV_NORM_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = batch_norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.bn2 = batch_norm(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += shortcut  # in place, as the official code: no new tensor the size of the block's output
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a residual connection."""

    expansion = 4
    CONV_NORM_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = batch_norm(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = batch_norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = batch_norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += shortcut
        return self.relu(out)


BLOCKS: Dict[str, Type[nn.Module]] = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def block_class(name: str, key: str, blocks: Dict[str, Type[nn.Module]] = BLOCKS) -> Type[nn.Module]:
    """Look up a block type by its yaml name; ``key`` names the config field for the error message."""
    if name not in blocks:
        raise ConfigError(f"{key}: unknown block '{name}'; known: {', '.join(sorted(blocks))}")
    return blocks[name]


def make_layer(block: Type[nn.Module], inplanes: int, planes: int, num_blocks: int,
               stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """``num_blocks`` blocks; the first gets a 1x1 projection shortcut when the shape changes."""
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out_channels:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out_channels, 1, stride, bias=False),
                                   batch_norm(out_channels))
    layers = [block(inplanes, planes, stride, downsample, dilation=dilation)]
    layers += [block(out_channels, planes, dilation=dilation) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int, relu: bool) -> nn.Sequential:
    """Conv (no bias, 'same' padding) + BN, optionally + ReLU, as one Sequential (keys .0 and .1)."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
              batch_norm(out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _fuse_layer(channels: Sequence[int], i: int, j: int) -> Optional[nn.Module]:
    """The path from input branch ``j`` to output branch ``i`` (dekr.md 2.4)."""
    if j == i:
        return None
    if j > i:
        return nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), batch_norm(channels[i]),
                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"))
    steps = i - j
    return nn.Sequential(*[conv_bn(channels[j], channels[i] if last else channels[j], 3, 2, relu=not last)
                           for last in (k == steps - 1 for k in range(steps))])


class HighResolutionModule(nn.Module):
    """Parallel branches of blocks followed by all-to-all fusion by summation."""

    def __init__(self, block: Type[nn.Module], num_blocks: Sequence[int], in_channels: Sequence[int],
                 channels: Sequence[int]) -> None:
        super().__init__()
        if not len(num_blocks) == len(in_channels) == len(channels):
            raise ConfigError(f"MODEL.SPEC.STAGES: branch lists differ in length: NUM_BLOCKS {list(num_blocks)}, "
                              f"NUM_CHANNELS {list(channels)}")
        self.branches = nn.ModuleList(make_layer(block, in_channels[b], channels[b], num_blocks[b])
                                      for b in range(len(channels)))
        self.out_channels = [c * block.expansion for c in channels]
        n = len(channels)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_layer(self.out_channels, i, j) for j in range(n)) for i in range(n)
        ) if n > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for row in self.fuse_layers:
            terms = (x if layer is None else layer(x) for layer, x in zip(row, xs))
            # The first sum is a new tensor (a term may be a branch output that other rows read); the rest
            # add into it in place. A row has one term per branch, and a fused module has two or more.
            total = next(terms) + next(terms)
            for term in terms:
                total += term
            fused.append(self.relu(total))
        return fused


def _make_transition(pre_channels: Sequence[int], cur_channels: Sequence[int]) -> nn.ModuleList:
    """Adapt existing branches' widths and create new lower-resolution branches (dekr.md 2.2)."""
    layers = []
    for i, out_channels in enumerate(cur_channels):
        if i < len(pre_channels):
            changed = out_channels != pre_channels[i]
            layers.append(conv_bn(pre_channels[i], out_channels, 3, 1, relu=True) if changed else None)
        else:
            steps = i + 1 - len(pre_channels)
            layers.append(nn.Sequential(*[
                conv_bn(pre_channels[-1], out_channels if k == steps - 1 else pre_channels[-1], 3, 2, relu=True)
                for k in range(steps)]))
    return nn.ModuleList(layers)


class HRNet(nn.Module):
    """Stem, layer1 and the stages of ``MODEL.SPEC.STAGES``; returns the last stage's branches by name.

    Branch ``i`` (from 1) is called ``"stride{4 * 2**(i-1)}"``: ``stride4`` is the highest resolution.
    """

    CONV_NORM_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"))

    @staticmethod
    def stem_args(spec: CfgNode) -> Dict[str, int]:
        """Stem width and layer1 depth from the optional MODEL.SPEC.STEM section (official values if absent)."""
        stem = spec.get("STEM", {})
        return {"stem_channels": stem.get("NUM_CHANNELS", STEM_CHANNELS),
                "stem_blocks": stem.get("NUM_BLOCKS", STEM_BLOCKS)}

    def __init__(self, stages: CfgNode, stem_channels: int = STEM_CHANNELS, stem_blocks: int = STEM_BLOCKS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, stem_channels, 3, 2, 1, bias=False)
        self.bn1 = batch_norm(stem_channels)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, 3, 2, 1, bias=False)
        self.bn2 = batch_norm(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, stem_channels, stem_channels, stem_blocks)
        channels = [stem_channels * Bottleneck.expansion]
        self.num_stages = stages.NUM_STAGES
        for s in range(self.num_stages):
            block = block_class(stages.BLOCK[s], f"MODEL.SPEC.STAGES.BLOCK[{s}]")
            stage_channels = [c * block.expansion for c in stages.NUM_CHANNELS[s]]
            setattr(self, f"transition{s + 1}", _make_transition(channels, stage_channels))
            modules = [HighResolutionModule(block, stages.NUM_BLOCKS[s], stage_channels, stages.NUM_CHANNELS[s])
                       for _ in range(stages.NUM_MODULES[s])]
            setattr(self, f"stage{s + 2}", nn.Sequential(*modules))
            channels = modules[-1].out_channels
        self.branch_channels = list(channels)
        self.out_channels = sum(channels)

    def output_shape(self) -> Dict[str, Tuple[int, int]]:
        """Branch name -> (channels, stride), highest resolution first."""
        return {f"stride{STEM_STRIDE * 2 ** i}": (c, STEM_STRIDE * 2 ** i) for i, c in enumerate(self.branch_channels)}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The last stage's outputs by name (see ``output_shape``), highest resolution first."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(self.num_stages):
            transition = getattr(self, f"transition{s + 1}")
            inputs = [xs[min(i, len(xs) - 1)] for i in range(len(transition))]
            xs = [x if layer is None else layer(x) for layer, x in zip(transition, inputs)]
            xs = getattr(self, f"stage{s + 2}")(xs)
        return dict(zip(self.output_shape(), xs))
