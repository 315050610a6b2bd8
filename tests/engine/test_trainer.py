"""The shared training loop on a toy two-loss model: both schedule kinds, exact resume, time limit,
divergence stop, checkpoint format, every named loss logged and drawn, hooks."""
import cv2
import pytest
import torch

from engine_toys import (KilledDataset, PoisonedDataset, SimulatedKill, ToyDataset, ToyModel, epoch_solver,
                         iteration_solver, make_trainer)
from posekit.engine import GradientClipping, PeriodicEvaluation, TrainingDiverged
from posekit.engine.hooks import LOSS_CURVE_FILE
from posekit.engine.training_state import BEST_FILE, CHECKPOINT_FILE, FINAL_FILE
from posekit.models.checkpoint import load_weights
from posekit.utils.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS_PER_EPOCH = 5  # 10 toy items, batch 2
EPOCHS = 3
ITERATIONS = 12  # iteration_solver's length
LOSS_NAMES = ["loss_map", "loss_vector", "map_mean"]


def assert_same_tensors(actual, expected):
    assert actual.keys() == expected.keys()
    for key in expected:
        assert torch.equal(actual[key], expected[key]), key


def run_to_the_end(output, **kwargs):
    progress = make_trainer(output, **kwargs).train()
    return progress, torch.load(output / CHECKPOINT_FILE, weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, one_thread):
    """Output folder, progress and checkpoint of the 3-epoch toy run without interruption."""
    output = tmp_path_factory.mktemp("uninterrupted")
    return (output, *run_to_the_end(output))


@pytest.fixture(scope="module")
def uninterrupted_iterations(tmp_path_factory, one_thread):
    """The same for the 12-iteration warm-up schedule, checkpointing every 4 iterations."""
    output = tmp_path_factory.mktemp("iterations")
    return (output, *run_to_the_end(output, solver=iteration_solver(), checkpoint_period=4))


def test_uninterrupted_run_writes_every_output(uninterrupted):
    output, progress, checkpoint = uninterrupted
    assert progress.iteration == EPOCHS * STEPS_PER_EPOCH
    assert list(progress.loss_history) == LOSS_NAMES
    assert all(len(values) == EPOCHS * STEPS_PER_EPOCH for values in progress.loss_history.values())
    assert checkpoint["epoch"] == EPOCHS and checkpoint["iteration"] == 0
    # Rate 0.01 x 0.1 from epoch 1 on.
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.001)
    final = torch.load(output / FINAL_FILE, weights_only=True)
    best = torch.load(output / BEST_FILE, weights_only=True)
    assert_same_tensors(final, checkpoint["state_dict"])
    assert_same_tensors(best, checkpoint["state_dict"])
    assert not any(key.startswith("module.") for key in final)
    # One panel for the total and one per named value, 500 pixels each.
    image = cv2.imread(str(output / LOSS_CURVE_FILE))
    assert image is not None and image.shape == (500 * (1 + len(LOSS_NAMES)), 900, 3)
    assert list((output / "tb").glob("events.out.tfevents.*"))


def test_every_named_value_reaches_the_text_log(tmp_path, caplog):
    with caplog.at_level("INFO"):
        make_trainer(tmp_path, solver=epoch_solver(schedule=epoch_solver().schedule.__class__(
            unit="epoch", length=1, steps=(), gamma=0.1))).train()
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Epoch")]
    assert len(lines) == STEPS_PER_EPOCH
    assert all(all(name in line for name in LOSS_NAMES) for line in lines)


def test_checkpoint_is_primitive_only_and_loads_weights_only(uninterrupted):
    output, _, checkpoint = uninterrupted

    def walk(value, where):
        if isinstance(value, dict):
            for key, item in value.items():
                assert isinstance(key, (str, int)), where
                walk(item, f"{where}.{key}")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")
        else:
            assert value is None or isinstance(value, (torch.Tensor, int, float, str, bool)), (where, type(value))

    walk(checkpoint, "checkpoint")
    for entry in ("epoch", "iteration", "state_dict", "best_state_dict", "perf", "optimizer", "scaler", "rng",
                  "loss_history"):
        assert entry in checkpoint
    assert list(checkpoint["loss_history"]) == LOSS_NAMES
    for generator in ("python", "numpy", "torch"):
        assert isinstance(checkpoint["rng"][generator], torch.Tensor)
    for plain in (CHECKPOINT_FILE, BEST_FILE, FINAL_FILE):
        model = ToyModel()
        assert load_weights(model, str(output / plain), strict=True) == []
        assert_same_tensors(model.state_dict(), checkpoint["state_dict"])


def assert_resumed_bitwise(resumed, expected):
    assert_same_tensors(resumed["state_dict"], expected["state_dict"])
    assert_same_tensors(resumed["loss_history"], expected["loss_history"])
    for param_id, state in expected["optimizer"]["state"].items():
        assert_same_tensors(resumed["optimizer"]["state"][param_id], state)


def test_epoch_schedule_resumes_bitwise_after_a_kill_between_checkpoints(tmp_path, uninterrupted):
    _, _, expected = uninterrupted
    # Killed on the 3rd batch of epoch 1: the last checkpoint is the end of epoch 0.
    with pytest.raises(SimulatedKill):
        make_trainer(tmp_path, dataset=KilledDataset((STEPS_PER_EPOCH + 2) * 2)).train()
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["epoch"] == 1
    progress, resumed = run_to_the_end(tmp_path)
    assert progress.iteration == EPOCHS * STEPS_PER_EPOCH
    assert_resumed_bitwise(resumed, expected)


