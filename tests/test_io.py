"""Atomic outputs: complete or absent, never partial; normal file modes."""
from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from pipeline.io import atomic_path, write_json, write_parquet


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "x.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("stage crashed")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_outputs_are_readable_like_any_file(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    p = write_parquet(pd.DataFrame({"text": ["國領座長"]}), tmp_path / "a.parquet")
    j = write_json({"座長": "國領"}, tmp_path / "a.json")
    for f in (p, j):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask
    assert pd.read_parquet(p).text.tolist() == ["國領座長"]
    assert "國領" in j.read_text(encoding="utf-8")  # not \\u-escaped


def test_failed_directory_output_is_cleaned_up(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.unlink()
            tmp.mkdir()
            (tmp / "weights.bin").write_bytes(b"\0")
            raise RuntimeError("save failed")
    assert not out.exists() and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ all-or-nothing output sets (issue #13)
def test_transaction_installs_all_outputs_or_none(tmp_path):
    from pipeline.errors import PipelineError
    from pipeline.io import output_transaction, write_text

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("old a")
    with pytest.raises(RuntimeError):
        with output_transaction():
            write_text("new a", a)
            assert a.read_text() == "old a"  # staged, not installed yet
            raise RuntimeError("stage failed after its first output")
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temp files left
    (tmp_path / "dir").mkdir()
    with pytest.raises(PipelineError, match="dir: output path is a directory"):
        with output_transaction():
            write_text("new a", a)
            write_text("x", tmp_path / "dir")
    assert a.read_text() == "old a"
    with output_transaction():
        write_text("new a", a)
        write_text("new b", b)
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "dir"]


def test_transaction_replaces_directories_too(tmp_path):
    from pipeline.io import atomic_path, output_transaction, write_text

    ds = tmp_path / "table.parquet"  # a partitioned dataset is a directory
    ds.mkdir()
    (ds / "part-0.parquet").write_text("old")
    with output_transaction():
        with atomic_path(ds, directory=True) as tmp:
            assert tmp.is_dir() and not any(tmp.iterdir())
            (tmp / "part-1.parquet").write_text("new")
        write_text("{}", tmp_path / "metrics.json")
        assert (ds / "part-0.parquet").exists()
    assert [p.name for p in ds.iterdir()] == ["part-1.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "table.parquet"]


@pytest.mark.parametrize("case", ["is_dir", "parent_is_file", "name_too_long"])
def test_output_path_problems_are_one_line_errors(tmp_path, case):
    from pipeline.errors import PipelineError

    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    target, problem = {"is_dir": (tmp_path / "dir", "output path is a directory"),
                       "parent_is_file": (tmp_path / "file" / "out.json", "a parent path is not a directory"),
                       "name_too_long": (tmp_path / ("長" * 100 + ".json"), "file name too long")}[case]
    with pytest.raises(PipelineError) as err:
        write_json({"a": 1}, target)
    assert str(err.value) == f"{target}: cannot create output: {problem}" or str(err.value) == f"{target}: {problem}"
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_directory(tmp_path):
    from pipeline.errors import PipelineError

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(PipelineError, match="ro/x.json: cannot write output: Permission denied"):
            write_json({}, ro / "x.json")
    finally:
        ro.chmod(0o700)
