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
