"""The ``classify`` stage meeting by meeting: read one meeting's sentences, topics, embeddings and
utterances, tag it (per-meeting cache, :mod:`pipeline.classify.cache`), write its part of the
processed ``sentences`` / ``utterances`` datasets, add its candidates to the label queue; so the
stage holds one meeting's rows at a time, never the corpus.

Outputs appear together or not at all (one :func:`pipeline.io.output_transaction`): a failing
meeting leaves the previous outputs as they were.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError

log = logging.getLogger("policy_topics.classify")

#: what classify reads of the topics stage's sentence_topics (the rest is not needed)
TOPIC_COLUMNS = ("sentence_id", "topic_id", "topic_label", "topic_prob", "is_procedural")


@dataclass
class ClassifyRun:
    """Counts of one run (the stage's log line) and its label queue."""

    sentences: int = 0
    with_theme: int = 0
    meetings: int = 0
    cached: int = 0
    queue: pd.DataFrame = field(default_factory=pd.DataFrame)


class _Topics:
    """sentence_topics by meeting: a dataset written one meeting per file is read a meeting at a
    time; an older single file (no meeting column) is read once, only its topic columns."""

    def __init__(self, path: Path):
        from pipeline.dataset import MeetingTable, columns_of

        have = columns_of(path)
        if "sentence_id" not in have:
            raise PipelineError(path, "sentence topics table lacks `sentence_id`")
        cols = [c for c in TOPIC_COLUMNS if c in have] + [c for c in have if c not in TOPIC_COLUMNS
                                                          and c not in ("meeting_id",)]
        self.table = MeetingTable(path, columns=cols)
        self.by_id: pd.DataFrame | None = None
        if not self.table.indexed and "meeting_id" not in have:
            from pipeline.dataset import read_table

            self.by_id = read_table(path, columns=cols).drop_duplicates("sentence_id").set_index("sentence_id")

    def get(self, meeting_id: str, sentence_ids: pd.Series) -> pd.DataFrame:
        if self.by_id is not None:
            ids = sentence_ids.astype(str)
            sub = self.by_id.reindex(ids[ids.isin(self.by_id.index)].to_numpy())
            return sub.rename_axis("sentence_id").reset_index()
        return self.table.get(meeting_id)


def _meeting_order(sentences, utterances) -> list[str | None]:
    """Meetings in the utterances' order (the parse stage's order), then any only in sentences."""
    order = list(utterances.meetings) if utterances is not None else []
    seen = set(order)
    order += [m for m in sentences.meetings if m not in seen]
    return order


class _Vectors:
    """The embeddings of one meeting's sentences, in their order: the embed stage's dataset is read one
    meeting's file at a time; a legacy ``.npz`` (or parts without a meeting) is read once."""

    def __init__(self, path: Path):
        from pipeline.dataset import MeetingTable

        self.path, self.table = path, None
        if path.is_dir():
            t = MeetingTable(path, columns=["sentence_id", "vector"])
            if t.indexed:
                self.table = t
                return
        from pipeline.classify.features import _read_vectors

        ids, self.vecs = _read_vectors(path)
        self.index = {str(s): i for i, s in enumerate(np.asarray(ids).tolist())}

    def get(self, meeting_id: str, sentence_ids: list[str]) -> np.ndarray:
        from pipeline.classify.features import align_vectors

        if self.table is None:
            return align_vectors(self.index, self.vecs, sentence_ids, self.path)
        part = self.table.get(meeting_id)
        index = {s: i for i, s in enumerate(part["sentence_id"].astype(str).tolist())}
        vecs = np.vstack(part["vector"].to_numpy()) if len(part) else np.zeros((0, 0), np.float32)
        return align_vectors(index, vecs, sentence_ids, self.path)


def classify_dataset(model, sentences: str | Path, out_dir: str | Path, *, embeddings: str | Path | None = None,
                     topics: str | Path | None = None, utterances: str | Path | None = None,
                     meetings: str | Path | None = None, model_key: str | None = None, cache_dir=None,
                     labelled=frozenset(), queue_size: int = 50) -> ClassifyRun:
    """Tag every sentence meeting by meeting; write ``out_dir/sentences.parquet`` (and
    ``utterances.parquet``) as datasets of one Parquet file per meeting, ``meetings.parquet`` and
    ``label_queue.csv``; all in one transaction. Returns the run's counts and the queue."""
    from pipeline.cells import neutralise_frame
    from pipeline.classify.queue import QueueBuilder
    from pipeline.classify.tagging import classify_tables
    from pipeline.dataset import MeetingTable, columns_of, open_datasets, read_table
    from pipeline.io import write_parquet, write_text

    sentences, out = Path(sentences), Path(out_dir)
    if not sentences.exists():
        raise PipelineError(sentences, "file not found")
    by_meeting = "meeting_id" in columns_of(sentences)
    sent_t = MeetingTable(sentences) if by_meeting else None
    utt_t = MeetingTable(utterances) if utterances and by_meeting else None
    top_t = _Topics(Path(topics)) if topics and by_meeting else None
    emb = _Vectors(Path(embeddings)) if embeddings and getattr(model, "use_embeddings", False) \
        and Path(embeddings).exists() else None
    run = ClassifyRun()
    qb = QueueBuilder(model, labelled, queue_size)
    paths = {"sentences": out / "sentences.parquet"}
    if utterances:
        paths["utterances"] = out / "utterances.parquet"
    with open_datasets(paths) as writers:
        if not by_meeting:  # no meeting column: one partition (a table of loose sentences)
            whole = {"sentences": read_table(sentences),
                     "topics": read_table(topics) if topics else None,
                     "utterances": read_table(utterances) if utterances else None}
            chunks = [(None, whole)]
        else:
            order = _meeting_order(sent_t, utt_t)
            chunks = [(m, None) for m in order] if order else \
                [(None, {"sentences": sent_t.schema.empty_table().to_pandas(), "topics": None, "utterances": None})]
        for m, whole in chunks:
            if whole is None:
                s_m = sent_t.get(m)
                parts = {"sentences": s_m, "utterances": utt_t.get(m) if utt_t is not None else None,
                         "topics": top_t.get(m, s_m["sentence_id"]) if top_t is not None else None}
            else:
                parts = whole
            s_m = parts["sentences"]
            E = emb.get(m, s_m["sentence_id"].astype(str).tolist()) if emb is not None else None
            tables = classify_tables(model, s_m, embeddings=E, topics=parts["topics"], utterances=parts["utterances"],
                                     model_key=model_key, cache_dir=cache_dir)
            s = tables["sentences"]
            writers["sentences"].write(s, partition=m)
            if "utterances" in writers and tables.get("utterances") is not None:
                writers["utterances"].write(tables["utterances"], partition=m)
            qb.add(s, tables["_proba"], tables["_rule_evidence"], tables.get("_embeddings"))
            run.meetings += 1
            run.cached += int(tables.get("_cached", 0))
            run.sentences += len(s)
            run.with_theme += int(s["themes"].map(len).gt(0).sum()) if len(s) else 0
        if meetings:
            write_parquet(read_table(meetings), out / "meetings.parquet")
        run.queue = qb.queue()
        write_text(neutralise_frame(run.queue).to_csv(index=False), out / "label_queue.csv")
    return run
