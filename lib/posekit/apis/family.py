"""What the tools need from a family, registered by the family's own ``apis/<family>/`` package.

``tools/train.py``, ``tools/valid.py`` and ``tools/inference_demo.py`` are the same scripts for every
family: they look the family up from the config (``posekit.config.family_of``) and call these entries.
"""
import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from torch.utils.data import Dataset
from yacs.config import CfgNode

from ..config import family_of
from ..engine import Hook, SolverSettings
from ..utils.registry import Registry


@dataclass
class TrainingSetup:
    """A family's training data and recipe for the shared trainer."""

    dataset: Dataset
    solver: SolverSettings
    collate_fn: Optional[Callable] = None
    # Checkpoint every this many iterations; 0: at the end of every epoch (DEKR's official rhythm).
    checkpoint_period: int = 0
    hooks: List[Hook] = field(default_factory=list)


@dataclass(frozen=True)
class FamilyTools:
    """Entry points of one family behind the generic tools."""

    name: str
    # cfg -> training data and recipe (the model comes from posekit.models.build_model).
    training: Callable[[CfgNode], TrainingSetup]
    # (cfg, run output folder) -> metrics, or None when nothing was scored.
    validate: Callable[[CfgNode, Path], Optional[Dict[str, float]]]
    # cfg -> the family's estimator (``.predict(image)``, ``.predict_batch(images)``).
    estimator: Callable[[CfgNode], Any]
    # (cfg, parsed inference_demo arguments) -> a summary printed by the tool; None: the family has none yet.
    video_demo: Optional[Callable[[CfgNode, argparse.Namespace], str]]
    # cfg -> TEST.EXPECTED_RESULTS-like entries [[metric, value, tolerance], ...].
    expected_results: Callable[[CfgNode], Sequence] = lambda cfg: []
    # (cfg, parsed inference_demo arguments with .images: image paths) -> a summary; None: no image demo.
    image_demo: Optional[Callable[[CfgNode, argparse.Namespace], str]] = None
    # The boolean config key the tools' --skip-missing sets ('' : the family has none).
    skip_missing_key: str = ""


# Video frames handed to an estimator's predict_batch at once by default (tools/inference_demo.py --batchSize).
FRAMES_PER_BATCH = 8

_TOOLS: Registry[FamilyTools] = Registry("family with tools")


def register_family_tools(tools: FamilyTools) -> FamilyTools:
    """Make ``tools`` the entry points of the config family of the same name."""
    return _TOOLS.register(tools.name, tools)


def family_tools(cfg: CfgNode) -> FamilyTools:
    """The entry points of ``cfg``'s family."""
    return _TOOLS.get(family_of(cfg).name, "FAMILY")
