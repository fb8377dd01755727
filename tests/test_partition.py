"""Per-partition map: content-hash cache, stats, error collection, local executors."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from pipeline import partition as P
from pipeline.errors import MultiFileError, PipelineError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "raw" / "mic-chiiki-ict-06_2024-04-24.txt"


def line_stats(payload: tuple[str, str]) -> dict[str, pd.DataFrame]:
    """A cheap, deterministic per-partition function over real text (module-level: picklable)."""
    name, text = payload
    if "BAD" in name:
        raise PipelineError(name, "unreadable part")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    df = pd.DataFrame({"part": name, "i": range(len(lines)), "text": lines,
                       "n_chars": [len(x) for x in lines],
                       "speaker_turn": [x.startswith("○") for x in lines]})
    return {"lines": df, "summary": pd.DataFrame({"part": [name], "n_lines": [len(lines)]})}


def sample_parts(n: int = 6) -> list[P.Partition]:
    """The sample minutes cut into ``n`` chunks of lines: real text, distinct digests."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    step = -(-len(lines) // n)
    parts = []
    for k in range(n):
        text = "\n".join(lines[k * step:(k + 1) * step])
        name = f"sample-{k}"
        parts.append(P.Partition(name, (name, text), P.hash_bytes(text.encode())))
    return parts


def test_cache_reuses_unchanged_partitions_and_drops_removed(tmp_path):
    parts = sample_parts(4)
    stats: dict = {}
    first = P.map_partitions(line_stats, parts, stage="t", cache_dir=tmp_path, executor="local",
                             n_workers=1, stats=stats)
    assert stats["computed"] == [p.name for p in parts] and stats["cached"] == []
    assert sum(len(r["lines"]) for r in first) > 100

    # add one partition, remove another: only the new one is computed, the removed one is gone
    extra = P.Partition("extra", ("extra", "○國領座長　ありがとうございました。\n以上"), "d-extra")
    second = P.map_partitions(line_stats, parts[1:] + [extra], stage="t", cache_dir=tmp_path,
                              executor="local", n_workers=1)
    run = P.last_run_stats["t"]
    assert run.computed == ["extra"] and run.cached == [p.name for p in parts[1:]]
    merged = P.concat_tables(second)
    assert set(merged["lines"]["part"]) == {"sample-1", "sample-2", "sample-3", "extra"}
    pd.testing.assert_frame_equal(second[0]["lines"], first[1]["lines"])

    # params are part of the key
    P.map_partitions(line_stats, parts[:1], stage="t", params={"x": 1}, cache_dir=tmp_path,
                     executor="local", n_workers=1)
    assert P.last_run_stats["t"].computed == ["sample-0"]


def test_errors_are_collected_after_all_partitions_ran(tmp_path):
    parts = sample_parts(3)
    bad = [P.Partition("BAD-1", ("BAD-1", "x"), "b1"), P.Partition("BAD-2", ("BAD-2", "y"), "b2")]
    with pytest.raises(PipelineError, match="BAD-1: unreadable part"):
        P.map_partitions(line_stats, parts[:1] + bad[:1], stage="e", cache_dir=tmp_path, executor="local")
    with pytest.raises(MultiFileError) as exc:
        P.map_partitions(line_stats, [bad[0], *parts, bad[1]], stage="e", cache_dir=tmp_path,
                         executor="local")
    assert exc.value.lines() == ["BAD-1: unreadable part", "BAD-2: unreadable part"]
    run = P.last_run_stats["e"]
    # the good partitions were still computed (and cached) despite the bad ones
    assert run.failed == ["BAD-1", "BAD-2"] and set(run.computed) | set(run.cached) == {p.name for p in parts}


def test_iter_partitions_streams_in_input_order(tmp_path):
    parts = sample_parts(5)
    P.map_partitions(line_stats, parts[::2], stage="s", cache_dir=tmp_path, executor="local")
    names = [part.name for part, tables in
             P.iter_partitions(line_stats, parts, stage="s", cache_dir=tmp_path, executor="local")]
    assert names == [p.name for p in parts]
    assert P.last_run_stats["s"].computed == ["sample-1", "sample-3"]


def test_process_pool_equals_inline(tmp_path):
    parts = sample_parts(4)
    inline = P.concat_tables(P.map_partitions(line_stats, parts, stage="p", cache=False, executor="local",
                                              n_workers=1))
    pooled = P.concat_tables(P.map_partitions(line_stats, parts, stage="p", cache=False, executor="local",
                                              n_workers=2))
    for name in inline:
        pd.testing.assert_frame_equal(inline[name], pooled[name])
    assert len(P.last_run_stats["p"].worker_pids) >= 1 and os.getpid() not in P.last_run_stats["p"].worker_pids


def test_helpers_and_config(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("一", encoding="utf-8")
    (tmp_path / "b.txt").write_text("二", encoding="utf-8")
    parts = P.file_partitions(tmp_path.glob("*.txt"), root=tmp_path)
    assert [p.name for p in parts] == ["a.txt", "b.txt"] and parts[0].digest != parts[1].digest
    df = pd.DataFrame({"meeting_id": ["m2", "m1", "m2"], "text": ["あ", "い", "う"]})
    fp = P.frame_partitions(df)
    assert [p.name for p in fp] == ["m2", "m1"] and list(fp[0].payload["text"]) == ["あ", "う"]

    assert P.resolve_executor()[0] in P.EXECUTORS  # params.yaml scale section is readable
    monkeypatch.setenv("POLICY_TOPICS_EXECUTOR", "dask")
    monkeypatch.setenv("POLICY_TOPICS_SCHEDULER", "tcp://10.0.0.1:8786")
    assert P.resolve_executor() [::2] == ("dask", "tcp://10.0.0.1:8786")
    with pytest.raises(PipelineError, match="scale.executor"):
        P.resolve_executor("spark")
    monkeypatch.setenv("POLICY_TOPICS_CACHE_DIR", str(tmp_path / "c"))
    assert P.cache_root() == tmp_path / "c"


def test_largest_partitions_are_scheduled_first_but_yielded_in_order(tmp_path):
    df = pd.DataFrame({"text": ["あ" * 10, "い" * 500]})
    assert P.payload_weight({"rows": df, "params": {}}) == 510
    assert P.payload_weight(str(SAMPLE)) == SAMPLE.stat().st_size
    parts = sample_parts(5)
    res = P.map_partitions(line_stats, parts, stage="w", cache_dir=tmp_path, executor="local", n_workers=2)
    assert [r["summary"]["part"][0] for r in res] == [p.name for p in parts]
