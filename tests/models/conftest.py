"""Fixtures for model tests: experiment configs and a tiny DEKR."""
from pathlib import Path
from typing import Callable

import pytest
import torch
from yacs.config import CfgNode

from posekit.config import load_cfg
from posekit.models import build_model

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.fixture(scope="session")
def experiment_cfg() -> Callable[..., CfgNode]:
    """``experiment_cfg('coco/w32/x.yaml', 'KEY', 'VALUE', ...)``: that experiment's config with overrides."""
    def load(relative: str, *opts: str) -> CfgNode:
        return load_cfg(str(EXPERIMENTS / relative), list(opts))
    return load


@pytest.fixture
def tiny_cfg(experiment_cfg) -> CfgNode:
    """The sample tiny DEKR config (K = 17, widths 8/16/32/64)."""
    return experiment_cfg("samples/dekr_tiny_coco.yaml")


@pytest.fixture
def tiny_model(tiny_cfg) -> torch.nn.Module:
    """The tiny DEKR with a fixed random initialisation, in eval mode."""
    torch.manual_seed(0)
    return build_model(tiny_cfg).eval()
