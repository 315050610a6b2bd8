"""The engine's small parts: optimizer and schedule, RNG capture, resumable sampler, AMP, device, loss curve."""
import io
import random

import numpy as np
import pytest
import torch
from torch import nn

from engine_toys import ToyDataset, ToyDekr, toy_cfg
from posekit.engine.amp import MixedPrecision
from posekit.engine.device import resolve_device
from posekit.engine.loss_curve import moving_average
from posekit.engine.optim import build_lr_scheduler, build_optimizer
from posekit.engine.rng import capture_rng_state, restore_rng_state
from posekit.engine.sampler import ResumableSampler
from posekit.utils.errors import ConfigError


def test_adam_as_official():
    optimizer = build_optimizer(toy_cfg(TRAIN__LR=0.002), ToyDekr())
    assert isinstance(optimizer, torch.optim.Adam)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (0.002, 0, (0.9, 0.999))


def test_sgd_reads_momentum_weight_decay_and_nesterov():
    cfg = toy_cfg(TRAIN__OPTIMIZER="sgd", TRAIN__MOMENTUM=0.8, TRAIN__WD=0.01, TRAIN__NESTEROV=True)
    group = build_optimizer(cfg, ToyDekr()).param_groups[0]
    assert (group["momentum"], group["weight_decay"], group["nesterov"]) == (0.8, 0.01, True)


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match="TRAIN.OPTIMIZER.*rmsprop"):
        build_optimizer(toy_cfg(TRAIN__OPTIMIZER="rmsprop"), ToyDekr())


def learning_rates(cfg, epochs):
    """The learning rate used during each epoch when the schedule is stepped after every epoch."""
    optimizer = build_optimizer(cfg, ToyDekr())
    scheduler = build_lr_scheduler(cfg, optimizer)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_multistep_schedule_per_epoch():
    cfg = toy_cfg(TRAIN__LR=1.0, TRAIN__LR_STEP=[2, 4], TRAIN__LR_FACTOR=0.5)
    assert learning_rates(cfg, 6) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_schedule_starts_at_begin_epoch():
    cfg = toy_cfg(TRAIN__LR=1.0, TRAIN__LR_STEP=[2, 4], TRAIN__LR_FACTOR=0.5, TRAIN__BEGIN_EPOCH=3)
    # Epochs 3, 4, 5.
    assert learning_rates(cfg, 3) == pytest.approx([0.5, 0.25, 0.25])


def draws():
    return random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()


def test_rng_state_round_trips_through_a_weights_only_file():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    state = capture_rng_state()
    expected = draws()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    draws()
    restore_rng_state(torch.load(buffer, weights_only=True))
    assert draws() == expected


def test_resumable_sampler_skips_exactly_the_consumed_indices():
    dataset = ToyDataset(size=10)
    full = ResumableSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=5)
    full.set_epoch(3)
    order = list(full)
    assert sorted(order) == list(range(10)) and order != list(range(10))
    resumed = ResumableSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=5)
    resumed.set_epoch(3, skip=4)
    assert list(resumed) == order[4:] and len(resumed) == 6
    resumed.set_epoch(4)
    assert len(list(resumed)) == 10 and list(resumed) != order


def test_resumable_sampler_shards_cover_the_epoch_once():
    shards = []
    for rank in range(2):
        sampler = ResumableSampler(ToyDataset(size=10), num_replicas=2, rank=rank, shuffle=True, seed=0)
        sampler.set_epoch(1)
        shards.append(list(sampler))
    assert sorted(shards[0] + shards[1]) == list(range(10))


@pytest.mark.parametrize("mode, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_runs_the_forward_in_the_chosen_precision(mode, dtype):
    precision = MixedPrecision(mode, torch.device("cpu"))
    with precision.autocast():
        output = nn.Linear(4, 2)(torch.randn(3, 4))
    assert output.dtype == dtype
    assert precision.scaler.is_enabled() == (mode == "fp16")


def test_no_amp_keeps_float32_and_passes_gradients_through():
    precision = MixedPrecision("", torch.device("cpu"))
    with precision.autocast():
        output = nn.Linear(4, 2)(torch.randn(3, 4))
    assert output.dtype == torch.float32 and not precision.scaler.is_enabled()
    loss = torch.tensor(2.0, requires_grad=True)
    assert precision.scaler.scale(loss) is loss


def test_unknown_amp_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="TRAIN.AMP.*fp8"):
        MixedPrecision("fp8", torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallbacks")
def test_device_resolution_without_cuda():
    assert resolve_device("") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="DEVICE.*CUDA"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="DEVICE.*'gpu0'"):
        resolve_device("gpu0")


def test_moving_average_matches_a_direct_computation():
    values = np.array([4.0, 2.0, 6.0, 1.0, 3.0])
    expected = [4.0, 3.0, 4.0, 3.0, 10.0 / 3.0]  # windows of at most 3 values ending at each position
    assert moving_average(values, 3) == pytest.approx(expected)
