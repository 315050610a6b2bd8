"""Importing every module of a package, so that families register themselves by being present."""
import importlib
import pkgutil
from typing import List


def import_submodules(package: str) -> List[str]:
    """Import each direct submodule and subpackage of ``package``; return their names, sorted."""
    path = importlib.import_module(package).__path__
    names = sorted(f"{package}.{info.name}" for info in pkgutil.iter_modules(path) if not info.name.startswith("_"))
    for name in names:
        importlib.import_module(name)
    return names
