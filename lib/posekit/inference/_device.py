"""Where a model lives, for placing its inputs."""
import torch


def module_device(model: object) -> torch.device:
    """Device of the first parameter of an ``nn.Module``; CPU for parameterless modules and plain callables."""
    parameters = getattr(model, "parameters", None)
    if parameters is not None:
        for parameter in parameters():
            return parameter.device
    return torch.device("cpu")
