"""Argument checks shared by the op wrappers: messages name the argument and the expected shape."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

IntPair = Union[int, Tuple[int, int]]
LOW_PRECISION = (torch.float16, torch.bfloat16)


def autocast_enabled(input: Tensor) -> bool:
    """Whether autocast is on for ``input``'s device (the kernels then run in float32, as torchvision's)."""
    # Devices without autocast (meta, used to count multiply-adds) make is_autocast_enabled raise.
    if not isinstance(input, Tensor) or not torch.amp.is_autocast_available(input.device.type):
        return False
    return torch.is_autocast_enabled(input.device.type)


def to_float32(*tensors: Optional[Tensor]) -> List[Optional[Tensor]]:
    """The tensors with half and bfloat16 ones cast to float32; None passes through."""
    return [t.float() if t is not None and t.dtype in LOW_PRECISION else t for t in tensors]


def pair(value: IntPair, name: str, minimum: int) -> Tuple[int, int]:
    """Normalise an int or a pair of ints to a pair, each at least ``minimum``."""
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, int) for v in values):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return values


def check_tensor(tensor: Tensor, name: str, shape: str, ndim: int) -> None:
    """Require a tensor of rank ``ndim``; ``shape`` describes the expected layout for the message."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name} must be a Tensor{shape}, got {type(tensor).__name__}")
    if tensor.dim() != ndim:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(tensor.shape)}")


def check_shape(tensor: Tensor, name: str, expected: Sequence[int], shape: str) -> None:
    """Require exactly the shape ``expected``; ``shape`` names its dimensions for the message."""
    if tuple(tensor.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {shape} = {tuple(expected)}, got {tuple(tensor.shape)}")


def check_floating(tensor: Tensor, name: str) -> None:
    """Require a floating-point dtype the kernels support on the tensor's device."""
    supported = (torch.float32, torch.float64)
    if tensor.device.type == "cuda":
        supported += (torch.float16, torch.bfloat16)
    if tensor.dtype not in supported:
        names = ", ".join(str(d) for d in supported)
        raise TypeError(f"{name} must have dtype in ({names}) on {tensor.device.type}, got {tensor.dtype}")


def check_same(reference: Tensor, reference_name: str, tensor: Tensor, name: str) -> None:
    """Require ``tensor`` to share dtype and device with ``reference``."""
    if tensor.dtype != reference.dtype:
        raise TypeError(f"{name} must have the dtype of {reference_name} ({reference.dtype}), got {tensor.dtype}")
    if tensor.device != reference.device:
        raise ValueError(f"{name} must be on the device of {reference_name} ({reference.device}), "
                         f"got {tensor.device}")
