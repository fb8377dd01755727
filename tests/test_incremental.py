"""Incremental runs: adding one minutes file re-ingests, re-parses and re-embeds only that file;
removing a file removes its rows. Real stages on real Tokyo Assembly meetings (small ones, so
GiNZA stays fast), each written out as its own raw JSON file, with a private cache dir.

Run 1 uses the library functions in this process, run 2 (one file added) the `policy-topics`
CLI in fresh subprocesses with another hash seed, as `dvc repro` would, and run 3 (one file
removed) the library again: cache keys must survive process boundaries."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import partition as P

TOKYO = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tokyo-assembly"
SOURCE = TOKYO / "committee-disaster-prevention.json"
#: (raw file name, index of the meeting in committee-disaster-prevention.json): all small meetings
FILES = {"tokyo-a.json": 0, "tokyo-b.json": 5, "tokyo-c.json": 2}

pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason=f"{SOURCE} not available")


def _write_meeting(raw: Path, name: str) -> None:
    meetings = json.loads(SOURCE.read_text(encoding="utf-8"))
    raw.mkdir(parents=True, exist_ok=True)
    (raw / name).write_text(json.dumps([meetings[FILES[name]]], ensure_ascii=False), encoding="utf-8")


def _run(raw: Path) -> dict:
    """ingest -> parse -> embed through the stages' library functions; returns tables + per-stage stats."""
    from pipeline.embed import embed_sentences
    from pipeline.ingest import ingest_paths
    from pipeline.parse import parse_utterances

    ing = ingest_paths([raw])
    parsed = parse_utterances(ing.utterances, ing.meetings)
    ids, vecs = embed_sentences(parsed.sentences)
    return {"utterances": ing.utterances, "sentences": parsed.sentences, "tokens": parsed.tokens,
            "ids": ids, "vectors": vecs,
            "stats": {s: P.last_run_stats[s] for s in ("ingest", "parse", "embed")}}


PART_LOG = re.compile(r"(\w+): (\d+) partition\(s\), (\d+) from cache, (\d+) computed \[[^\]]*\] in [\d.]+s(?:: (.*))?$")


def _run_cli(raw: Path, out: Path) -> dict:
    """ingest -> parse -> embed through the CLI (one subprocess per stage, like `dvc repro`)."""
    from pipeline.embed import load_embeddings

    cmds = [
        ["ingest", str(raw), "-o", f"{out}/utterances.parquet", "--meetings", f"{out}/meetings.parquet"],
        ["parse", f"{out}/utterances.parquet", "--meetings", f"{out}/meetings.parquet", "--sentences",
         f"{out}/sentences.parquet", "--tokens", f"{out}/tokens.parquet", "--entities", f"{out}/entities.parquet",
         "--report", f"{out}/parse.json"],
        ["embed", f"{out}/sentences.parquet", "-o", f"{out}/embeddings.parquet"],
    ]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    log: list[str] = []
    stats: dict = {}
    for args in cmds:
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env,
                              cwd=P.ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        for line in proc.stderr.replace("\r", "\n").splitlines():
            msg = line.split("] ", 1)[-1]
            m = PART_LOG.match(msg)
            if m:
                log.append(msg)
                stats[m.group(1)] = {"n": int(m.group(2)), "cached": int(m.group(3)), "computed": int(m.group(4)),
                                     "names": (m.group(5) or "").split(", ") if m.group(5) else []}
    ids, vecs = load_embeddings(out / "embeddings.parquet")
    return {"utterances": pd.read_parquet(out / "utterances.parquet"),
            "sentences": pd.read_parquet(out / "sentences.parquet"),
            "tokens": pd.read_parquet(out / "tokens.parquet"), "ids": ids, "vectors": vecs,
            "stats": stats, "log": log}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run 1: files a, b. Run 2: + file c. Run 3: - file a. Each with the same private cache."""
    tmp = tmp_path_factory.mktemp("incremental")
    raw = tmp / "raw"
    mp = pytest.MonkeyPatch()
    mp.setenv("POLICY_TOPICS_CACHE_DIR", str(tmp / "cache"))
    mp.setenv("POLICY_TOPICS_EXECUTOR", "local")
    mp.setenv("POLICY_TOPICS_N_WORKERS", "1")
    try:
        _write_meeting(raw, "tokyo-a.json")
        _write_meeting(raw, "tokyo-b.json")
        first = _run(raw)
        _write_meeting(raw, "tokyo-c.json")
        second = _run_cli(raw, tmp / "run2")
        (raw / "tokyo-a.json").unlink()
        third = _run(raw)
    finally:
        mp.undo()
    return first, second, third


def _meeting(df: pd.DataFrame, stem: str) -> pd.DataFrame:
    return df[df["meeting_id"].astype(str).str.startswith(stem)].reset_index(drop=True)


def test_first_run_computes_everything(runs):
    first, _, _ = runs
    st = first["stats"]
    assert st["ingest"].computed == ["tokyo-a.json", "tokyo-b.json"] and not st["ingest"].cached
    assert len(st["parse"].computed) == 2 and not st["parse"].cached
    assert len(st["embed"].computed) == 2 and not st["embed"].cached
    assert len(first["sentences"]) > 20 and len(first["vectors"]) == len(first["sentences"])


def test_adding_a_file_processes_only_that_file(runs):
    first, second, _ = runs
    st = second["stats"]  # from the CLI's stage log lines
    assert st["ingest"] == {"n": 3, "cached": 2, "computed": 1, "names": ["tokyo-c.json"]}
    new_meeting = [str(m) for m in second["utterances"]["meeting_id"].unique() if str(m).startswith("tokyo-c")]
    assert st["parse"] == {"n": 3, "cached": 2, "computed": 1, "names": new_meeting}, second["log"]
    assert st["embed"] == {"n": 3, "cached": 2, "computed": 1, "names": new_meeting}, second["log"]
    # earlier meetings' rows and vectors are unchanged
    for stem in ("tokyo-a", "tokyo-b"):
        pd.testing.assert_frame_equal(_meeting(first["sentences"], stem), _meeting(second["sentences"], stem))
    v1 = dict(zip(first["ids"], first["vectors"]))
    v2 = dict(zip(second["ids"], second["vectors"]))
    assert set(v1) < set(v2)
    assert all(np.array_equal(v1[k], v2[k]) for k in v1)  # read from the cache, not recomputed: same bytes
    assert len(_meeting(second["sentences"], "tokyo-c")) > 0


def test_removing_a_file_removes_its_rows(runs):
    _, second, third = runs
    st = third["stats"]
    assert all(not st[s].computed for s in ("ingest", "parse", "embed"))
    for table in ("utterances", "sentences", "tokens"):
        df = third[table]
        col = "meeting_id" if "meeting_id" in df else "sentence_id"
        assert not df[col].astype(str).str.startswith("tokyo-a").any(), table
    assert not any(str(i).startswith("tokyo-a") for i in third["ids"])
    for stem in ("tokyo-b", "tokyo-c"):
        pd.testing.assert_frame_equal(_meeting(second["sentences"], stem), _meeting(third["sentences"], stem))
