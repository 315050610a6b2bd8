"""Training and checkpoint machinery."""
from .checkpoint import load_pretrained, load_weights, read_state_dict

__all__ = ["load_pretrained", "load_weights", "read_state_dict"]
