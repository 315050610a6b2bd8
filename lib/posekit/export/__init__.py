"""Deployment exports of posekit networks."""
from .onnx import export_dekr, to_onnx

__all__ = ["export_dekr", "to_onnx"]
