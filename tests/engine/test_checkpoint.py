"""load_weights / load_pretrained: formats that must load, files that must be refused, and the messages."""
import os
from pathlib import Path

import pytest
import torch

from posekit.config import load_cfg
from posekit.models.checkpoint import load_weights
from posekit.models import build_model
from posekit.utils.errors import CheckpointError

TINY = Path(__file__).resolve().parents[2] / "experiments" / "samples" / "dekr_tiny_coco.yaml"


def tiny_dekr(seed: int, *opts: str) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(load_cfg(str(TINY), list(opts))).eval()
    with torch.no_grad():  # non-trivial running statistics, so buffers matter for the outputs
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
    return model


@pytest.fixture(scope="module")
def trained():
    return tiny_dekr(1)


@pytest.fixture(scope="module")
def image():
    return torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))


def prefixed(state_dict):
    return {"module." + k: v for k, v in state_dict.items()}


@pytest.mark.parametrize("layout", ["plain", "ddp", "training checkpoint", "model entry"])
def test_checkpoint_layouts_round_trip(tmp_path, trained, image, layout):
    state = trained.state_dict()
    optimizer = torch.optim.Adam(trained.parameters())
    stored = {
        "plain": state,
        "ddp": prefixed(state),
        # the official checkpoint.pth.tar layout: 'model' is the model name, the weights are DDP-prefixed
        "training checkpoint": {"epoch": 3, "model": "hrnet_dekr", "state_dict": prefixed(state),
                                "best_state_dict": state, "perf": 3, "optimizer": optimizer.state_dict()},
        "model entry": {"model": state, "epoch": 7},
    }[layout]
    path = tmp_path / "weights.pth"
    torch.save(stored, path)
    fresh = tiny_dekr(0)
    assert load_weights(fresh, str(path)) == []
    with torch.no_grad():
        for got, want in zip(fresh(image), trained(image)):
            assert torch.equal(got, want)


def test_loads_into_a_data_parallel_wrapper(tmp_path, trained):
    path = tmp_path / "weights.pth"
    torch.save(trained.state_dict(), path)
    wrapped = torch.nn.DataParallel(tiny_dekr(0))
    load_weights(wrapped, str(path))
    assert torch.equal(wrapped.module.backbone.conv1.weight, trained.backbone.conv1.weight)


def test_mismatched_checkpoint_names_keys_and_file(tmp_path, trained):
    path = tmp_path / "coco_weights.pth"
    torch.save(trained.state_dict(), path)
    crowdpose = tiny_dekr(0, "DATASET.NUM_JOINTS", "14", "MODEL.NUM_JOINTS", "14")
    with pytest.raises(CheckpointError) as caught:
        load_weights(crowdpose, str(path))
    message = str(caught.value)
    assert "coco_weights.pth" in message
    assert "unexpected keys: offset_feature_layers.14.0.regular_matrix" in message
    assert "mis-shaped keys: transition_offset.0.weight (255, 120, 1, 1) (model (210, 120, 1, 1))" in message
    assert "missing keys" not in message


def test_missing_keys_are_listed(tmp_path, trained):
    state = trained.state_dict()
    del state["backbone.conv1.weight"], state["backbone.bn1.running_var"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"2 missing keys: backbone.conv1.weight, backbone.bn1.running_var"):
        load_weights(tiny_dekr(0), str(path))
    assert load_weights(tiny_dekr(0), str(path), strict=False) == ["backbone.conv1.weight", "backbone.bn1.running_var"]


def test_official_key_names_are_renamed_once_at_load_time(tmp_path, trained, image):
    """An official DEKR file names the backbone's modules at the top level (conv1, stage4, ...)."""
    official = {key.replace("backbone.", "", 1): value for key, value in trained.state_dict().items()}
    assert "conv1.weight" in official and "transition_offset.0.weight" in official
    path = tmp_path / "official.pth"
    torch.save(official, path)
    fresh = tiny_dekr(0)
    assert load_weights(fresh, str(path)) == []
    with torch.no_grad():
        for got, want in zip(fresh(image), trained(image)):
            assert torch.equal(got, want)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found: .*absent.pth"):
        load_weights(tiny_dekr(0), str(tmp_path / "absent.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_weights(tiny_dekr(0), str(garbage))
    not_weights = tmp_path / "numbers.pth"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(CheckpointError, match="numbers.pth: expected a dict of tensors"):
        load_weights(tiny_dekr(0), str(not_weights))


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _RunsCodeWhenUnpickled(str(marker))}, path)
    with pytest.raises(CheckpointError, match="evil.pth.*weights-only"):
        load_weights(tiny_dekr(0), str(path))
    assert not marker.exists()
