"""``build_model(cfg)``: the network named by ``MODEL.NAME``; ``build_rescore_net(cfg)``: DEKR's rescore MLP."""
import os
from typing import Callable, Dict

from torch import nn
from yacs.config import CfgNode

from ..data.metadata import keypoint_set_from_cfg
from ..engine.checkpoint import load_pretrained
from ..utils.errors import CheckpointError, ConfigError
from .dekr.model import DEKR
from .dekr.rescore import RescoreNet

ModelBuilder = Callable[[CfgNode], nn.Module]
_MODELS: Dict[str, ModelBuilder] = {}


def register_model(name: str, builder: ModelBuilder) -> None:
    """Make ``builder(cfg)`` available as ``MODEL.NAME: name``."""
    _MODELS[name] = builder


register_model("hrnet_dekr", DEKR.from_config)


def build_model(cfg: CfgNode, is_train: bool = False) -> nn.Module:
    """The ``MODEL.NAME`` network; for training with MODEL.INIT_WEIGHTS, official init and pretrained backbone."""
    name = cfg.MODEL.NAME
    if name not in _MODELS:
        raise ConfigError(f"MODEL.NAME: unknown model '{name}'; known: {', '.join(sorted(_MODELS))}")
    model = _MODELS[name](cfg)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights()
        pretrained = cfg.MODEL.PRETRAINED
        # The official update_config joins '' to DATA_DIR, giving a directory: that means "none".
        if pretrained and not os.path.isdir(pretrained):
            if not os.path.isfile(pretrained):
                raise CheckpointError(f"MODEL.PRETRAINED: file not found: {pretrained} "
                                      f"(set MODEL.PRETRAINED '' to train from scratch)")
            load_pretrained(model, pretrained, cfg.MODEL.SPEC.get("PRETRAINED_LAYERS", ["*"]))
    return model


def build_rescore_net(cfg: CfgNode) -> RescoreNet:
    """The rescore MLP for the config's keypoint set (input width from its rescore links)."""
    return RescoreNet(keypoint_set_from_cfg(cfg).rescore_feature_size, cfg.RESCORE.HIDDEN_LAYER)
