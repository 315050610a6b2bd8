"""The training loop on a toy model: exact resume, time limit, divergence stop, checkpoint format, outputs."""
import cv2
import pytest
import torch

from engine_toys import KilledDataset, PoisonedDataset, SimulatedKill, ToyDataset, ToyDekr, toy_cfg
from posekit.models.checkpoint import load_weights
from posekit.engine.distributed import DistContext
from posekit.engine.rng import seed_everything
from posekit.engine.trainer import LOSS_CURVE_FILE, Trainer, TrainingDiverged
from posekit.engine.training_state import BEST_FILE, CHECKPOINT_FILE, FINAL_FILE
from posekit.models.dekr.loss import DekrLoss

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
STEPS_PER_EPOCH = 5  # 10 toy items, batch 2
EPOCHS = 3


def make_trainer(cfg, output_dir, dataset=None):
    """A fresh process's trainer: everything seeded and built anew, as tools/train.py does."""
    seed_everything(cfg.SEED)
    model = ToyDekr()
    return Trainer(cfg, model, dataset or ToyDataset(), DekrLoss(cfg), CPU, output_dir, output_dir / "tb")


def assert_same_tensors(actual, expected):
    assert actual.keys() == expected.keys()
    for key in expected:
        assert torch.equal(actual[key], expected[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, one_thread):
    """Final weights and checkpoint of the 3-epoch toy run without interruption."""
    output = tmp_path_factory.mktemp("uninterrupted")
    progress = make_trainer(toy_cfg(), output).train()
    checkpoint = torch.load(output / CHECKPOINT_FILE, weights_only=True)
    return output, progress, checkpoint


def test_uninterrupted_run_writes_every_output(uninterrupted):
    output, progress, checkpoint = uninterrupted
    assert (progress.epoch, progress.iteration) == (EPOCHS, 0)
    assert progress.global_step == EPOCHS * STEPS_PER_EPOCH
    assert checkpoint["epoch"] == EPOCHS and checkpoint["iteration"] == 0
    # MultiStepLR([1], 0.1) stepped after each of the 3 epochs.
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.001)
    final = torch.load(output / FINAL_FILE, weights_only=True)
    best = torch.load(output / BEST_FILE, weights_only=True)
    assert_same_tensors(final, checkpoint["state_dict"])
    assert_same_tensors(best, checkpoint["state_dict"])
    assert not any(key.startswith("module.") for key in final)
    image = cv2.imread(str(output / LOSS_CURVE_FILE))
    assert image is not None and image.shape[2] == 3
    assert list((output / "tb").glob("events.out.tfevents.*"))


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
    for entry in ("epoch", "state_dict", "best_state_dict", "perf", "optimizer", "scheduler", "scaler", "rng"):
        assert entry in checkpoint
    for generator in ("python", "numpy", "torch"):
        assert isinstance(checkpoint["rng"][generator], torch.Tensor)
    for plain in (CHECKPOINT_FILE, BEST_FILE, FINAL_FILE):
        model = ToyDekr()
        assert load_weights(model, str(output / plain), strict=True) == []
        assert_same_tensors(model.state_dict(), checkpoint["state_dict"])


def test_resume_after_a_kill_between_checkpoints_is_bitwise_identical(tmp_path, uninterrupted):
    _, _, expected = uninterrupted
    # Killed on the 3rd batch of epoch 1: the last checkpoint is the end of epoch 0.
    killed_after = (STEPS_PER_EPOCH + 2) * 2
    with pytest.raises(SimulatedKill):
        make_trainer(toy_cfg(), tmp_path, KilledDataset(killed_after)).train()
    assert torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["epoch"] == 1
    progress = make_trainer(toy_cfg(), tmp_path).train()
    assert progress.global_step == EPOCHS * STEPS_PER_EPOCH
    resumed = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert_same_tensors(resumed["state_dict"], expected["state_dict"])
    assert torch.equal(resumed["loss_history"], expected["loss_history"])
    for param_id, state in expected["optimizer"]["state"].items():
        assert_same_tensors(resumed["optimizer"]["state"][param_id], state)


def test_time_limit_stops_mid_epoch_and_resumes_bitwise(tmp_path, uninterrupted):
    _, _, expected = uninterrupted
    cfg = toy_cfg(TRAIN__MAX_TIME=1e-9)  # out of time after every step
    runs, positions = 0, []
    while runs < EPOCHS * STEPS_PER_EPOCH + 1:
        progress = make_trainer(cfg, tmp_path).train()
        runs += 1
        positions.append((progress.epoch, progress.iteration))
        if progress.epoch == EPOCHS:
            break
    assert runs == EPOCHS * STEPS_PER_EPOCH  # one step per run
    assert positions[:STEPS_PER_EPOCH + 1] == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1)]
    resumed = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert_same_tensors(resumed["state_dict"], expected["state_dict"])
    assert (tmp_path / FINAL_FILE).is_file()


def test_max_iters_per_epoch_shortens_every_epoch(tmp_path):
    progress = make_trainer(toy_cfg(TRAIN__MAX_ITERS_PER_EPOCH=2), tmp_path).train()
    assert (progress.epoch, progress.global_step) == (EPOCHS, EPOCHS * 2)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    make_trainer(toy_cfg(TRAIN__END_EPOCH=1), tmp_path, PoisonedDataset(poisoned_epoch=1)).train()
    checkpoint_path = tmp_path / CHECKPOINT_FILE
    good_bytes = checkpoint_path.read_bytes()
    trainer = make_trainer(toy_cfg(), tmp_path, PoisonedDataset(poisoned_epoch=1))
    with pytest.raises(TrainingDiverged) as raised:
        trainer.train()
    message = str(raised.value)
    assert "\n" not in message and "nan" in message and str(checkpoint_path) in message
    assert "epoch 1, iteration 0" in message
    assert checkpoint_path.read_bytes() == good_bytes
    # The optimizer did not step on the NaN loss (BatchNorm statistics of that forward aside).
    stored = torch.load(checkpoint_path, weights_only=True)["state_dict"]
    for name, parameter in trainer.model.named_parameters():
        assert torch.equal(parameter.detach(), stored[name]), name


def test_loader_workers_do_not_change_the_result(tmp_path, uninterrupted):
    _, _, expected = uninterrupted
    make_trainer(toy_cfg(WORKERS=2), tmp_path).train()
    assert_same_tensors(torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["state_dict"],
                        expected["state_dict"])


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
def test_mixed_precision_training_runs_and_checkpoints_its_scaler(tmp_path, mode):
    progress = make_trainer(toy_cfg(TRAIN__AMP=mode, TRAIN__END_EPOCH=1), tmp_path).train()
    assert progress.global_step == STEPS_PER_EPOCH
    checkpoint = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())
    # Only fp16 scales the loss; its scaler state must survive for resume.
    assert ("scale" in checkpoint["scaler"]) == (mode == "fp16")
