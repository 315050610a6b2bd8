"""What tools/train.py does for any family: distributed set-up, run folders, the shared trainer and its hooks."""
import logging

from yacs.config import CfgNode

from ..config import architecture_name
from ..engine import Checkpointer, LearningRateSchedule, MetricsLogger, Trainer
from ..engine.device import configure_cudnn
from ..engine.distributed import init_distributed, shutdown_distributed
from ..engine.rng import seed_everything
from ..engine.run_dirs import check_run_config, save_run_config, setup_run
from ..engine.training_state import Progress
from ..models import build_model
from .family import family_tools

logger = logging.getLogger("posekit.train")


def run_training(cfg: CfgNode, cfg_path: str, new_run: bool = False) -> Progress:
    """Train the config's model with its family's data and recipe; return how far training got.

    A run folder whose config.yaml differs is refused unless ``new_run``, which starts afresh there
    (no resume); config.yaml is written once data, model and trainer are ready.
    """
    context = init_distributed(cfg)
    try:
        dirs = setup_run(cfg, cfg_path, "train", is_main=context.is_main)
        check_run_config(cfg, dirs.output, new_run)
        if not context.is_main:
            logging.getLogger().setLevel(logging.WARNING)
        logger.info("=> %d process(es) on %s", context.world_size, context.device)
        configure_cudnn(cfg)
        # The same seed in every process: identical initial weights and one augmentation stream per item.
        seed_everything(cfg.SEED)
        model = build_model(cfg, is_train=True)
        setup = family_tools(cfg).training(cfg)
        hooks = [LearningRateSchedule(), MetricsLogger(cfg.PRINT_FREQ, dirs.tensorboard),
                 Checkpointer(setup.checkpoint_period), *setup.hooks]
        trainer = Trainer(model, setup.dataset, setup.solver, context, dirs.output, hooks, seed=cfg.SEED,
                          workers=cfg.WORKERS, pin_memory=cfg.PIN_MEMORY,
                          auto_resume=cfg.AUTO_RESUME and not new_run,
                          model_name=architecture_name(cfg), collate_fn=setup.collate_fn)
        if context.is_main:
            save_run_config(cfg, dirs.output)
        return trainer.train()
    finally:
        shutdown_distributed()
