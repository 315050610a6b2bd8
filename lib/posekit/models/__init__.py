"""Networks: ``build_model(cfg, is_train)`` over a registry each family's subpackage fills, weight loading,
and ``prepare_for_inference(model, device)``."""
from ..utils.imports import import_submodules
from .build import build_model, register_model
from .checkpoint import load_pretrained, load_weights, read_state_dict
from .deploy import fold_batch_norms, prepare_for_inference

import_submodules(__name__)

__all__ = ["build_model", "register_model", "fold_batch_norms", "load_pretrained", "load_weights",
           "prepare_for_inference", "read_state_dict"]
