"""Train DEKR's rescore net: ``python tools/train_scorenet.py --cfg FILE [KEY VALUE ...]``.

Reads the poses and OKS values that ``tools/valid.py`` wrote with ``RESCORE.GET_DATA True`` to
RESCORE.DATA_FILE and saves the trained state dict (keys l1, l2, l3) to RESCORE.MODEL_FILE.
"""
import logging
from typing import List, Optional

from posekit.data.metadata import keypoint_set_from_cfg
from posekit.engine.device import resolve_device
from posekit.apis.dekr.rescore_training import init_rescore_weights, rescore_training_set, train_rescore_net
from posekit.engine.rng import seed_everything
from posekit.engine.training_state import save_torch
from posekit.evaluation import load_rescore_data
from posekit.models.dekr import build_rescore_net
from posekit.apis.cli import config_parser, load_cfg_from_args, run_tool
from posekit.engine.run_dirs import configure_logging

logger = logging.getLogger("posekit.train_scorenet")


def main(argv: Optional[List[str]] = None) -> int:
    """Train the rescore net of ``--cfg`` and return the exit code."""
    args = config_parser("Train DEKR's rescore net on data written by valid.py").parse_args(argv)
    cfg = load_cfg_from_args(args)
    configure_logging()
    seed_everything(cfg.SEED)
    data = load_rescore_data(cfg.RESCORE.DATA_FILE)
    features, targets = rescore_training_set(data.keypoints, data.oks, keypoint_set_from_cfg(cfg))
    logger.info("=> %d poses with %d features from %s", len(features), features.shape[1], cfg.RESCORE.DATA_FILE)
    net = build_rescore_net(cfg)
    init_rescore_weights(net)
    net.to(resolve_device(cfg.DEVICE))
    train_rescore_net(net, features, targets, cfg.RESCORE.END_EPOCH, cfg.RESCORE.BATCHSIZE, cfg.RESCORE.LR)
    save_torch(cfg.RESCORE.MODEL_FILE, {key: value.cpu() for key, value in net.state_dict().items()})
    logger.info("=> saved the rescore net to %s", cfg.RESCORE.MODEL_FILE)
    return 0


if __name__ == "__main__":
    run_tool(main)
