"""Building DEKR from a config: the network, its training initialisation and ImageNet weights; the rescore net."""
import logging
import os

from yacs.config import CfgNode

from ...data.metadata import keypoint_set_from_cfg
from ...utils.errors import CheckpointError
from ..build import register_model
from ..checkpoint import load_pretrained
from .model import DEKR
from .rescore import RescoreNet

logger = logging.getLogger(__name__)


def build_dekr(cfg: CfgNode, is_train: bool) -> DEKR:
    """DEKR; for training with MODEL.INIT_WEIGHTS, the official init and the MODEL.PRETRAINED backbone."""
    model = DEKR.from_config(cfg)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights()
        pretrained = cfg.MODEL.PRETRAINED
        # The official update_config joins '' to DATA_DIR, giving a directory: that means "none".
        if pretrained and not os.path.isdir(pretrained):
            if not os.path.isfile(pretrained):
                raise CheckpointError(f"MODEL.PRETRAINED: file not found: {pretrained} "
                                      f"(set MODEL.PRETRAINED '' to train from scratch)")
            loaded = load_pretrained(model, pretrained, cfg.MODEL.SPEC.get("PRETRAINED_LAYERS", ["*"]))
            # Official: VERBOSE False silences the pretrained-loading lines.
            logger.log(logging.INFO if cfg.VERBOSE else logging.DEBUG,
                       "=> initialised %d model entries from %s", len(loaded), pretrained)
    return model


def build_rescore_net(cfg: CfgNode) -> RescoreNet:
    """The rescore MLP for the config's keypoint set (input width from its rescore links)."""
    return RescoreNet(keypoint_set_from_cfg(cfg).rescore_feature_size, cfg.RESCORE.HIDDEN_LAYER)


register_model("hrnet_dekr", build_dekr)
