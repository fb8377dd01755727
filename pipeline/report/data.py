"""Load a pipeline output directory (data/processed) for the report and notebooks.

Only reads the processed tables (schemas in docs/ARCHITECTURE.md); never recomputes
a pipeline stage. Optional tables (entities, topic_*) may be absent: the report then
says so instead of failing, so a report can be built from any output directory.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.taxonomy import Theme, load_taxonomy

log = logging.getLogger("policy_topics.report")

REQUIRED = {
    "sentences": ["sentence_id", "meeting_id", "utterance_id", "text"],
    "utterances": ["meeting_id", "utterance_id", "text"],
    "meetings": ["meeting_id"],
}
OPTIONAL = ["entities", "topic_info", "topics_per_class", "topics_over_time", "topic_hierarchy"]
#: columns holding lists (parquet gives numpy arrays; we normalise to Python lists)
LIST_COLUMNS = {
    "sentences": ["themes", "terms"],
    "utterances": ["themes"],
    "meetings": ["attendees", "officials", "absentees", "agenda"],
    "topic_info": ["terms", "weights", "representative"],
    "topics_per_class": ["terms"],
    "topics_over_time": ["terms"],
}
PROCEDURAL = "procedural"
#: sentence columns the report never holds in memory: ``terms`` is aggregated straight from disk
#: (:func:`topic_term_counts`, part by part), ``theme_evidence`` is not shown
NOT_LOADED = {"sentences": ("terms", "theme_evidence")}


@dataclass
class ReportData:
    """The processed tables of one pipeline run (or a subset of it)."""

    input_dir: Path
    sentences: pd.DataFrame
    utterances: pd.DataFrame
    meetings: pd.DataFrame
    themes: list[Theme]
    entities: pd.DataFrame | None = None
    topic_info: pd.DataFrame | None = None
    topics_per_class: pd.DataFrame | None = None
    topics_over_time: pd.DataFrame | None = None
    topic_hierarchy: pd.DataFrame | None = None
    label_queue: pd.DataFrame | None = None
    #: topics stage's topic_model.json: when / on how many meetings the topic model was fitted
    topic_model: dict | None = None
    #: human-readable description of the subset ("" = everything)
    subset: str = ""
    missing: list[str] = field(default_factory=list)

    @property
    def theme_ids(self) -> list[str]:
        return [t.id for t in self.themes]

    @property
    def policy_theme_ids(self) -> list[str]:
        return [t.id for t in self.themes if t.id != PROCEDURAL]

    def theme(self, theme_id: str) -> Theme:
        for t in self.themes:
            if t.id == theme_id:
                return t
        return Theme(theme_id, theme_id, theme_id)

    #: results of substantive() / theme_long(), kept for the sentences table they were computed on
    #: (the report asks ~50 times; each pass over 28k sentences cost ~40 ms)
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def _cached(self, key: str, compute):
        hit = self._memo.get(key)
        if hit is not None and hit[0] is self.sentences:
            return hit[1]
        value = compute()
        self._memo[key] = (self.sentences, value)
        return value

    def substantive(self) -> pd.DataFrame:
        """Sentences carrying at least one policy (non-procedural) theme."""
        s = self.sentences
        return self._cached("substantive", lambda: s[s["themes"].map(lambda ts: any(t != PROCEDURAL for t in ts))])

    def theme_long(self, substantive_only: bool = True) -> pd.DataFrame:
        """One row per (sentence, theme), with the sentence's columns."""
        def compute():
            s = self.substantive() if substantive_only else self.sentences
            long = s.explode("themes").dropna(subset=["themes"]).rename(columns={"themes": "theme"})
            if substantive_only:
                long = long[long["theme"] != PROCEDURAL]
            return long

        return self._cached(f"theme_long:{substantive_only}", compute)


def _read_table(path: Path, skip: tuple[str, ...] = ()) -> pd.DataFrame:
    from pipeline.dataset import columns_of, read_table

    try:
        cols = [c for c in columns_of(path) if c not in skip] if skip else None
        return read_table(path, columns=cols)  # a single file or a partitioned dataset directory
    except PipelineError:
        raise
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise PipelineError(path, f"cannot read parquet table: {exc}") from exc


