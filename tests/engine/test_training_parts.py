"""The engine's small parts: optimizer and schedule, RNG capture, resumable sampler, AMP, device, loss curve."""
import io
import random

import numpy as np
import pytest
import torch
from torch import nn

from engine_toys import ToyDataset, ToyModel
from posekit.apis.dekr.training import dekr_solver
from posekit.config import get_cfg
from posekit.engine import GradientClipping, Schedule, SolverSettings, build_optimizer
from posekit.engine.amp import MixedPrecision
from posekit.engine.device import resolve_device
from posekit.engine.loss_curve import moving_average
from posekit.engine.rng import capture_rng_state, restore_rng_state
from posekit.engine.sampler import ResumableSampler
from posekit.utils.errors import ConfigError


def dekr_toy_cfg(**train):
    cfg = get_cfg()
    for key, value in train.items():
        cfg.TRAIN[key] = value
    return cfg


def test_dekr_adam_as_official():
    model = ToyModel()
    optimizer = build_optimizer(model, dekr_solver(dekr_toy_cfg(LR=0.002)))
    assert isinstance(optimizer, torch.optim.Adam) and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (0.002, 0, (0.9, 0.999))
    assert group["params"] == list(model.parameters())


def test_dekr_sgd_reads_momentum_weight_decay_and_nesterov():
    cfg = dekr_toy_cfg(OPTIMIZER="sgd", MOMENTUM=0.8, WD=0.01, NESTEROV=True)
    group = build_optimizer(ToyModel(), dekr_solver(cfg)).param_groups[0]
    assert (group["momentum"], group["weight_decay"], group["nesterov"]) == (0.8, 0.01, True)


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match="TRAIN.OPTIMIZER.*rmsprop"):
        build_optimizer(ToyModel(), dekr_solver(dekr_toy_cfg(OPTIMIZER="rmsprop")))


def rates(schedule, iterations, iterations_per_epoch=1, base_lr=1.0):
    return [schedule.learning_rate(base_lr, i, iterations_per_epoch) for i in iterations]


def test_dekr_schedule_steps_after_epochs():
    schedule = dekr_solver(dekr_toy_cfg(LR=1.0, LR_STEP=[2, 4], LR_FACTOR=0.5, END_EPOCH=6)).schedule
    # 5 iterations per epoch: epochs 0-1 at 1, 2-3 at 0.5, 4-5 at 0.25.
    assert rates(schedule, [0, 9, 10, 19, 20, 29], 5) == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert schedule.total_iterations(5) == 30 and schedule.first_iteration(5) == 0


def test_dekr_schedule_starts_at_begin_epoch():
    schedule = dekr_solver(dekr_toy_cfg(LR=1.0, LR_STEP=[2, 4], LR_FACTOR=0.5, BEGIN_EPOCH=3)).schedule
    assert schedule.first_iteration(5) == 15
    assert rates(schedule, [15, 20], 5) == [0.5, 0.25]


def test_dekr_rates_equal_torch_multistep_lr_bit_for_bit():
    schedule = Schedule(unit="epoch", length=140, steps=(90, 110), gamma=0.1)
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.001)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [90, 110], 0.1)
    for epoch in range(140):
        assert schedule.learning_rate(0.001, epoch * 3 + 2, 3) == optimizer.param_groups[0]["lr"], epoch
        optimizer.step()
        scheduler.step()


def test_linear_warmup_and_steps_by_hand():
    schedule = Schedule(unit="iteration", length=10, steps=(6, 8), gamma=0.1, warmup_iters=4, warmup_factor=0.001)
    # Linear warm-up: factor 0.001 (1 - i/4) + i/4; then x0.1 at 6 and at 8.
    expected = [0.02 * 0.001, 0.02 * (0.001 * 0.75 + 0.25), 0.02 * (0.001 * 0.5 + 0.5),
                0.02 * (0.001 * 0.25 + 0.75), 0.02, 0.02, 0.002, 0.002, 0.0002, 0.0002]
    assert rates(schedule, range(10), base_lr=0.02) == pytest.approx(expected, rel=1e-12)
    constant = Schedule(unit="iteration", length=10, steps=(), gamma=0.1, warmup_iters=2, warmup_factor=0.25,
                        warmup_method="constant")
    assert rates(constant, range(4)) == [0.25, 0.25, 1.0, 1.0]


def test_bad_schedules_are_refused():
    with pytest.raises(ConfigError, match="warm-up method 'cosine'"):
        Schedule(unit="iteration", length=10, steps=(), gamma=0.1, warmup_method="cosine")
    with pytest.raises(ConfigError, match="must increase"):
        Schedule(unit="iteration", length=10, steps=(8, 6), gamma=0.1)


def test_parameter_groups_take_norm_and_bias_rules():
    model = ToyModel()  # conv (weight, bias), batch norm (weight, bias), 1x1 conv and linear (weight, bias)
    settings = SolverSettings(optimizer="sgd", base_lr=0.1, images_per_batch=1, weight_decay=1e-4,
                              weight_decay_norm=0.0, weight_decay_bias=1e-5, bias_lr_factor=2.0,
                              schedule=Schedule(unit="iteration", length=1, steps=(), gamma=1.0))
    groups = {(group["lr"], group["weight_decay"]): group["params"] for group in build_optimizer(model, settings).param_groups}
    norm = model.stem[1]
    assert groups[(0.1, 0.0)] == [norm.weight, norm.bias]
    assert groups[(0.2, 1e-5)] == [model.stem[0].bias, model.map_head.bias, model.vector_head.bias]
    assert groups[(0.1, 1e-4)] == [model.stem[0].weight, model.map_head.weight, model.vector_head.weight]


def test_gradient_clipping_by_hand():
    first, second = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)

    def clipped(clip_type):
        first.grad, second.grad = torch.tensor([3.0, -4.0]), torch.tensor([12.0])
        GradientClipping(clip_type, 2.5)([first, second])
        return first.grad.tolist() + second.grad.tolist()

    assert clipped("value") == [2.5, -2.5, 2.5]
    # Per parameter: norms 5 and 12 each scaled to 2.5.
    assert clipped("norm") == pytest.approx([1.5, -2.0, 2.5], rel=1e-5)
    # Whole model: norm 13 scaled to 2.5.
    assert clipped("full_model") == pytest.approx([3 * 2.5 / 13, -4 * 2.5 / 13, 12 * 2.5 / 13], rel=1e-5)
    with pytest.raises(ConfigError, match="CLIP_TYPE.*'sum'"):
        GradientClipping("sum", 1.0)


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
