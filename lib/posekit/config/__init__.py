"""yacs configuration: defaults with the official DEKR key names, and a loader with clear errors."""
from .defaults import get_cfg
from .loader import load_cfg, merge_opts, merge_yaml

__all__ = ["get_cfg", "load_cfg", "merge_opts", "merge_yaml"]
