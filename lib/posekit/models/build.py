"""``build_model(cfg, is_train)``: the network a config names, from a registry each family fills.

A family registers its builders in its own package (``models/dekr/__init__.py``); the registry key is
the value of the family's architecture key (``MODEL.NAME`` for DEKR, see ``posekit.config.family``).
"""
from typing import Callable

from torch import nn
from yacs.config import CfgNode

from ..config import architecture_name, family_of
from ..utils.registry import Registry

# builder(cfg, is_train) -> model; with is_train the builder applies the family's training initialisation.
ModelBuilder = Callable[[CfgNode, bool], nn.Module]
_MODELS: Registry[ModelBuilder] = Registry("model")


def register_model(name: str, builder: ModelBuilder) -> None:
    """Make ``builder`` the network of configs whose architecture key is ``name``."""
    _MODELS.register(name, builder)


def build_model(cfg: CfgNode, is_train: bool = False) -> nn.Module:
    """The network named by the config's architecture key; ``is_train`` applies the training initialisation."""
    return _MODELS.get(architecture_name(cfg), family_of(cfg).architecture_key)(cfg, is_train)
