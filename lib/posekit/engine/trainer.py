"""The DEKR training loop: DDP under torchrun, mixed precision, per-epoch checkpoints and exact resume.

Every process runs the same loop on its share of each epoch (``ResumableSampler``); the losses and the
stop decision are summed over processes once per step, so all processes stop together, whether the
time budget ran out (TRAIN.MAX_TIME) or the loss stopped being finite.
"""
import itertools
import logging
import math
import time
from pathlib import Path
from typing import Optional, Tuple

import torch
from tensorboardX import SummaryWriter
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from yacs.config import CfgNode

from ..utils.errors import ConfigError, PosekitError
from .amp import MixedPrecision
from .distributed import DistContext, sum_over_processes, wrap_model
from .loss_curve import draw_loss_curve
from .optim import build_lr_scheduler, build_optimizer
from .sampler import ResumableSampler
from .training_state import (BEST_FILE, CHECKPOINT_FILE, FINAL_FILE, Progress, restore_training_state, save_torch,
                             training_checkpoint)

logger = logging.getLogger(__name__)

LOSS_CURVE_FILE = "loss_curve.png"


class TrainingDiverged(PosekitError):
    """The training loss became NaN or infinite."""


class Trainer:
    """Trains ``model`` on ``dataset`` with ``criterion`` as configured by the TRAIN section.

    ``criterion(heatmap, offset, *targets)`` returns (heatmap loss, offset loss), either possibly None.
    Only the main process writes: checkpoints to ``output_dir``, scalars to ``tensorboard_dir``.
    """

    def __init__(self, cfg: CfgNode, model: nn.Module, dataset: Dataset, criterion: nn.Module,
                 context: DistContext, output_dir: Path, tensorboard_dir: Optional[Path] = None) -> None:
        self.cfg = cfg
        self.context = context
        self.output_dir = Path(output_dir)
        self.model = model.to(context.device)
        self.criterion = criterion
        self.dataset = dataset
        self.optimizer = build_optimizer(cfg, self.model)
        self.scheduler = build_lr_scheduler(cfg, self.optimizer)
        self.precision = MixedPrecision(cfg.TRAIN.AMP, context.device)
        if not (cfg.LOSS.WITH_HEATMAPS_LOSS or cfg.LOSS.WITH_OFFSETS_LOSS):
            raise ConfigError("LOSS.WITH_HEATMAPS_LOSS and LOSS.WITH_OFFSETS_LOSS are both False: nothing to train")
        self.progress = self._resume_or_start()
        # A head whose loss is switched off gets no gradient, which DDP must be told about.
        all_losses_on = cfg.LOSS.WITH_HEATMAPS_LOSS and cfg.LOSS.WITH_OFFSETS_LOSS
        self.train_model = wrap_model(self.model, context, find_unused_parameters=not all_losses_on)
        self.sampler = ResumableSampler(dataset, context.world_size, context.rank, shuffle=True, seed=cfg.SEED)
        # The loader's own generator keeps worker seeding from consuming the global torch generator.
        self.loader = DataLoader(dataset, batch_size=cfg.TRAIN.IMAGES_PER_GPU, sampler=self.sampler,
                                 num_workers=cfg.WORKERS, pin_memory=cfg.PIN_MEMORY and context.device.type == "cuda",
                                 generator=torch.Generator().manual_seed(cfg.SEED))
        self.writer = SummaryWriter(str(tensorboard_dir)) if context.is_main and tensorboard_dir else None

    @property
    def iterations_per_epoch(self) -> int:
        """Steps per epoch and process: the whole shard, or TRAIN.MAX_ITERS_PER_EPOCH when smaller."""
        full = math.ceil(self.sampler.num_samples / self.cfg.TRAIN.IMAGES_PER_GPU)
        limit = self.cfg.TRAIN.MAX_ITERS_PER_EPOCH
        return min(full, limit) if limit > 0 else full

    def train(self) -> Progress:
        """Train until TRAIN.END_EPOCH or TRAIN.MAX_TIME; return how far training got."""
        started = time.monotonic()
        try:
            while self.progress.epoch < self.cfg.TRAIN.END_EPOCH:
                out_of_time = self._train_epoch(started)
                if self.progress.iteration >= self.iterations_per_epoch:
                    self._finish_epoch()
                else:
                    self._save_checkpoint()
                if out_of_time:
                    logger.info("=> TRAIN.MAX_TIME (%ss) reached: stopping at epoch %d, iteration %d",
                                self.cfg.TRAIN.MAX_TIME, self.progress.epoch, self.progress.iteration)
                    break
            if self.progress.epoch >= self.cfg.TRAIN.END_EPOCH and self.context.is_main:
                save_torch(self.output_dir / FINAL_FILE, self.model.state_dict())
                logger.info("=> saved final weights to %s", self.output_dir / FINAL_FILE)
            self._draw_loss_curve()
        finally:
            if self.writer is not None:
                self.writer.close()
        return self.progress

    def _resume_or_start(self) -> Progress:
        checkpoint = self.output_dir / CHECKPOINT_FILE
        if self.cfg.AUTO_RESUME and checkpoint.is_file():
            return restore_training_state(checkpoint, self.model, self.optimizer, self.scheduler,
                                          self.precision.scaler)
        return Progress(epoch=self.cfg.TRAIN.BEGIN_EPOCH)

    def _train_epoch(self, started: float) -> bool:
        """Run the rest of the current epoch; return True when the time budget ran out first."""
        epoch = self.progress.epoch
        self.sampler.set_epoch(epoch, skip=self.progress.iteration * self.cfg.TRAIN.IMAGES_PER_GPU)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        self.train_model.train()
        bar = tqdm(total=self.iterations_per_epoch, initial=self.progress.iteration, desc=f"epoch {epoch}",
                   disable=not self.context.is_main, dynamic_ncols=True)
        out_of_time = False
        epoch_started, steps_done = time.monotonic(), 0
        remaining = max(self.iterations_per_epoch - self.progress.iteration, 0)
        with bar:
            # islice stops without loading a batch that would not be trained on.
            for batch in itertools.islice(self.loader, remaining):
                heatmap_loss, offset_loss, out_of_time = self._step(batch, started)
                steps_done += 1
                self.progress.iteration += 1
                self.progress.loss_history.append((heatmap_loss, offset_loss))
                self._log_step(heatmap_loss, offset_loss, epoch_started, steps_done)
                bar.update(1)
                bar.set_postfix(heatmap=f"{heatmap_loss:.3e}", offset=f"{offset_loss:.3e}")
                if out_of_time:
                    break
        return out_of_time

    def _step(self, batch, started: float) -> Tuple[float, float, bool]:
        """One optimizer step; returns the process-averaged losses and whether the time budget ran out."""
        images, *targets = (tensor.to(self.context.device, non_blocking=True) for tensor in batch)
        with self.precision.autocast():
            heatmap, offset = self.train_model(images)
        losses = self.criterion(heatmap, offset, *targets)
        # Rank 0's clock decides for everyone, so all processes stop after the same step.
        out_of_time = self.context.is_main and 0 < self.cfg.TRAIN.MAX_TIME < time.monotonic() - started
        shared = sum_over_processes(torch.stack([self._detached(losses[0]), self._detached(losses[1]),
                                                 torch.tensor(float(out_of_time), device=self.context.device)]),
                                    self.context)
        heatmap_loss, offset_loss = (shared[:2] / self.context.world_size).tolist()
        if not math.isfinite(heatmap_loss + offset_loss):
            raise self._diverged(heatmap_loss, offset_loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.scaler.scale(sum(loss for loss in losses if loss is not None)).backward()
        self.precision.scaler.step(self.optimizer)
        self.precision.scaler.update()
        return heatmap_loss, offset_loss, bool(shared[2] > 0)

    def _detached(self, loss: Optional[torch.Tensor]) -> torch.Tensor:
        if loss is None:
            return torch.zeros((), device=self.context.device)
        return loss.detach().float()

    def _diverged(self, heatmap_loss: float, offset_loss: float) -> TrainingDiverged:
        checkpoint = self.output_dir / CHECKPOINT_FILE
        kept = f"the last good checkpoint {checkpoint} is kept" if checkpoint.is_file() else "no checkpoint was written"
        return TrainingDiverged(
            f"training diverged at epoch {self.progress.epoch}, iteration {self.progress.iteration}: heatmap loss "
            f"{heatmap_loss}, offset loss {offset_loss}; stopped before updating the weights, {kept} "
            f"(try a lower TRAIN.LR, TRAIN.AMP '' or check the data)")

    def _log_step(self, heatmap_loss: float, offset_loss: float, epoch_started: float, steps_done: int) -> None:
        step = self.progress.global_step - 1  # index of the step just taken, so step 0 is logged
        if not self.context.is_main or step % self.cfg.PRINT_FREQ:
            return
        learning_rate = self.optimizer.param_groups[0]["lr"]
        images = steps_done * self.cfg.TRAIN.IMAGES_PER_GPU * self.context.world_size
        speed = images / max(time.monotonic() - epoch_started, 1e-9)
        logger.info("Epoch: [%d][%d/%d]\tSpeed %.1f samples/s\tHeatmaps loss %.3e\tOffset loss %.3e\tlr %.2e",
                    self.progress.epoch, self.progress.iteration, self.iterations_per_epoch, speed,
                    heatmap_loss, offset_loss, learning_rate)
        if self.writer is not None:
            self.writer.add_scalar("train_heatmap_loss", heatmap_loss, step)
            self.writer.add_scalar("train_offset_loss", offset_loss, step)
            self.writer.add_scalar("train_loss", heatmap_loss + offset_loss, step)
            self.writer.add_scalar("learning_rate", learning_rate, step)

    def _finish_epoch(self) -> None:
        """Step the schedule, move to the next epoch and write the epoch's checkpoint and best model."""
        self.scheduler.step()
        self.progress.epoch += 1
        self.progress.iteration = 0
        self._save_checkpoint()
        if self.context.is_main:
            save_torch(self.output_dir / BEST_FILE, self.model.state_dict())

    def _save_checkpoint(self) -> None:
        if not self.context.is_main:
            return
        path = self.output_dir / CHECKPOINT_FILE
        save_torch(path, training_checkpoint(self.model, self.cfg.MODEL.NAME, self.optimizer, self.scheduler,
                                             self.precision.scaler, self.progress))
        logger.info("=> saved checkpoint to %s (epoch %d, iteration %d)", path, self.progress.epoch,
                    self.progress.iteration)

    def _draw_loss_curve(self) -> None:
        if self.context.is_main and self.progress.loss_history:
            totals = [heatmap + offset for heatmap, offset in self.progress.loss_history]
            draw_loss_curve(totals, self.output_dir / LOSS_CURVE_FILE)
