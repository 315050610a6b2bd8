"""Networks: ``build_model(cfg, is_train)``, ``build_rescore_net(cfg)`` and ``prepare_for_inference(model, device)``."""
from .build import build_model, build_rescore_net, register_model
from .deploy import fold_batch_norms, prepare_for_inference

__all__ = ["build_model", "build_rescore_net", "register_model", "fold_batch_norms", "prepare_for_inference"]
