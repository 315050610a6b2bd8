"""tools/demo.py (``make demo``) pieces: which weights it tests, and stopping clearly when a step fails."""
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_demo():
    spec = importlib.util.spec_from_file_location("demo", os.path.join(REPO, "tools", "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = load_demo()


def test_best_model_is_preferred_and_the_checkpoint_is_the_fallback(tmp_path):
    (tmp_path / "checkpoint.pth.tar").write_bytes(b"")
    assert demo.trained_weights(tmp_path) == tmp_path / "checkpoint.pth.tar"
    (tmp_path / "model_best.pth.tar").write_bytes(b"")
    assert demo.trained_weights(tmp_path) == tmp_path / "model_best.pth.tar"


def test_training_is_bounded_to_a_few_minutes():
    assert 0 < demo.TRAIN_SECONDS <= 240


def test_a_failing_step_stops_the_demo_with_its_name_and_status(capsys):
    with pytest.raises(demo.StepFailed, match=r"'broken step' failed with exit status 2"):
        demo.run_step("broken step", "valid.py", ["--cfg", "no/such/config.yaml"])
    assert "$ python tools/valid.py --cfg no/such/config.yaml" in capsys.readouterr().out
