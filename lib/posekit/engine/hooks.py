"""Small objects the trainer calls around its steps: learning rate, logging, checkpoints, evaluation.

A family's training set-up picks the hooks it needs; the loop itself has no branch for any of them.
Only the main process writes (checkpoints, logs, tensorboard); every process sets its learning rate.
"""
import logging
import time
from typing import TYPE_CHECKING, Callable, Dict, Optional

from tensorboardX import SummaryWriter

from .loss_curve import draw_loss_curves
from .training_state import BEST_FILE, CHECKPOINT_FILE, FINAL_FILE, save_torch, training_checkpoint

if TYPE_CHECKING:  # the trainer imports this module
    from .trainer import Trainer

logger = logging.getLogger(__name__)

LOSS_CURVE_FILE = "loss_curve.png"


class Hook:
    """Does nothing; subclasses override what they need."""

    def before_train(self, trainer: "Trainer") -> None:
        """Called once, after any resume, before the first step."""

    def before_step(self, trainer: "Trainer") -> None:
        """Called before each optimizer step (``trainer.progress.iteration`` is the step about to run)."""

    def after_step(self, trainer: "Trainer", losses: Dict[str, float]) -> None:
        """Called after each step with its process-averaged losses (iteration already counts it)."""

    def after_train(self, trainer: "Trainer", finished: bool) -> None:
        """Called once at the end; ``finished`` is False when training stopped early (time limit)."""


class LearningRateSchedule(Hook):
    """Sets every parameter group's rate from the schedule before each step."""

    def before_step(self, trainer: "Trainer") -> None:
        for group, base_lr in zip(trainer.optimizer.param_groups, trainer.base_lrs):
            group["lr"] = trainer.solver.schedule.learning_rate(base_lr, trainer.progress.iteration,
                                                                trainer.iterations_per_epoch)


class MetricsLogger(Hook):
    """Every ``period`` steps: every named loss, their sum and the rate to the text log and tensorboardX;
    at the end, the loss curves as a PNG."""

    def __init__(self, period: int, tensorboard_dir: Optional[str]) -> None:
        self.period = max(1, period)
        self.tensorboard_dir = tensorboard_dir
        self.writer: Optional[SummaryWriter] = None

    def before_train(self, trainer: "Trainer") -> None:
        if trainer.context.is_main and self.tensorboard_dir:
            self.writer = SummaryWriter(str(self.tensorboard_dir))
        self.started, self.steps = time.monotonic(), 0

    def after_step(self, trainer: "Trainer", losses: Dict[str, float]) -> None:
        self.steps += 1
        step = trainer.progress.iteration - 1  # index of the step just taken, so step 0 is logged
        if not trainer.context.is_main or step % self.period:
            return
        learning_rate = trainer.optimizer.param_groups[0]["lr"]
        images = self.steps * trainer.solver.images_per_batch * trainer.context.world_size
        speed = images / max(time.monotonic() - self.started, 1e-9)
        epoch, in_epoch = divmod(step, trainer.iterations_per_epoch)
        terms = "\t".join(f"{name} {value:.3e}" for name, value in losses.items())
        logger.info("Epoch: [%d][%d/%d]\tIteration %d/%d\tSpeed %.1f samples/s\t%s\tlr %.2e", epoch, in_epoch + 1,
                    trainer.iterations_per_epoch, step + 1, trainer.max_iter, speed, terms, learning_rate)
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f"train/{name}", value, step)
            self.writer.add_scalar("train/total_loss", trainer.total_loss(losses), step)
            self.writer.add_scalar("train/learning_rate", learning_rate, step)

    def after_train(self, trainer: "Trainer", finished: bool) -> None:
        if self.writer is not None:
            self.writer.close()
        if trainer.context.is_main and trainer.progress.loss_history:
            draw_loss_curves(trainer.progress.loss_history, trainer.output_dir / LOSS_CURVE_FILE)


class Checkpointer(Hook):
    """``checkpoint.pth.tar`` every ``period`` steps (0: at the end of every epoch, with ``model_best.pth.tar``
    as DEKR officially writes it) and when training stops, so a rerun resumes exactly there; and
    ``final_state.pth.tar`` (the last weights) whenever training stops, done or not."""

    def __init__(self, period: int = 0) -> None:
        self.period = period
        self.saved_at = -1

    def after_step(self, trainer: "Trainer", losses: Dict[str, float]) -> None:
        iteration = trainer.progress.iteration
        if self.period > 0 and iteration % self.period == 0:
            self.save(trainer)
        elif self.period == 0 and iteration % trainer.iterations_per_epoch == 0:
            self.save(trainer)
            if trainer.context.is_main:
                save_torch(trainer.output_dir / BEST_FILE, trainer.model.state_dict())

    def after_train(self, trainer: "Trainer", finished: bool) -> None:
        if self.saved_at != trainer.progress.iteration:
            self.save(trainer)
        if trainer.context.is_main:
            save_torch(trainer.output_dir / FINAL_FILE, trainer.model.state_dict())
            logger.info("=> saved the %s weights to %s", "final" if finished else "latest (unfinished run)",
                        trainer.output_dir / FINAL_FILE)

    def save(self, trainer: "Trainer") -> None:
        """Write the resumable checkpoint (main process only)."""
        self.saved_at = trainer.progress.iteration
        if not trainer.context.is_main:
            return
        path = trainer.output_dir / CHECKPOINT_FILE
        save_torch(path, training_checkpoint(trainer.model, trainer.model_name, trainer.optimizer,
                                             trainer.precision.scaler, trainer.progress,
                                             trainer.iterations_per_epoch))
        logger.info("=> saved checkpoint to %s (epoch %d, iteration %d)", path,
                    *divmod(trainer.progress.iteration, trainer.iterations_per_epoch))


class PeriodicEvaluation(Hook):
    """Calls ``evaluate(model) -> metrics`` every ``period`` steps and at the end; logs the metrics."""

    def __init__(self, period: int, evaluate: Callable[..., Optional[Dict[str, float]]]) -> None:
        self.period = period
        self.evaluate = evaluate
        self.results: Dict[int, Dict[str, float]] = {}

    def after_step(self, trainer: "Trainer", losses: Dict[str, float]) -> None:
        if self.period > 0 and trainer.progress.iteration % self.period == 0:
            self._run(trainer)

    def after_train(self, trainer: "Trainer", finished: bool) -> None:
        if finished and trainer.progress.iteration not in self.results:
            self._run(trainer)

    def _run(self, trainer: "Trainer") -> None:
        was_training = trainer.model.training
        metrics = self.evaluate(trainer.model.eval()) or {}
        trainer.model.train(was_training)
        self.results[trainer.progress.iteration] = metrics
        if trainer.context.is_main and metrics:
            logger.info("=> evaluation at iteration %d: %s", trainer.progress.iteration,
                        ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
