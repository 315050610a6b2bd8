"""Atomic writes keep the old file when writing fails, and leave no temporary files behind."""
import pytest

from posekit.utils.io import atomic_write, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "out" / "results.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert target.read_text() == '{"a": 2}'
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "checkpoint.txt"
    atomic_write_text(target, "good")

    def broken(tmp):
        with open(tmp, "w") as handle:
            handle.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.txt"]


def test_written_files_get_the_mode_open_would_give(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
