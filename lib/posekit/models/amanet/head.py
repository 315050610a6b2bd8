"""``DensePoseAMAHead``: AMANet's multi-path head (densepose.md 4.2), with the release's parameter names.

1. One stack of NUM_STACKED_CONVS 3x3 convs + ReLU (``body_conv_fcn1..N``) runs on each level's pooled ROI
   feature: the same parameters four times.
2. Three shared stride-2 deconvolutions + ReLU (``deconv_p1..3``) bring every path to twice the P2 size:
   P2 -> p3; P3, P4 -> p2, p3; P5 -> p1, p2, p3.
3. Aggregation: a static path (3x3 conv + ReLU on the concatenated un-attended paths), a dynamic path (each
   path scaled by its own channel attention sigmoid(att_k(ReLU(fc1_k(mean over space)))), summed, 3x3 conv +
   ReLU) and a 1x1 conv + ReLU on [static, dynamic] (``instance_embedding_layer1``).
The head returns that fused map and the four attended paths (the intermediate supervision's inputs).
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from ..densepose.head import DENSEPOSE_HEAD_REGISTRY, DensePoseV1ConvXHead

NUM_PATHS = 4  # P2..P5
NUM_DECONVS = 3
# The shared deconvolutions each path goes through, in order (indices into deconv_p1..3).
DECONVS_OF_PATH = ((2,), (1, 2), (1, 2), (0, 1, 2))


def kaiming_fan_out_init(module: nn.Module, skip: Sequence[str] = ()) -> None:
    """AMANet's ``initialize_module_params``: >= 2-D weights Kaiming-normal (fan_out, ReLU), biases 0; parameters
    whose name contains one of ``skip`` keep their current values."""
    for name, param in module.named_parameters():
        if any(part in name for part in skip):
            continue
        if name.endswith("bias"):
            nn.init.zeros_(param)
        elif name.endswith("weight") and param.dim() >= 2:
            nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")


class DensePoseAMAHead(nn.Module):
    """The AMA head on the four pooled levels -> (fused (R, C, 2 S2, 2 S2), four attended paths)."""

    def __init__(self, input_channels: int, hidden_dim: int, kernel_size: int, num_convs: int,
                 deconv_kernel: int) -> None:
        super().__init__()
        # The shared per-level stack is DensePose R-CNN's V1ConvX body (same names, bias, ReLU).
        self.body = DensePoseV1ConvXHead(input_channels, hidden_dim, kernel_size, num_convs)
        for k in range(NUM_DECONVS):
            self.add_module(f"deconv_p{k + 1}", nn.Sequential(
                nn.ConvTranspose2d(hidden_dim, hidden_dim, deconv_kernel, stride=2,
                                   padding=int(deconv_kernel / 2 - 1)), nn.ReLU()))
        for k in range(NUM_PATHS):
            self.add_module(f"fc1_levels_{k + 1}", nn.Linear(hidden_dim, hidden_dim))
            self.add_module(f"att_levels_{k + 1}", nn.Linear(hidden_dim, hidden_dim))
        self.ama_static_conv_emb = nn.Conv2d(hidden_dim * NUM_PATHS, hidden_dim, 3, padding=1)
        self.ama_dynamic_conv_emb = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1)
        self.instance_embedding_layer1 = nn.Conv2d(hidden_dim * 2, hidden_dim, 1)
        self.n_out_channels = hidden_dim
        kaiming_fan_out_init(self)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_channels: int) -> "DensePoseAMAHead":
        """The head of MODEL.ROI_DENSEPOSE_HEAD (CONV_HEAD_DIM, CONV_HEAD_KERNEL, NUM_STACKED_CONVS, DECONV_KERNEL)."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        return cls(input_channels, head.CONV_HEAD_DIM, head.CONV_HEAD_KERNEL, head.NUM_STACKED_CONVS,
                   head.DECONV_KERNEL)

    def upsampled_paths(self, pooled: Sequence[Tensor]) -> List[Tensor]:
        """The shared conv stack on each level, then the level's shared deconvolutions."""
        if len(pooled) != NUM_PATHS:
            raise ValueError(f"the AMA head takes {NUM_PATHS} pooled levels, got {len(pooled)}")
        paths = []
        for x, deconvs in zip(pooled, DECONVS_OF_PATH):
            x = self.body(x)
            for k in deconvs:
                x = getattr(self, f"deconv_p{k + 1}")(x)
            paths.append(x)
        return paths

    def channel_attention(self, path: int, x: Tensor) -> Tensor:
        """Squeeze-and-excitation weights of path ``path`` (0-based): sigmoid(att(ReLU(fc1(spatial mean)))), (R, C)."""
        fc1, att = getattr(self, f"fc1_levels_{path + 1}"), getattr(self, f"att_levels_{path + 1}")
        return torch.sigmoid(att(F.relu(fc1(x.mean(dim=(2, 3))))))

    def forward(self, pooled: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """Four (R, C_in, S_k, S_k) pooled levels -> (fused output, attended paths), all (R, C, 2 S_2, 2 S_2)."""
        paths = self.upsampled_paths(pooled)
        static = F.relu(self.ama_static_conv_emb(torch.cat(paths, dim=1)))
        attended = [x * self.channel_attention(k, x)[:, :, None, None] for k, x in enumerate(paths)]
        dynamic = F.relu(self.ama_dynamic_conv_emb(sum(attended)))
        return F.relu(self.instance_embedding_layer1(torch.cat([static, dynamic], dim=1))), attended


DENSEPOSE_HEAD_REGISTRY.register("DensePoseAMAHead", DensePoseAMAHead.from_config)
