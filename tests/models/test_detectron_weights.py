"""detectron2 .pkl weights: Caffe2 ImageNet ResNet blobs renamed to detectron2's names, model-zoo files as stored."""
import collections
import pickle

import numpy as np
import pytest
import torch

from posekit.models.checkpoint import read_state_dict
from posekit.models.detectron_weights import caffe2_resnet_names, read_detectron_weights, with_prefix
from posekit.utils.errors import CheckpointError


def _caffe2_blobs() -> dict:
    """A Caffe2 ImageNet ResNet with a stem and one bottleneck block in res2 (4 -> 2 -> 8 channels)."""
    rng = np.random.default_rng(0)
    shapes = {
        "conv1_w": (4, 3, 7, 7), "res_conv1_bn_s": (4,), "res_conv1_bn_b": (4,),
        "res2_0_branch2a_w": (2, 4, 1, 1), "res2_0_branch2a_bn_s": (2,), "res2_0_branch2a_bn_b": (2,),
        "res2_0_branch2b_w": (2, 2, 3, 3), "res2_0_branch2b_bn_s": (2,), "res2_0_branch2b_bn_b": (2,),
        "res2_0_branch2c_w": (8, 2, 1, 1), "res2_0_branch2c_bn_s": (8,), "res2_0_branch2c_bn_b": (8,),
        "res2_0_branch1_w": (8, 4, 1, 1), "res2_0_branch1_bn_s": (8,), "res2_0_branch1_bn_b": (8,),
        "fc1000_w": (1000, 8), "fc1000_b": (1000,),
        "conv1_w_momentum": (4, 3, 7, 7), "res2_0_branch2a_bn_s_momentum": (2,),
    }
    return {blob: rng.standard_normal(shape).astype(np.float32) for blob, shape in shapes.items()}


# detectron2 name -> the Caffe2 blob it comes from (written out by hand from the naming rules).
EXPECTED_SOURCES = {
    "stem.conv1.weight": "conv1_w",
    "stem.conv1.norm.weight": "res_conv1_bn_s",
    "stem.conv1.norm.bias": "res_conv1_bn_b",
    "res2.0.conv1.weight": "res2_0_branch2a_w",
    "res2.0.conv1.norm.weight": "res2_0_branch2a_bn_s",
    "res2.0.conv1.norm.bias": "res2_0_branch2a_bn_b",
    "res2.0.conv2.weight": "res2_0_branch2b_w",
    "res2.0.conv2.norm.weight": "res2_0_branch2b_bn_s",
    "res2.0.conv2.norm.bias": "res2_0_branch2b_bn_b",
    "res2.0.conv3.weight": "res2_0_branch2c_w",
    "res2.0.conv3.norm.weight": "res2_0_branch2c_bn_s",
    "res2.0.conv3.norm.bias": "res2_0_branch2c_bn_b",
    "res2.0.shortcut.weight": "res2_0_branch1_w",
    "res2.0.shortcut.norm.weight": "res2_0_branch1_bn_s",
    "res2.0.shortcut.norm.bias": "res2_0_branch1_bn_b",
}
# FrozenBatchNorm2d statistics detectron2 gives Caffe2 weights: mean 0, variance exactly 1 (channels each).
EXPECTED_STATISTICS = {"stem.conv1.norm": 4, "res2.0.conv1.norm": 2, "res2.0.conv2.norm": 2,
                       "res2.0.conv3.norm": 8, "res2.0.shortcut.norm": 8}


def _assert_renamed(renamed: dict, blobs: dict) -> None:
    statistics = {f"{norm}.running_{kind}" for norm in EXPECTED_STATISTICS for kind in ("mean", "var")}
    assert set(renamed) == set(EXPECTED_SOURCES) | statistics
    for name, blob in EXPECTED_SOURCES.items():
        np.testing.assert_array_equal(np.asarray(renamed[name]), blobs[blob], err_msg=name)
    for norm, channels in EXPECTED_STATISTICS.items():
        np.testing.assert_array_equal(np.asarray(renamed[f"{norm}.running_mean"]), np.zeros(channels, np.float32))
        np.testing.assert_array_equal(np.asarray(renamed[f"{norm}.running_var"]), np.ones(channels, np.float32))


def test_caffe2_blobs_get_detectron2_resnet_names():
    blobs = _caffe2_blobs()
    _assert_renamed(caffe2_resnet_names(blobs), blobs)


@pytest.mark.parametrize("wrapped", [False, True], ids=["msra-plain-dict", "blobs-entry"])
def test_caffe2_pkl_reads_as_renamed_float32_tensors(tmp_path, wrapped):
    blobs = _caffe2_blobs()
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps({"blobs": blobs} if wrapped else blobs, protocol=2))
    weights = read_detectron_weights(str(path))
    assert all(isinstance(value, torch.Tensor) and value.dtype == torch.float32 for value in weights.values())
    _assert_renamed({name: value.numpy() for name, value in weights.items()}, blobs)


