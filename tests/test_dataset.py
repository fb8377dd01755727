"""Partitioned Parquet datasets (pipeline.dataset): row order, one schema, all-or-nothing commits."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from pipeline.dataset import DatasetWriter, count_rows, iter_parts, open_datasets, part_files, read_table, write_dataset
from pipeline.errors import PipelineError


def _meeting(i: int, n: int = 3, speaker=None) -> pd.DataFrame:
    return pd.DataFrame({"meeting_id": [f"m{i:03d}"] * n, "order": np.arange(n) + 10 * i,
                         "speaker": [speaker] * n, "terms": [["地域", "光ファイバ"]] * n})


def test_rows_come_back_in_write_order_with_one_schema(tmp_path):
    path = tmp_path / "sentences.parquet"
    with DatasetWriter(path) as w:
        for i in range(25):  # every other meeting has an all-null speaker column (null type in Arrow)
            w.write(_meeting(i, speaker=None if i % 2 == 0 else "國領"))
    files = part_files(path)
    assert len(files) == 25 and path.is_dir()
    assert len({pq.read_schema(f).remove_metadata().to_string() for f in files}) == 1  # rewritten to one schema
    df = read_table(path)
    assert df["order"].tolist() == [o for i in range(25) for o in np.arange(3) + 10 * i]
    assert df["speaker"].isna().sum() == 13 * 3 and list(df["terms"].iloc[0]) == ["地域", "光ファイバ"]
    # plain pandas / pyarrow readers see the same table
    assert pd.read_parquet(path)["order"].tolist() == df["order"].tolist()
    assert pads.dataset(path, format="parquet").count_rows() == count_rows(path) == 75
    # projection, filters and one part at a time
    assert list(read_table(path, columns=["meeting_id"]).columns) == ["meeting_id"]
    only = read_table(path, filter=pads.field("meeting_id") == "m007")
    assert set(only["meeting_id"]) == {"m007"} and len(only) == 3
    assert [len(p) for p in iter_parts(path, columns=["order"])] == [3] * 25
    with pytest.raises(PipelineError, match="lacks column"):
        read_table(path, columns=["nope"])


def test_read_table_part_by_part_equals_a_pyarrow_dataset_scan(tmp_path):
    """read_table reads file by file; the table is what a pyarrow dataset scan with the unified schema
    gives (row order = part order, all-null parts promoted), with projection and filters."""
    from pipeline.dataset import dataset

    path = tmp_path / "sentences.parquet"
    with DatasetWriter(path) as w:
        for i in range(12):
            w.write(_meeting(i, speaker=None if i % 3 == 0 else "國領"))
    scan = dataset(path).to_table()
    assert read_table(path, arrow=True).equals(scan)
    pd.testing.assert_frame_equal(read_table(path), scan.to_pandas())
    assert read_table(path, columns=["order", "meeting_id"], arrow=True).column_names == ["order", "meeting_id"]
    only = read_table(path, columns=["order"], filter=pads.field("meeting_id") == "m004")
    assert only["order"].tolist() == [40, 41, 42]
    single = tmp_path / "one.parquet"
    _meeting(1).to_parquet(single)
    pd.testing.assert_frame_equal(read_table(single), pd.read_parquet(single))
    with pytest.raises(PipelineError, match="not found"):
        read_table(tmp_path / "missing.parquet")


def test_kept_parts_are_the_same_files_and_meetings_are_found_by_metadata(tmp_path):
    """A part kept from the previous output keeps its bytes and mtime; each part names its meeting;
    MeetingTable reads one meeting's file."""
    import hashlib
    import os

    from pipeline.dataset import MeetingTable, partitions

    path = tmp_path / "st.parquet"
    with DatasetWriter(path) as w:
        for i in (0, 1, 2):
            w.write(_meeting(i).drop(columns="meeting_id"), partition=f"m{i:03d}")
    before = {k: (f, hashlib.sha256(f.read_bytes()).hexdigest(), os.stat(f).st_mtime_ns) for k, f in partitions(path)}
    assert list(before) == ["m000", "m001", "m002"]
    with DatasetWriter(path) as w:  # a meeting added in the middle: the others are kept
        w.keep(before["m000"][0])
        w.write(_meeting(9).drop(columns="meeting_id"), partition="m009")
        w.keep(before["m001"][0])
        w.keep(before["m002"][0])
    after = dict(partitions(path))
    assert list(after) == ["m000", "m009", "m001", "m002"]
    for k in ("m000", "m001", "m002"):
        f = after[k]
        assert (hashlib.sha256(f.read_bytes()).hexdigest(), os.stat(f).st_mtime_ns) == before[k][1:]
    t = MeetingTable(path, columns=["order"])
    assert t.indexed and t.meetings == ["m000", "m009", "m001", "m002"]
    assert t.get("m009")["order"].tolist() == [90, 91, 92] and len(t.get("nope")) == 0
    legacy = tmp_path / "legacy.parquet"  # one file of several meetings: read once, split by meeting
    pd.concat([_meeting(i) for i in (3, 1, 3)]).to_parquet(legacy)
    t = MeetingTable(legacy)
    assert not t.indexed and t.meetings == ["m003", "m001"]
    assert t.get("m003")["order"].tolist() == [30, 31, 32, 30, 31, 32]
    plain = tmp_path / "plain.parquet"  # parts without the metadata key: the meeting_id statistics
    with DatasetWriter(plain) as w:
        for i in (5, 6):
            w.write(_meeting(i))
    assert [k for k, _ in partitions(plain)] == ["m005", "m006"] and MeetingTable(plain).indexed


