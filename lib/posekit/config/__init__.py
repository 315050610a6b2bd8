"""yacs configuration: a base tree, one section per family (``add_<family>_config``) and a loader with clear errors.

Importing this package registers every family's config module found in it.
"""
from ..utils.imports import import_submodules
from .family import ConfigFamily, architecture_name, config_family, family_of, get_cfg, register_config_family
from .loader import load_cfg, merge_opts, merge_yaml

import_submodules(__name__)

__all__ = ["ConfigFamily", "architecture_name", "config_family", "family_of", "get_cfg", "load_cfg",
           "merge_opts", "merge_yaml", "register_config_family"]
