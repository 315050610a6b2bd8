"""Shared test fixtures: paths to the repository, its sample data and its experiment files."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (tools/, experiments/, data/samples/ hang off it)."""
    return REPO


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The bundled sample data sets."""
    return REPO / "data" / "samples"
