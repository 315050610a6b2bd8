"""Shared test fixtures: paths to the repository, its sample data and its experiment files."""
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (tools/, experiments/, data/samples/ hang off it)."""
    return REPO


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The bundled sample data sets."""
    return REPO / "data" / "samples"


@pytest.fixture(scope="module")
def one_thread():
    """Run torch single-threaded: bitwise comparisons need a fixed thread count, and on a busy 2-core
    machine one thread is many times faster than two competing ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
