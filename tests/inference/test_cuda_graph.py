"""CudaGraphNetwork's refusal of inputs off the GPU (its replays are checked in tests/gpu)."""
import pytest
import torch
from torch import nn

from posekit.inference.cuda_graph import CudaGraphNetwork


def test_cpu_input_is_refused_by_name():
    graphed = CudaGraphNetwork(nn.Conv2d(3, 2, 3))
    with pytest.raises(ValueError, match="CUDA inputs only, got an input on cpu"):
        graphed(torch.zeros(1, 3, 8, 8))