def test_iteration_schedule_resumes_bitwise_after_a_kill_between_checkpoints(tmp_path, uninterrupted_iterations):
    _, progress, expected = uninterrupted_iterations
    assert progress.iteration == ITERATIONS
    # 12 iterations = 2 epochs and 2 steps; the rate after the second step down is 0.02 x 0.1 x 0.1.
    assert (expected["epoch"], expected["iteration"]) == (2, 2)
    assert expected["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0002)
    # Killed on iteration 7 (0-based 6): the last checkpoint is the one after 4 iterations.
    with pytest.raises(SimulatedKill):
        make_trainer(tmp_path, solver=iteration_solver(), checkpoint_period=4, dataset=KilledDataset(6 * 2)).train()
    stopped = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert (stopped["epoch"], stopped["iteration"]) == (0, 4)
    _, resumed = run_to_the_end(tmp_path, solver=iteration_solver(), checkpoint_period=4)
    assert_resumed_bitwise(resumed, expected)


def test_time_limit_stops_mid_epoch_and_resumes_bitwise(tmp_path, uninterrupted):
    _, _, expected = uninterrupted
    solver = epoch_solver(max_time=1e-9)  # out of time after every step
    positions = []
    for _ in range(EPOCHS * STEPS_PER_EPOCH + 1):
        progress = make_trainer(tmp_path, solver=solver).train()
        saved = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
        positions.append((saved["epoch"], saved["iteration"]))
        if progress.iteration == EPOCHS * STEPS_PER_EPOCH:
            break
    assert len(positions) == EPOCHS * STEPS_PER_EPOCH  # one step per run
    assert positions[:STEPS_PER_EPOCH + 1] == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1)]
    assert_resumed_bitwise(torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True), expected)
    assert (tmp_path / FINAL_FILE).is_file()


def test_max_iters_per_epoch_shortens_every_epoch(tmp_path):
    progress = make_trainer(tmp_path, solver=epoch_solver(max_iters_per_epoch=2)).train()
    assert progress.iteration == EPOCHS * 2
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["epoch"] == EPOCHS


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    one_epoch = epoch_solver(schedule=epoch_solver().schedule.__class__(unit="epoch", length=1, steps=(1,),
                                                                         gamma=0.1))
    make_trainer(tmp_path, solver=one_epoch, dataset=PoisonedDataset(poisoned_epoch=1)).train()
    checkpoint_path = tmp_path / CHECKPOINT_FILE
    good_bytes = checkpoint_path.read_bytes()
    trainer = make_trainer(tmp_path, dataset=PoisonedDataset(poisoned_epoch=1))
    with pytest.raises(TrainingDiverged) as raised:
        trainer.train()
    message = str(raised.value)
    assert "\n" not in message and "loss_map nan" in message and str(checkpoint_path) in message
    assert "epoch 1, iteration 0" in message
    assert checkpoint_path.read_bytes() == good_bytes
    # The optimizer did not step on the NaN loss (BatchNorm statistics of that forward aside).
    stored = torch.load(checkpoint_path, weights_only=True)["state_dict"]
    for name, parameter in trainer.model.named_parameters():
        assert torch.equal(parameter.detach(), stored[name]), name


def test_loader_workers_do_not_change_the_result(tmp_path, uninterrupted):
    _, _, expected = uninterrupted
    make_trainer(tmp_path, workers=2).train()
    assert_same_tensors(torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["state_dict"],
                        expected["state_dict"])


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_mixed_precision_training_runs_and_checkpoints_its_scaler(tmp_path, mode):
    progress = make_trainer(tmp_path, solver=epoch_solver(amp=mode)).train()
    assert progress.iteration == EPOCHS * STEPS_PER_EPOCH
    checkpoint = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())
    # Only fp16 scales the loss; its scaler state must survive for resume.
    assert ("scale" in checkpoint["scaler"]) == (mode == "fp16")


def test_gradient_clipping_bounds_every_step(tmp_path):
    seen = []

    class Watch(PeriodicEvaluation):
        """After each step, the largest gradient element left by clipping."""

        def after_step(self, trainer, losses):
            seen.append(max(p.grad.abs().max().item() for p in trainer.model.parameters() if p.grad is not None))

    make_trainer(tmp_path, solver=epoch_solver(clip_gradients=GradientClipping("value", 1e-3)),
                 hooks=[Watch(0, lambda model: None)]).train()
    assert len(seen) == EPOCHS * STEPS_PER_EPOCH and max(seen) <= 1e-3 * (1 + 1e-6)  # float32 bound


def test_periodic_evaluation_runs_every_period_and_at_the_end(tmp_path):
    calls = []

    def evaluate(model):
        calls.append(model.training)
        return {"AP": float(len(calls))}

    hook = PeriodicEvaluation(4, evaluate)
    make_trainer(tmp_path, solver=iteration_solver(), hooks=[hook]).train()
    assert sorted(hook.results) == [4, 8, 12]
    assert calls == [False, False, False]  # evaluated in eval mode
    assert hook.results[12] == {"AP": 3.0}


def test_the_last_step_is_checkpointed_whatever_the_period(tmp_path, uninterrupted_iterations):
    _, _, expected = uninterrupted_iterations
    _, checkpoint = run_to_the_end(tmp_path, solver=iteration_solver(), checkpoint_period=5)  # saves at 5, 10, 12
    assert (checkpoint["epoch"], checkpoint["iteration"]) == (2, 2)
    assert_same_tensors(checkpoint["state_dict"], expected["state_dict"])
    assert (tmp_path / FINAL_FILE).is_file()


def test_an_empty_training_set_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(DataError, match="training set is empty"):
        make_trainer(tmp_path, dataset=ToyDataset(size=0))
    assert not list(tmp_path.iterdir())
