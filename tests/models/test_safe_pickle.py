"""The restricted unpickler: NumPy arrays in plain containers load, any other global is refused unrun."""
import builtins
import collections
import os
import pickle
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.models.safe_pickle import load_safe_pickle
from posekit.utils.errors import CheckpointError


class _RunsShell:
    """Unpickling this with plain pickle runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class _RunsEval:
    """Unpickling this with plain pickle evaluates Python that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",)


def _write(path: Path, obj: object, protocol: int) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _refused_global(payload: object, protocol: int) -> str:
    """The global the payload's pickle names, worked out from pickle's rules, not from the code under test."""
    if isinstance(payload, _RunsShell):
        return f"{os.system.__module__}.system"  # 'posix.system' on Linux
    # Below protocol 3 pickle writes Python 2 module names (fix_imports): builtins is __builtin__ there.
    return ("__builtin__" if protocol < 3 else "builtins") + ".eval"


def test_eval_payload_is_live_under_plain_pickle(tmp_path):
    """The refusal tests below mean something: plain pickle does run this payload."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_RunsEval(marker)))
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("make_payload", [_RunsShell, _RunsEval])
def test_code_running_pickle_is_refused_and_not_run(tmp_path, make_payload, protocol):
    marker = tmp_path / "ran"
    payload = make_payload(marker)
    path = _write(tmp_path / "evil.pkl", {"model": {"w": np.ones(2, np.float32)}, "payload": payload}, protocol)
    with pytest.raises(CheckpointError) as err:
        load_safe_pickle(str(path))
    assert str(path) in str(err.value)
    assert f"refuses to load {_refused_global(payload, protocol)}" in str(err.value)
    assert not marker.exists()


def test_torch_tensor_global_is_refused(tmp_path):
    """Only NumPy arrays: a tensor's rebuild function is a global outside the allowed set."""
    path = _write(tmp_path / "tensor.pkl", {"w": torch.ones(2)}, 2)
    with pytest.raises(CheckpointError, match="refuses to load torch"):
        load_safe_pickle(str(path))


def _arrays() -> dict:
    rng = np.random.default_rng(0)
    return {
        "blobs": {"conv1_w": rng.standard_normal((4, 3, 7, 7)).astype(np.float32),
                  "res_conv1_bn_s": rng.standard_normal(4).astype(np.float32),
                  "counts": np.array([[1, -2], [3, 2 ** 40]], dtype=np.int64),
                  "fortran": np.asfortranarray(rng.standard_normal((3, 2)))},
        "ordered": collections.OrderedDict([("half", np.arange(5, dtype=np.float16)), ("flag", np.bool_(True))]),
        "scale": np.float32(0.5),
        "names": ["a", ("b", 2)],
        "__author__": "test",
    }


def _assert_same(loaded: object, expected: object) -> None:
    """Equal structure, container types, dtypes, shapes and values."""
    assert type(loaded) is type(expected)
    if isinstance(expected, dict):
        assert list(loaded) == list(expected)
        for key in expected:
            _assert_same(loaded[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(loaded) == len(expected)
        for got, want in zip(loaded, expected):
            _assert_same(got, want)
    elif isinstance(expected, (np.ndarray, np.generic)):
        assert loaded.dtype == expected.dtype and loaded.shape == expected.shape
        np.testing.assert_array_equal(loaded, expected)
    else:
        assert loaded == expected


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_in_containers_load(tmp_path, protocol):
    path = _write(tmp_path / "weights.pkl", _arrays(), protocol)
    _assert_same(load_safe_pickle(str(path)), _arrays())


def test_numpy_1_module_names_load(tmp_path):
    """NumPy 1.x names its array functions numpy.core.multiarray, NumPy 2 numpy._core.multiarray."""
    numpy2_names = pickle.dumps(_arrays(), protocol=2)
    numpy1_names = numpy2_names.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in numpy1_names
    assert b"cnumpy.core.multiarray\nscalar\n" in numpy1_names
    path = tmp_path / "numpy1.pkl"
    path.write_bytes(numpy1_names)
    _assert_same(load_safe_pickle(str(path)), _arrays())


def _python2_array_pickle(name: str, values: tuple) -> bytes:
    """``{name: np.array(values, float32)}`` as Python 2 with NumPy 1.x pickled it (protocol 2, byte strings).

    Written opcode by opcode: the names and the array's raw data are SHORT_BINSTRINGs, byte strings that
    Python 3 can read only with an encoding such as latin1 (the data has bytes >= 0x80).
    """
    data = struct.pack(f"<{len(values)}f", *values)
    dtype_f4 = (b"cnumpy\ndtype\nU\x02f4K\x00K\x01\x87R"  # dtype('f4', False, True)
                b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")  # its state, little-endian
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"  # empty ndarray
             b"(K\x01K" + bytes([len(values)]) + b"\x85" + dtype_f4 + b"\x89U" + bytes([len(data)]) + data + b"tb")
    return b"\x80\x02}U" + bytes([len(name)]) + name.encode("ascii") + array + b"s."


def test_python2_pickle_loads_with_latin1(tmp_path):
    values = (1.5, -2.0)  # -2.0 is c0000000: a data byte that is not ASCII
    path = tmp_path / "msra.pkl"
    path.write_bytes(_python2_array_pickle("res2_0_branch2a_w", values))
    loaded = load_safe_pickle(str(path))
    assert list(loaded) == ["res2_0_branch2a_w"]
    array = loaded["res2_0_branch2a_w"]
    assert array.dtype == np.float32 and array.shape == (2,)
    np.testing.assert_array_equal(array, values)


@pytest.mark.parametrize("content", [b"", b"this is not a pickle\n", b"\x80\x02}q\x00"], ids=["empty", "text", "cut"])
def test_non_pickle_file_errors_clearly(tmp_path, content):
    path = tmp_path / "broken.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable pickle of NumPy arrays") as err:
        load_safe_pickle(str(path))
    assert str(path) in str(err.value)


def test_torch_save_archive_is_named(tmp_path):
    path = tmp_path / "model_final.pkl"
    torch.save({"model": {"w": torch.ones(1)}}, path)
    with pytest.raises(CheckpointError, match="zip archive"):
        load_safe_pickle(str(path))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found: .*absent.pkl"):
        load_safe_pickle(str(tmp_path / "absent.pkl"))
