"""Train DEKR: ``python tools/train.py --cfg FILE [KEY VALUE ...]``.

Several processes (GPUs, nodes, or CPU workers with gloo) are started by torchrun, never by this script:
``torchrun --nproc_per_node N tools/train.py --cfg FILE``. Writes ``checkpoint.pth.tar`` and
``model_best.pth.tar`` every epoch and ``final_state.pth.tar`` at the end into
``<OUTPUT_DIR>/<dataset>/<model>/<cfg name>/``; AUTO_RESUME continues from the checkpoint found there.
"""
import logging
from typing import List, Optional

from posekit.data import build_dataset
from posekit.engine.device import configure_cudnn
from posekit.engine.distributed import init_distributed, shutdown_distributed
from posekit.engine.rng import seed_everything
from posekit.engine.trainer import Trainer
from posekit.models import build_model
from posekit.models.dekr.loss import DekrLoss
from posekit.utils.cli import config_parser, load_cfg_from_args, run_tool
from posekit.utils.run_dirs import setup_run

logger = logging.getLogger("posekit.train")


def main(argv: Optional[List[str]] = None) -> int:
    """Train the model of ``--cfg`` and return the exit code."""
    args = config_parser("Train DEKR (bottom-up pose) with the official recipe").parse_args(argv)
    cfg = load_cfg_from_args(args)
    context = init_distributed(cfg)
    try:
        dirs = setup_run(cfg, args.cfg, "train", is_main=context.is_main)
        if not context.is_main:
            logging.getLogger().setLevel(logging.WARNING)
        logger.info("%s\n%s", args, cfg)
        logger.info("=> %d process(es) on %s", context.world_size, context.device)
        configure_cudnn(cfg)
        # The same seed in every process: identical initial weights and one augmentation stream per item.
        seed_everything(cfg.SEED)
        model = build_model(cfg, is_train=True)
        dataset = build_dataset(cfg, is_train=True)
        Trainer(cfg, model, dataset, DekrLoss(cfg), context, dirs.output, dirs.tensorboard).train()
    finally:
        shutdown_distributed()
    return 0


if __name__ == "__main__":
    run_tool(main)
