"""The training loop every family shares: DDP under torchrun, mixed precision, clipping, hooks, exact resume.

``model(batch)`` in training mode returns a dict of named scalars; keys starting with ``loss`` are summed
and backpropagated, the others are only logged. The loop counts iterations; an epoch is one pass of the
resumable sampler over the data set, so epoch-based (DEKR) and iteration-based (detectron2) schedules run
on it alike. Every process runs the same loop on its share of each epoch; the losses and the stop
decision are summed over processes once per step, so all processes stop together, whether the time
budget ran out, SIGTERM / SIGINT (Ctrl-C) arrived, or the loss stopped being finite. A signal ends the
current step, the hooks save the checkpoint (mid-epoch: the sampler position and the generators' states are
in it) and ``TrainingInterrupted`` leaves with exit code 128 + the signal number.
"""
import contextlib
import itertools
import logging
import math
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..utils.errors import DataError, PosekitError
from .amp import MixedPrecision
from .distributed import DistContext, sum_over_processes, wrap_model
from .hooks import Hook
from .sampler import ResumableSampler
from .solver import SolverSettings, build_optimizer, iterations_per_epoch
from .training_state import CHECKPOINT_FILE, Progress, restore_training_state

logger = logging.getLogger(__name__)

LOSS_PREFIX = "loss"


