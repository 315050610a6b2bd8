"""Mixed precision from TRAIN.AMP: '' (float32), 'bf16' (autocast) or 'fp16' (autocast and loss scaling)."""
import contextlib
from typing import ContextManager, Optional

import torch

from ..utils.errors import ConfigError

AMP_DTYPES = {"": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """The forward-pass autocast context and the gradient scaler (a pass-through unless fp16)."""

    def __init__(self, mode: str, device: torch.device) -> None:
        if mode not in AMP_DTYPES:
            raise ConfigError(f"TRAIN.AMP: unknown mode '{mode}'; expected '' (off), 'bf16' or 'fp16'")
        self.dtype: Optional[torch.dtype] = AMP_DTYPES[mode]
        self.device_type = device.type
        # fp16 gradients underflow without loss scaling; bf16 has float32's exponent range and needs none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype is torch.float16)

    def autocast(self) -> ContextManager:
        """Context for the forward pass."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)
