"""Small typed containers shared by the model families."""
from .instances import DensePosePoints, Instances

__all__ = ["DensePosePoints", "Instances"]
