"""Incremental runs: adding one minutes file re-ingests, re-parses and re-embeds only that file;
removing a file removes its rows. Real stages on real Tokyo Assembly meetings (small ones, so
GiNZA stays fast), each written out as its own raw JSON file, with a private cache dir."""
from __future__ import annotations

import json
import logging
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run 1: files a, b. Run 2: + file c. Run 3: - file a. Each with the same private cache."""
    tmp = tmp_path_factory.mktemp("incremental")
    raw = tmp / "raw"
    mp = pytest.MonkeyPatch()
    mp.setenv("POLICY_TOPICS_CACHE_DIR", str(tmp / "cache"))
    mp.setenv("POLICY_TOPICS_EXECUTOR", "local")
    mp.setenv("POLICY_TOPICS_N_WORKERS", "1")
    handler = _Records()
    logging.getLogger("policy_topics.partition").addHandler(handler)
    logging.getLogger("policy_topics.partition").setLevel(logging.INFO)
    try:
        _write_meeting(raw, "tokyo-a.json")
        _write_meeting(raw, "tokyo-b.json")
        first = _run(raw)
        handler.lines.clear()
        _write_meeting(raw, "tokyo-c.json")
        second = _run(raw)
        second["log"] = list(handler.lines)
        (raw / "tokyo-a.json").unlink()
        third = _run(raw)
    finally:
        logging.getLogger("policy_topics.partition").removeHandler(handler)
        mp.undo()
    return first, second, third


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


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
    st = second["stats"]
    assert st["ingest"].computed == ["tokyo-c.json"]
    assert sorted(st["ingest"].cached) == ["tokyo-a.json", "tokyo-b.json"]
    new_meeting = [m for m in second["utterances"]["meeting_id"].unique() if str(m).startswith("tokyo-c")]
    assert st["parse"].computed == [str(m) for m in new_meeting] and len(st["parse"].cached) == 2
    assert st["embed"].computed == st["parse"].computed and len(st["embed"].cached) == 2
    # the stage logs say so too
    assert any(line.startswith("parse: 3 partition(s), 2 from cache, 1 computed") for line in second["log"])
    assert any(line.startswith("embed: 3 partition(s), 2 from cache, 1 computed") for line in second["log"])
    # earlier meetings' rows and vectors are unchanged
    for stem in ("tokyo-a", "tokyo-b"):
        pd.testing.assert_frame_equal(_meeting(first["sentences"], stem), _meeting(second["sentences"], stem))
    v1 = dict(zip(first["ids"], first["vectors"]))
    v2 = dict(zip(second["ids"], second["vectors"]))
    assert set(v1) < set(v2)
    assert all(np.array_equal(v1[k], v2[k]) for k in v1)
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
