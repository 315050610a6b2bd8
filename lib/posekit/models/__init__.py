"""Networks: ``build_model(cfg, is_train)`` and ``build_rescore_net(cfg)``."""
from .build import build_model, build_rescore_net, register_model

__all__ = ["build_model", "build_rescore_net", "register_model"]
