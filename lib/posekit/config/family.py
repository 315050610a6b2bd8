"""Config families: which section a file's tree gets, decided from the file itself.

The rule (documented in docs/architecture.md):
1. a ``FAMILY: name`` key in the file chain or on the command line names the family outright;
2. otherwise, of the registered families whose ``claims(mapping)`` accepts the merged yaml mapping, the
   one with the highest ``priority`` (the detector family claims files with ``MODEL.META_ARCHITECTURE``;
   a family built on it, e.g. DensePose, claims fewer files with a higher priority);
3. otherwise DEKR, the default (``MODEL.NAME: hrnet_dekr`` or no model section at all).
"""
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from yacs.config import CfgNode

from ..utils.registry import Registry
from .base import get_base_cfg

DEFAULT_FAMILY = "dekr"


@dataclass(frozen=True)
class ConfigFamily:
    """How one family extends the base tree and recognises its files."""

    name: str
    add_config: Callable[[CfgNode], None]
    # Whether a merged yaml mapping (without FAMILY) belongs to this family.
    claims: Callable[[Mapping], bool]
    # The config key naming the network in the model registry (e.g. MODEL.NAME).
    architecture_key: str
    # The two folder levels of a run under OUTPUT_DIR: (data set, model), as the family's seeds name them.
    run_folders: Callable[[CfgNode], tuple]
    # Called on the merged, not yet frozen tree: path resolution, warnings, cross-key checks.
    finalize: Callable[[CfgNode, Mapping], None] = lambda cfg, mapping: None
    # Among families claiming a file, the highest priority wins (more specific families rank higher).
    priority: int = 0


_FAMILIES: Registry[ConfigFamily] = Registry("family")


def register_config_family(family: ConfigFamily) -> ConfigFamily:
    """Make ``family`` selectable by load_cfg; its name must be new."""
    return _FAMILIES.register(family.name, family)


def config_family(name: str) -> ConfigFamily:
    """The registered family called ``name`` (ConfigError listing the known ones otherwise)."""
    return _FAMILIES.get(name, "FAMILY")


def detect_family(mapping: Mapping, explicit: Optional[str] = None) -> ConfigFamily:
    """The family of a merged yaml mapping by the rule in this module's docstring."""
    if explicit:
        return config_family(explicit)
    claimants = [family for family in _FAMILIES if family.name != DEFAULT_FAMILY and family.claims(mapping)]
    if claimants:
        return max(claimants, key=lambda family: family.priority)
    return config_family(DEFAULT_FAMILY)


def get_cfg(family: str = DEFAULT_FAMILY) -> CfgNode:
    """A fresh, mutable tree of ``family``'s defaults: the base tree plus the family's section."""
    spec = config_family(family)
    cfg = get_base_cfg()
    spec.add_config(cfg)
    cfg.FAMILY = spec.name
    return cfg


def family_of(cfg: CfgNode) -> ConfigFamily:
    """The family a loaded config belongs to."""
    return config_family(cfg.FAMILY or DEFAULT_FAMILY)


def architecture_name(cfg: CfgNode) -> str:
    """The value of the family's architecture key (the model registry's key), e.g. 'hrnet_dekr'."""
    node = cfg
    for part in family_of(cfg).architecture_key.split("."):
        node = node[part]
    return node
