"""High-level entry points: one estimator per family and the logic behind the generic tools.

Importing this package registers every family's tools found in it (``apis/<family>/``).
"""
from typing import Any

from yacs.config import CfgNode

from ..utils.imports import import_submodules
from .densepose import DensePoseEstimator
from .family import FamilyTools, TrainingSetup, family_tools, register_family_tools

import_submodules(__name__)


def PoseEstimator(cfg: CfgNode) -> Any:  # noqa: N802 (the README's entry point, kept for every family)
    """The estimator of ``cfg``'s family (e.g. ``DekrEstimator``), with its weights loaded."""
    return family_tools(cfg).estimator(cfg)


__all__ = ["DensePoseEstimator", "FamilyTools", "PoseEstimator", "TrainingSetup", "family_tools", "register_family_tools"]
