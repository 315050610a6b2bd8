"""Which device a process computes on (config key DEVICE) and the cuDNN flags of the CUDNN section."""
import torch
from yacs.config import CfgNode

from ..utils.errors import ConfigError


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """The device named by DEVICE: '' = this process's GPU when CUDA is available, else the CPU.

    'cuda' without an index means the GPU of this process's local rank, as torchrun assigns them.
    """
    if not spec:
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"DEVICE: '{spec}' is not a device name; expected '', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"DEVICE: '{spec}' asks for CUDA but this torch sees no GPU; use DEVICE cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise ConfigError(f"DEVICE: '{spec}' (GPU {device.index}) but only "
                              f"{torch.cuda.device_count()} GPU(s) are visible")
    return device


def configure_cudnn(cfg: CfgNode) -> None:
    """Apply CUDNN.BENCHMARK / DETERMINISTIC / ENABLED as the official tools do."""
    torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
    torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
    torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