def test_unknown_blobs_are_reported_by_name():
    blobs = _caffe2_blobs()
    # An FPN blob of a Detectron detection model, a conv bias ResNet convs lack, a stage ResNets lack.
    blobs.update({name: np.zeros(2, np.float32)
                  for name in ("fpn_inner_res5_2_sum_w", "res2_0_branch2a_b", "res6_0_branch2a_w")})
    with pytest.raises(CheckpointError) as err:
        caffe2_resnet_names(blobs, source="R-50.pkl")
    message = str(err.value)
    assert message.startswith("R-50.pkl: 3 blobs are not ResNet ImageNet blobs")
    assert "blobs: fpn_inner_res5_2_sum_w, res2_0_branch2a_b, res6_0_branch2a_w; expected" in message


def _zoo_model() -> dict:
    rng = np.random.default_rng(1)
    return {
        "backbone.bottom_up.stem.conv1.weight": rng.standard_normal((4, 3, 7, 7)).astype(np.float32),
        "backbone.fpn_lateral2.weight": rng.standard_normal((6, 8, 1, 1)).astype(np.float32),
        "proposal_generator.rpn_head.conv.weight": rng.standard_normal((6, 6, 3, 3)).astype(np.float32),
        "roi_heads.box_predictor.cls_score.weight": rng.standard_normal((81, 16)).astype(np.float32),
        "roi_heads.box_predictor.bbox_pred.bias": rng.standard_normal(320).astype(np.float64),
        "counter": np.array([3, 2 ** 40], dtype=np.int64),
        "scalar": np.int64(7),
    }


@pytest.mark.parametrize("protocol", [2, 4])
def test_detectron2_zoo_pkl_loads_with_stored_names_dtypes_and_shapes(tmp_path, protocol):
    model = _zoo_model()
    path = tmp_path / "model_final_a54504.pkl"
    stored = {"model": model, "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}
    path.write_bytes(pickle.dumps(stored, protocol=protocol))
    weights = read_detectron_weights(str(path))
    assert list(weights) == list(model)
    expected_dtypes = {np.float32: torch.float32, np.float64: torch.float64, np.int64: torch.int64}
    for name, array in model.items():
        assert weights[name].dtype == expected_dtypes[array.dtype.type], name
        assert tuple(weights[name].shape) == np.shape(array), name
        np.testing.assert_array_equal(weights[name].numpy(), array, err_msg=name)


def test_big_endian_arrays_come_back_in_native_order(tmp_path):
    path = tmp_path / "big_endian.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": np.array([1.5, -2.0], dtype=">f4")}, "__author__": "x"}))
    weights = read_detectron_weights(str(path))
    assert weights["w"].dtype == torch.float32 and weights["w"].tolist() == [1.5, -2.0]


@pytest.mark.parametrize("stored, expected", [
    ([np.zeros(1)], "expected a dict of NumPy arrays, got list"),
    ({"__author__": "Detectron2 Model Zoo"}, "needs a 'model' entry"),
    ({"model": {"w": [1.0, 2.0]}, "__author__": "x"}, "entry w is a list, expected a NumPy array"),
    ({"model": {"names": np.array(["a", "b"])}, "__author__": "x"}, "entry names has dtype <U1"),
    ({"model": {}, "__author__": "x"}, "holds no weights"),
    ({"blobs": [1, 2]}, "'blobs' should be a dict"),
], ids=["list", "no-model", "list-entry", "string-array", "empty", "bad-blobs"])
def test_malformed_files_are_named(tmp_path, stored, expected):
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps(stored))
    with pytest.raises(CheckpointError, match=expected) as err:
        read_detectron_weights(str(path))
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize("prefix", ["backbone.bottom_up", "backbone.bottom_up."])
def test_with_prefix_puts_one_dot_between(prefix):
    placed = with_prefix({"stem.conv1.weight": 1, "res2.0.conv1.weight": 2}, prefix)
    assert placed == {"backbone.bottom_up.stem.conv1.weight": 1, "backbone.bottom_up.res2.0.conv1.weight": 2}


def test_with_empty_prefix_keeps_names():
    assert with_prefix({"res5.0.conv1.weight": 1}, "") == {"res5.0.conv1.weight": 1}


def test_detectron2_pth_checkpoint_reads_its_model_entry(tmp_path):
    """A detectron2 training checkpoint (.pth): weights under 'model' beside optimizer and trainer state."""
    model = collections.OrderedDict([("backbone.bottom_up.stem.conv1.weight", torch.randn(4, 3, 7, 7)),
                                     ("roi_heads.box_head.fc1.weight", torch.randn(16, 32))])
    path = tmp_path / "model_0004999.pth"
    torch.save({"model": model, "optimizer": {"state": {}, "param_groups": [{"lr": 0.02, "params": [0, 1]}]},
                "scheduler": {"base_lrs": [0.02], "last_epoch": 5000}, "iteration": 4999}, path)
    weights = read_state_dict(str(path))
    assert list(weights) == list(model)
    for name, value in model.items():
        assert torch.equal(weights[name], value)
