"""SIGINT / SIGTERM during training: the step ends, the checkpoint is saved mid-epoch, the run leaves with
128 + the signal, and the rerun continues with the losses of an uninterrupted run; run-folder config rules."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine_toys import make_trainer
from posekit.config import load_cfg
from posekit.engine import Hook
from posekit.engine.run_dirs import check_run_config, save_run_config
from posekit.engine.trainer import TrainingInterrupted
from posekit.engine.training_state import CHECKPOINT_FILE, FINAL_FILE
from posekit.utils.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_thread")  # the training process runs on one thread too

HERE = Path(__file__).resolve().parent
# A training process: the toy trainer (one DataLoader worker) under the tools' run_tool, one line per step,
# 50 ms per step so the signal sent after the first line lands mid-run.
TRAINING_PROCESS = """
import sys, time
from engine_toys import make_trainer
from posekit.apis.cli import run_tool
from posekit.engine import Hook

class Announce(Hook):
    def after_step(self, trainer, losses):
        print("step", trainer.progress.iteration, flush=True)
        time.sleep(0.05)

run_tool(lambda argv: make_trainer(__import__("pathlib").Path(sys.argv[1]), workers=1,
                                   hooks=[Announce()]).train() and 0, [])
"""


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted toy run (trained once for the module's tests)."""
    trainer = make_trainer(tmp_path_factory.mktemp("straight"))
    trainer.train()
    return trainer


def test_sigterm_to_a_training_process_saves_and_the_rerun_matches_an_uninterrupted_run(tmp_path, straight):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parents[1] / "lib")]), OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, "-c", TRAINING_PROCESS, str(tmp_path / "stopped")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout.readline().strip() == "step 1"
    # To the process group, as timeout and batch schedulers send it: the worker must leave it to the trainer.
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "interrupted: SIGTERM received: stopped at epoch" in err
    checkpoint = torch.load(tmp_path / "stopped" / CHECKPOINT_FILE, weights_only=True)
    stopped_at = 5 * checkpoint["epoch"] + checkpoint["iteration"]
    assert 1 <= stopped_at < 15  # mid-run (15 steps in all)

    resumed = make_trainer(tmp_path / "stopped")
    assert resumed.progress.iteration == stopped_at
    resumed.train()
    assert resumed.progress.loss_history == straight.progress.loss_history


class SignalAt(Hook):
    """Sends ``signum`` to this process after step ``iteration``."""

    def __init__(self, iteration: int, signum: int) -> None:
        self.iteration, self.signum = iteration, signum

    def after_step(self, trainer, losses) -> None:
        if trainer.progress.iteration == self.iteration:
            signal.raise_signal(self.signum)


def test_ctrl_c_saves_mid_epoch_and_the_rerun_matches_an_uninterrupted_run(tmp_path, straight):
    # SIGINT raised in this process (the test above sends a real SIGTERM to a training process).
    signum = signal.SIGINT
    previous_handler = signal.getsignal(signum)
    # 10 items in batches of 2: 5 steps per epoch. A signal after step 7 is seen by every process at the
    # next step's shared stop decision, so step 8 (epoch 1, iteration 3) is the last one.
    with pytest.raises(TrainingInterrupted) as stopped:
        make_trainer(tmp_path / "stopped", hooks=[SignalAt(7, signum)]).train()
    assert stopped.value.exit_code == 128 + signum and signal.Signals(signum).name in str(stopped.value)
    assert signal.getsignal(signum) is previous_handler  # the handlers are given back
    checkpoint = torch.load(tmp_path / "stopped" / CHECKPOINT_FILE, weights_only=True)
    assert (checkpoint["epoch"], checkpoint["iteration"]) == (1, 3)
    final = torch.load(tmp_path / "stopped" / FINAL_FILE, weights_only=True)  # the last weights, not stale ones
    assert all(torch.equal(final[key], value) for key, value in checkpoint["state_dict"].items())

    resumed = make_trainer(tmp_path / "stopped")
    assert resumed.progress.iteration == 8
    resumed.train()
    assert resumed.progress.loss_history == straight.progress.loss_history
    expected, actual = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(actual[key], expected[key]) for key in expected)


def test_a_second_signal_stops_at_once(tmp_path):
    # A step that never ends (e.g. a stuck data source) can still be left with a second Ctrl-C.
    class SignalTwice(Hook):
        def after_step(self, trainer, losses) -> None:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            raise AssertionError("the second signal did not stop training")
    with pytest.raises(KeyboardInterrupt, match="SIGINT received again: stopped at once") as stopped:
        make_trainer(tmp_path, hooks=[SignalTwice()]).train()
    assert not isinstance(stopped.value, TrainingInterrupted)


def test_a_different_config_for_a_run_folder_is_refused_unless_a_new_run(tmp_path):
    cfg = load_cfg(None, ["TRAIN.LR", "0.001"])
    check_run_config(cfg, tmp_path, new_run=False)  # no config.yaml yet
    save_run_config(cfg, tmp_path)
    # How the run is carried out (workers, printing, time budget, resuming) may change.
    check_run_config(load_cfg(None, ["TRAIN.LR", "0.001", "WORKERS", "1", "TRAIN.MAX_TIME", "60",
                                     "AUTO_RESUME", "True"]), tmp_path, new_run=False)
    other = load_cfg(None, ["TRAIN.LR", "0.01", "DATASET.SIGMA", "3.0"])
    with pytest.raises(ConfigError, match=r"config.yaml describes a different run \(differs in DATASET.SIGMA, "
                                          r"TRAIN.LR\); pass --new-run"):
        check_run_config(other, tmp_path, new_run=False)
    check_run_config(other, tmp_path, new_run=True)
