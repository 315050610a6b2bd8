"""Inference through CUDA graphs: a network's whole forward replayed as one launch per input shape.

An HRNet forward is thousands of small kernels; at batch 1 on a fast GPU launching them costs more than
running them. ``CudaGraphNetwork`` captures the forward once per input shape (dtype, device) and replays
it, which suits video and batches of one image size. The graph holds the parameters' memory addresses:
update weights in place (``load_state_dict`` does), never by assigning new tensors, after the first call.
"""
import contextlib
from typing import Dict, NamedTuple, Optional, Tuple

import torch
from torch import nn

# Untimed calls before a capture: they pick cuDNN algorithms and fill the caching allocator, neither of
# which may happen during the capture.
WARMUP_CALLS = 2


class _Captured(NamedTuple):
    input: torch.Tensor
    outputs: Tuple[torch.Tensor, ...]
    graph: "torch.cuda.CUDAGraph"


class CudaGraphNetwork(nn.Module):
    """``network`` (on a CUDA device; ideally ``prepare_for_inference``'d) run from CUDA graphs, optionally
    under autocast."""

    def __init__(self, network: nn.Module, autocast_dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.network = network
        self.autocast_dtype = autocast_dtype
        self._graphs: Dict[Tuple[object, ...], _Captured] = {}

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The network's outputs for ``image``: fresh tensors, not overwritten by later calls."""
        if image.device.type != "cuda":
            raise ValueError(f"CudaGraphNetwork runs CUDA inputs only, got an input on {image.device}")
        key = (tuple(image.shape), image.dtype, image.device)
        with torch.no_grad():
            if key not in self._graphs:
                self._graphs[key] = self._capture(image)
            captured = self._graphs[key]
            captured.input.copy_(image)
            captured.graph.replay()
            return tuple(output.clone() for output in captured.outputs)

    def _run(self, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        # The autocast cache of cast weights would outlive the capture's memory pool: keep it off.
        context = (torch.autocast("cuda", dtype=self.autocast_dtype, cache_enabled=False)
                   if self.autocast_dtype is not None else contextlib.nullcontext())
        with context:
            return tuple(self.network(image))

    def _capture(self, image: torch.Tensor) -> _Captured:
        static_input = image.clone()
        # Warm-up and capture run on a side stream, as CUDA graph capture requires.
        side_stream = torch.cuda.Stream(image.device)
        side_stream.wait_stream(torch.cuda.current_stream(image.device))
        with torch.cuda.stream(side_stream):
            for _ in range(WARMUP_CALLS):
                self._run(static_input)
        torch.cuda.current_stream(image.device).wait_stream(side_stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = self._run(static_input)
        return _Captured(static_input, outputs, graph)