class TrainingDiverged(PosekitError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGTERM or SIGINT after saving its checkpoint; ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT and SIGTERM to the main process, which stops after the step and saves:
    Ctrl-C, ``timeout`` and batch schedulers signal the whole process group, and a worker killed by them
    would fail the step instead (the main process ends its workers itself)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def stop_signals_caught(received: list):
    """Within the block, SIGTERM and SIGINT append their number to ``received`` instead of ending the process;
    a second one stops at once (KeyboardInterrupt), for a step that never ends (main thread only; elsewhere
    signals keep their handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop_after_the_step(signum: int, frame) -> None:
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt(f"{signal.Signals(signum).name} received again: stopped at once, without saving")

    previous = {signum: signal.signal(signum, stop_after_the_step) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def move_to_device(batch: object, device: torch.device) -> object:
    """``batch`` with every tensor (and object with ``.to``) in nested dicts, lists and tuples on ``device``."""
    if isinstance(batch, dict):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(value, device) for value in batch)
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return batch.to(device) if hasattr(batch, "to") else batch


class Trainer:
    """Trains ``model`` on ``dataset`` with a family's ``SolverSettings`` and hooks.

    ``collate_fn`` batches items (default: stacking, as for DEKR; detector families keep lists of
    differently sized images). Only the main process writes, through the hooks, into ``output_dir``.
    """

    def __init__(self, model: nn.Module, dataset: Dataset, solver: SolverSettings, context: DistContext,
                 output_dir: Path, hooks: Sequence[Hook] = (), seed: int = 0, workers: int = 0,
                 pin_memory: bool = False, auto_resume: bool = False, model_name: str = "",
                 collate_fn: Optional[Callable] = None) -> None:
        self.context = context
        self.solver = solver
        self.output_dir = Path(output_dir)
        self.model_name = model_name
        self.model = model.to(context.device)
        self.optimizer = build_optimizer(self.model, solver)
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.precision = MixedPrecision(solver.amp, context.device)
        self.hooks = list(hooks)
        self.dataset = dataset
        self.sampler = ResumableSampler(dataset, context.world_size, context.rank, shuffle=True, seed=seed)
        # The loader's own generator keeps worker seeding from consuming the global torch generator.
        self.loader = DataLoader(dataset, batch_size=solver.images_per_batch, sampler=self.sampler,
                                 num_workers=workers, collate_fn=collate_fn,
                                 pin_memory=pin_memory and context.device.type == "cuda",
                                 generator=torch.Generator().manual_seed(seed),
                                 worker_init_fn=_ignore_stop_signals if workers > 0 else None)
        self.iterations_per_epoch = iterations_per_epoch(self.sampler.num_samples, solver)
        if self.iterations_per_epoch == 0:
            raise DataError("the training set is empty: no image to train on (check the data set's annotations)")
        self.max_iter = solver.schedule.total_iterations(self.iterations_per_epoch)
        self.signals: list = []  # stop signals received during train()
        self.progress = self._resume_or_start(auto_resume)
        self.train_model = wrap_model(self.model, context,
                                      find_unused_parameters=getattr(model, "has_unused_parameters", False))

    def _resume_or_start(self, auto_resume: bool) -> Progress:
        checkpoint = self.output_dir / CHECKPOINT_FILE
        if auto_resume and checkpoint.is_file():
            return restore_training_state(checkpoint, self.model, self.optimizer, self.precision.scaler,
                                          self.iterations_per_epoch)
        return Progress(iteration=self.solver.schedule.first_iteration(self.iterations_per_epoch))

    @staticmethod
    def total_loss(values: Dict[str, float]) -> float:
        """The sum of a step's loss terms (entries named loss*)."""
        return sum(value for name, value in values.items() if name.startswith(LOSS_PREFIX))

    def train(self) -> Progress:
        """Train until the schedule ends, the time budget runs out or a stop signal arrives (then, after the
        hooks saved, raise ``TrainingInterrupted``); return how far training got."""
        started = time.monotonic()
        with stop_signals_caught(self.signals):
            for hook in self.hooks:
                hook.before_train(self)
            stopped = False
            while self.progress.iteration < self.max_iter and not stopped:
                stopped = self._train_epoch(started)
            where = "epoch %d, iteration %d" % divmod(self.progress.iteration, self.iterations_per_epoch)
            if stopped and not self.signals:
                logger.info("=> time limit (%ss) reached: stopping at %s", self.solver.max_time, where)
            for hook in self.hooks:
                hook.after_train(self, finished=self.progress.iteration >= self.max_iter)
        if self.signals:
            name = signal.Signals(self.signals[0]).name
            raise TrainingInterrupted(self.signals[0], f"{name} received: stopped at {where} after saving "
                                      f"{self.output_dir / CHECKPOINT_FILE}; rerun with AUTO_RESUME True to continue")
        return self.progress

    def _train_epoch(self, started: float) -> bool:
        """Run the rest of the current epoch (within max_iter); return True when training must stop (time
        budget or a stop signal)."""
        epoch, done = divmod(self.progress.iteration, self.iterations_per_epoch)
        self.sampler.set_epoch(epoch, skip=done * self.solver.images_per_batch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        self.train_model.train()
        steps = min(self.iterations_per_epoch - done, self.max_iter - self.progress.iteration)
        with tqdm(total=self.iterations_per_epoch, initial=done, desc=f"epoch {epoch}",
                  disable=not self.context.is_main, dynamic_ncols=True) as bar:
            # islice stops without loading a batch that would not be trained on.
            for batch in itertools.islice(self.loader, steps):
                for hook in self.hooks:
                    hook.before_step(self)
                losses, out_of_time = self._step(batch, started)
                self.progress.iteration += 1
                self.progress.record(losses)
                for hook in self.hooks:
                    hook.after_step(self, losses)
                bar.update(1)
                bar.set_postfix({name: f"{value:.3e}" for name, value in losses.items()})
                if out_of_time:
                    return True
        return False

    def _step(self, batch, started: float):
        """One optimizer step; returns the process-averaged scalars and whether to stop (time budget or a signal)."""
        batch = move_to_device(batch, self.context.device)
        with self.precision.autocast():
            try:
                outputs = self.train_model(batch)
            except FloatingPointError as err:  # a model's own finiteness check (e.g. the RPN's boxes)
                raise self._diverged({"forward": float("nan")}, str(err)) from None
        # Rank 0's clock decides for everyone, so all processes stop after the same step; a signal to any
        # process stops them all (torchrun forwards SIGTERM to every one).
        out_of_time = bool(self.signals) or \
            (self.context.is_main and 0 < self.solver.max_time < time.monotonic() - started)
        names = list(outputs)
        shared = sum_over_processes(torch.stack([outputs[name].detach().float() for name in names]
                                                + [torch.tensor(float(out_of_time), device=self.context.device)]),
                                    self.context)
        values = dict(zip(names, (shared[:-1] / self.context.world_size).tolist()))
        if not math.isfinite(self.total_loss(values)):
            raise self._diverged(values, "a loss is not finite")
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.scaler.scale(sum(outputs[name] for name in names if name.startswith(LOSS_PREFIX))).backward()
        if self.solver.clip_gradients is not None:
            self.precision.scaler.unscale_(self.optimizer)
            self.solver.clip_gradients([p for group in self.optimizer.param_groups for p in group["params"]])
        self.precision.scaler.step(self.optimizer)
        self.precision.scaler.update()
        return values, bool(shared[-1] > 0)

    def _diverged(self, values: Dict[str, float], reason: str) -> TrainingDiverged:
        checkpoint = self.output_dir / CHECKPOINT_FILE
        kept = f"the last good checkpoint {checkpoint} is kept" if checkpoint.is_file() else "no checkpoint was written"
        epoch, iteration = divmod(self.progress.iteration, self.iterations_per_epoch)
        terms = ", ".join(f"{name} {value}" for name, value in values.items())
        return TrainingDiverged(f"training diverged at epoch {epoch}, iteration {iteration} ({reason}): {terms}; "
                                f"stopped before updating the weights, {kept} (try a lower learning rate, no mixed "
                                f"precision, or check the data)")