def test_failure_leaves_previous_outputs_untouched(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_dataset(pd.DataFrame({"x": [1, 2]}), a)
    write_dataset(_meeting(1), b)
    with pytest.raises(RuntimeError):
        with open_datasets({"a": a, "b": b}) as ws:
            ws["a"].write(_meeting(2))
            ws["b"].write(_meeting(3))
            raise RuntimeError("stage failed half-way")
    assert read_table(a)["x"].tolist() == [1, 2]
    assert read_table(b)["meeting_id"].unique().tolist() == ["m001"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]  # no temp dirs left
    with open_datasets({"a": a, "b": b}) as ws:
        ws["a"].write(_meeting(2))
        ws["b"].write(_meeting(3))
    assert read_table(a)["meeting_id"].unique().tolist() == ["m002"]
    assert read_table(b)["meeting_id"].unique().tolist() == ["m003"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.parquet", "b.parquet"]


def test_a_file_where_a_dataset_goes_is_a_one_line_error(tmp_path):
    old = tmp_path / "tokens.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(old)  # e.g. a single-file output of an older version
    with pytest.raises(PipelineError, match="a directory is needed"):
        write_dataset(_meeting(1), old)
    assert old.is_file() and read_table(old)["x"].tolist() == [1]


def test_empty_table_keeps_its_columns(tmp_path):
    path = tmp_path / "entities.parquet"
    with DatasetWriter(path) as w:
        w.write(pd.DataFrame(columns=["sentence_id", "text", "label"]))
    df = read_table(path)
    assert len(df) == 0 and list(df.columns) == ["sentence_id", "text", "label"]
    with pytest.raises(PipelineError, match="not found"):
        read_table(tmp_path / "none.parquet")


def test_a_dataset_may_replace_a_legacy_single_file_when_asked(tmp_path):
    """sentence_topics is persisted by DVC: its older single file is replaced by the dataset on the
    next successful run, and left as it was by a failing one."""
    old = tmp_path / "sentence_topics.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(old)
    with pytest.raises(RuntimeError):
        with DatasetWriter(old, replace_file=True) as w:
            w.write(_meeting(1))
            raise RuntimeError("stage failed")
    assert old.is_file() and read_table(old)["x"].tolist() == [1]
    with DatasetWriter(old, replace_file=True) as w:
        w.write(_meeting(1))
    assert old.is_dir() and read_table(old)["meeting_id"].tolist() == ["m001"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentence_topics.parquet"]


def test_write_dataset_keeps_unchanged_meetings_and_keys_may_come_from_another_frame(tmp_path):
    """write_dataset(keep=True): a meeting whose rows equal its previous part keeps that file (bytes
    and mtime); a changed or new meeting is written; rows stay in frame order, a key split over two
    runs is never kept. Keys may be given per row (sentence_topics: the sentences' meeting ids)."""
    import hashlib
    import os

    from pipeline.dataset import partitions

    path = tmp_path / "st.parquet"
    first = pd.concat([_meeting(i) for i in (1, 2, 3)], ignore_index=True)
    assert write_dataset(first.drop(columns="meeting_id"), path, by=first["meeting_id"]) == {"written": 3, "kept": 0}
    before = {k: (hashlib.sha256(f.read_bytes()).digest(), os.stat(f).st_mtime_ns) for k, f in partitions(path)}
    second = pd.concat([_meeting(1), _meeting(2, n=4), _meeting(3), _meeting(4)], ignore_index=True)
    res = write_dataset(second.drop(columns="meeting_id"), path, by=second["meeting_id"].to_numpy(), keep=True)
    assert res == {"written": 2, "kept": 2}
    after = {k: (hashlib.sha256(f.read_bytes()).digest(), os.stat(f).st_mtime_ns) for k, f in partitions(path)}
    assert list(after) == ["m001", "m002", "m003", "m004"]
    assert after["m001"] == before["m001"] and after["m003"] == before["m003"] and after["m002"] != before["m002"]
    pd.testing.assert_frame_equal(read_table(path), second.drop(columns="meeting_id"))
    split = pd.concat([_meeting(1), _meeting(4), _meeting(1)], ignore_index=True)  # m001 in two runs
    assert write_dataset(split, path, keep=True) == {"written": 3, "kept": 0}
    assert read_table(path)["order"].tolist() == split["order"].tolist()