def _to_list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, float) and np.isnan(v):
        return []
    if isinstance(v, (list, tuple)):
        return list(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            try:
                return list(json.loads(s))
            except json.JSONDecodeError:
                pass
        return [x for x in s.replace(",", ";").split(";") if x] if s else []
    return [v]


def _json_obj(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return v
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return {}
    try:
        return json.loads(v)
    except (TypeError, json.JSONDecodeError):
        return {}


def _normalise(name: str, df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in LIST_COLUMNS.get(name, []):
        if col in df.columns:
            df[col] = df[col].map(_to_list)
    return df


def _topic_model(d: Path) -> dict | None:
    p = d / "topic_model.json"
    if not p.exists():
        return None
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PipelineError(p, f"cannot read JSON: {exc}") from exc
    return obj if isinstance(obj, dict) else None


def topic_model_note(data: ReportData) -> str:
    """One line on the topic model in use: when and on how many meetings it was fitted."""
    m = data.topic_model
    if not m or not m.get("fitted_at"):
        return ""
    added = len((m.get("drift") or {}).get("meetings_added") or [])
    tail = (f"; {added} meeting(s) added since, assigned without refitting" if m.get("mode") == "assign" and added
            else "")
    return (f"トピックモデル: {str(m['fitted_at'])[:10]} に {m.get('n_meetings_fitted')} 会議で学習 "
            f"(topic model fitted {m['fitted_at']} on {m.get('n_meetings_fitted')} meeting(s), "
            f"{m.get('n_sentences_fitted')} sentences{tail})")


def load_processed(input_dir: str | Path, taxonomy: str | Path | list[Theme] | None = None,
                   lean: bool = True) -> ReportData:
    """Read a pipeline output directory into :class:`ReportData`.

    ``sentences``, ``utterances`` and ``meetings`` parquet tables are required;
    the others are optional. Raises :class:`PipelineError` naming the bad file.
    ``lean``: the sentences' ``terms`` and ``theme_evidence`` columns stay on disk (:data:`NOT_LOADED`;
    the topic map reads ``terms`` part by part); ``lean=False`` loads every column.
    """
    d = Path(input_dir)
    if not d.is_dir():
        raise PipelineError(d, "input directory not found")
    tables: dict[str, pd.DataFrame | None] = {}
    for name, cols in REQUIRED.items():
        p = d / f"{name}.parquet"
        if not p.exists():
            raise PipelineError(p, f"required table {name}.parquet is missing (run the pipeline first)")
        df = _read_table(p, NOT_LOADED.get(name, ()) if lean else ())
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise PipelineError(p, f"missing column(s): {', '.join(missing)}")
        tables[name] = _normalise(name, df)
    missing_optional = []
    for name in OPTIONAL:
        p = d / f"{name}.parquet"
        if p.exists():
            tables[name] = _normalise(name, _read_table(p))
        else:
            tables[name] = None
            missing_optional.append(name)
    if missing_optional:
        log.warning("optional tables absent from %s: %s", d, ", ".join(missing_optional))
    lq = d / "label_queue.csv"
    label_queue = None
    if lq.exists():
        try:
            label_queue = pd.read_csv(lq)
        except Exception as exc:
            raise PipelineError(lq, f"cannot read CSV: {exc}") from exc

    themes = taxonomy if isinstance(taxonomy, list) else \
        [replace(t, ja=t.ja or t.id, en=t.en or t.id) for t in load_taxonomy(taxonomy).themes]
    data = ReportData(input_dir=d, themes=list(themes), label_queue=label_queue, topic_model=_topic_model(d),
                      missing=missing_optional, **tables)  # type: ignore[arg-type]
    _complete(data)
    return data


def _complete(data: ReportData) -> None:
    """Fill columns the report relies on, tolerating older / partial outputs."""
    s = data.sentences
    if "themes" not in s.columns:
        log.warning("sentences have no `themes` column (classify stage not run?)")
        s["themes"] = [[] for _ in range(len(s))]
    if "theme_scores" in s.columns:
        s["theme_scores"] = s["theme_scores"].map(_json_obj)
    else:
        s["theme_scores"] = [{} for _ in range(len(s))]
    if "speaker" not in s.columns:
        u = data.utterances.set_index("utterance_id")
        name = u["speaker_name"] if "speaker_name" in u else u.get("speaker_raw")
        s["speaker"] = s["utterance_id"].map(name) if name is not None else None
    u_by_id = data.utterances.drop_duplicates("utterance_id").set_index("utterance_id")
    for col in ("speaker_role", "agenda_item", "kind"):  # recover turn-level columns from utterances
        if (col not in s.columns or s[col].isna().all()) and col in u_by_id.columns:
            s[col] = s["utterance_id"].map(u_by_id[col])
    for col in ("speaker_role", "agenda_item", "kind", "topic_label"):
        if col not in s.columns:
            s[col] = None
    if "topic_id" not in s.columns:
        s["topic_id"] = -1
    if "topic_prob" not in s.columns:
        s["topic_prob"] = np.nan
    s["topic_id"] = pd.to_numeric(s["topic_id"], errors="coerce").fillna(-1).astype(int)
    s["speaker"] = s["speaker"].fillna("（不明）").astype(str)
    s["speaker_role"] = s["speaker_role"].fillna("（不明）").astype(str)
    s["themes"] = s["themes"].map(lambda ts: [str(t) for t in ts])
    if "order" not in s.columns:
        s["order"] = s.groupby("meeting_id").cumcount()
    # Unknown theme IDs (another taxonomy) are still reported, after the known ones.
    known = {t.id for t in data.themes}
    extra = sorted({t for ts in s["themes"] for t in ts} - known)
    data.themes = data.themes + [Theme(t, t, t) for t in extra]

    u = data.utterances
    for col in ("speaker_raw", "speaker_name", "speaker_role", "agenda_item", "kind",
                "meeting_title", "meeting_date", "page_start", "page_end", "order"):
        if col not in u.columns:
            u[col] = None
    m = data.meetings
    for col in ("meeting_title", "meeting_date", "session", "venue", "source_file", "url"):
        if col not in m.columns:
            m[col] = None
    for col in ("attendees", "officials", "absentees", "agenda"):
        if col not in m.columns:
            m[col] = [[] for _ in range(len(m))]
    if "n_utterances" not in m.columns:
        m["n_utterances"] = m["meeting_id"].map(u.groupby("meeting_id").size()).fillna(0).astype(int)
    # meetings in date order (undated last), then by id
    m["_date"] = pd.to_datetime(m["meeting_date"], errors="coerce")
    data.meetings = m.sort_values(["_date", "meeting_id"], na_position="last").drop(columns="_date").reset_index(drop=True)
    ti = data.topic_info
    if ti is not None:
        if "representative" in ti.columns:
            ti["representative"] = ti["representative"].map(lambda xs: [_json_obj(x) for x in xs])
        for col, default in (("label", None), ("terms", None), ("weights", None), ("size", 0)):
            if col not in ti.columns:
                ti[col] = default
        ti["topic_id"] = pd.to_numeric(ti["topic_id"], errors="coerce").fillna(-1).astype(int)
        ti["label"] = [lab if isinstance(lab, str) and lab else f"topic {t}" for t, lab in zip(ti["topic_id"], ti["label"])]
        for col in ("terms", "weights", "representative"):
            if col in ti.columns:
                ti[col] = ti[col].map(_to_list)


def subset(data: ReportData, meetings: list[str] | None = None, speakers: list[str] | None = None) -> ReportData:
    """Restrict the report to some meetings and/or speakers (matched on the speaker as
    shown, the raw label or the name). Topic sizes are recounted on the subset."""
    if not meetings and not speakers:
        return data
    s, u, m = data.sentences, data.utterances, data.meetings
    desc = []
    if meetings:
        wanted = set(meetings)
        unknown = wanted - set(m["meeting_id"])
        if unknown:
            raise PipelineError(data.input_dir / "meetings.parquet",
                                f"no meeting with id {', '.join(sorted(unknown))}")
        s, u, m = s[s["meeting_id"].isin(wanted)], u[u["meeting_id"].isin(wanted)], m[m["meeting_id"].isin(wanted)]
        desc.append("会議 meeting: " + ", ".join(meetings))
    if speakers:
        wanted = set(speakers)
        u_ok = u[u["speaker_raw"].isin(wanted) | u["speaker_name"].isin(wanted)]["utterance_id"]
        s = s[s["speaker"].isin(wanted) | s["utterance_id"].isin(set(u_ok))]
        u = u[u["utterance_id"].isin(set(s["utterance_id"]))]
        m = m[m["meeting_id"].isin(set(s["meeting_id"]))]
        desc.append("発言者 speaker: " + ", ".join(speakers))
    if s.empty:
        raise PipelineError(data.input_dir / "sentences.parquet", f"no sentences match the subset ({'; '.join(desc)})")
    sids = set(s["sentence_id"])
    ents = data.entities
    if ents is not None and "sentence_id" in ents.columns:
        ents = ents[ents["sentence_id"].isin(sids)]
    ti = data.topic_info
    if ti is not None:
        sizes = s.groupby("topic_id").size()
        ti = ti.assign(size=ti["topic_id"].map(sizes).fillna(0).astype(int))
        ti = ti[ti["size"] > 0]
    lq = data.label_queue
    if lq is not None and "sentence_id" in lq.columns:
        lq = lq[lq["sentence_id"].isin(sids)]
    tpc = data.topics_per_class
    tot = data.topics_over_time
    if meetings and tot is not None:
        tot = None  # per-period topic frequencies are corpus-wide; recomputed from sentences instead
    if tpc is not None and speakers:
        tpc = None
    return replace(data, sentences=s.reset_index(drop=True), utterances=u.reset_index(drop=True),
                   meetings=m.reset_index(drop=True), entities=ents, topic_info=ti,
                   topics_per_class=tpc, topics_over_time=tot, label_queue=lq,
                   subset="; ".join(desc))


def topic_term_counts(path: Path, ids: list[int], sentence_ids: set | None = None
                      ) -> tuple[np.ndarray, list[str]] | None:
    """Topic x term counts of the sentences' content terms (rows: ``ids``; columns: the terms,
    sorted), read from the sentences table one part at a time (only ``topic_id`` and ``terms``, plus
    ``sentence_id`` for a subset): memory holds the counts, not the sentences. None when the table
    has no ``terms`` or no sentence of these topics has a term."""
    import pyarrow.parquet as pq

    from pipeline.dataset import columns_of, part_files

    have = columns_of(path)
    if "terms" not in have or "topic_id" not in have:
        return None
    cols = ["topic_id", "terms"] + (["sentence_id"] if sentence_ids is not None else [])
    row_of = {int(t): i for i, t in enumerate(ids)}
    counts: dict[tuple[int, str], int] = {}
    for f in part_files(path):
        t = pq.read_table(f, columns=[c for c in cols if c in pq.read_schema(f).names]).to_pydict()
        keep = t.get("sentence_id")
        for k, (tid, terms) in enumerate(zip(t["topic_id"], t["terms"])):
            if tid is None or not terms or (sentence_ids is not None and keep[k] not in sentence_ids):
                continue
            r = row_of.get(int(tid))
            if r is None:
                continue
            for term in (_to_list(terms) if isinstance(terms, str) else terms):
                if term is not None:
                    counts[(r, str(term))] = counts.get((r, str(term)), 0) + 1
    if not counts:
        return None
    vocab = sorted({term for _, term in counts})
    col = {term: j for j, term in enumerate(vocab)}
    M = np.zeros((len(ids), len(vocab)), dtype=np.int64)
    for (r, term), c in counts.items():
        M[r, col[term]] = c
    return M, vocab

