"""Parse stage: the library function :func:`parse_utterances` (one cached partition per
meeting), its streaming form :func:`iter_parse` / :func:`parse_to_datasets` (each meeting
written out as it finishes), its report, and the ``policy-topics parse`` CLI."""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.parse.entities import ENTITY_COLUMNS, known_person_names
from pipeline.parse.gate import ner_mode
from pipeline.parse.meeting import TOKEN_COLUMNS, parse_partition
from pipeline.parse.models import load_nlp
from pipeline.parse.sentences import SENTENCE_COLUMNS
from pipeline.parse.settings import MODEL_PACKAGES, SPEED_ONLY, STAGE, resolve_params
from pipeline.parse.vocab import TermVocab, load_vocab
from pipeline.vocab import person_suffixes

# --------------------------------------------------------------------------- library

@dataclass
class ParseResult:
    sentences: pd.DataFrame
    tokens: pd.DataFrame
    entities: pd.DataFrame
    report: dict = field(default_factory=dict)


def _meeting_names(meetings: pd.DataFrame | None, rows: pd.DataFrame, nlp) -> list[str]:
    speakers: list[str] = []
    if "speaker_name" in rows:
        speakers = [x for x in rows["speaker_name"].dropna().astype(str) if x]
    raw: list[str] = []
    if meetings is not None and len(meetings):
        mid = rows["meeting_id"].iloc[0]
        m = meetings[meetings["meeting_id"] == mid]
        for col in ("attendees", "officials", "absentees"):
            if col in m and len(m):
                v = m[col].iloc[0]
                if v is not None and not (isinstance(v, float) and pd.isna(v)):
                    raw += [str(x) for x in list(v)]
    return known_person_names(sorted(set(speakers)), sorted(set(raw)), nlp)


def _vocab_key(vocab: TermVocab) -> str:
    from pipeline.partition import hash_bytes

    return hash_bytes(json.dumps([sorted(vocab.stopwords), list(vocab.compounds), vocab.aliases,
                                  sorted(vocab.drop_prefixes), vocab.max_parts],
                                 ensure_ascii=False).encode())[:16]


def meeting_partitions(speech: pd.DataFrame, meetings: pd.DataFrame | None, params: dict,
                       vocab: TermVocab) -> list:
    """One :class:`~pipeline.partition.Partition` per meeting; its digest covers the speech rows
    and the meeting's known people (found with the same model the workers use)."""
    from pipeline.partition import Partition, hash_bytes, hash_frame

    tok_nlp = load_nlp(params["model"], ner=ner_mode(params.get("ner")) != "off")
    parts = []
    for mid, rows in speech.groupby("meeting_id", sort=False):
        rows = rows.reset_index(drop=True)
        names = _meeting_names(meetings, rows, tok_nlp)
        digest = hash_bytes((hash_frame(rows) + "\0" + "\0".join(names)).encode())
        parts.append(Partition(name=str(mid), digest=digest,
                               payload={"rows": rows, "params": params, "vocab": vocab, "known_names": names}))
    return parts


def iter_parse(utterances: pd.DataFrame, meetings: pd.DataFrame | None = None,
               params: dict | None = None, *, vocab: TermVocab | None = None,
               cache: bool = True, cache_dir: str | Path | None = None,
               executor: str | None = None, n_workers: int | None = None,
               stats: dict | None = None) -> Iterator[dict[str, pd.DataFrame]]:
    """Parse meeting by meeting: yields each meeting's ``{sentences, tokens, entities}`` in input order.

    Only ``kind == 'speech'`` rows become sentences. One partition per meeting,
    cached under ``.cache/parse/`` by the hash of that meeting's speech rows, its
    known people, the parameters, the vocabularies and this package's code. The stage
    writes each meeting out as it comes (:func:`parse_to_datasets`), so memory holds
    one meeting's tables, not the corpus's.
    """
    from pipeline.partition import iter_partitions, resolve_executor

    params = resolve_params(params)
    vocab = vocab or load_vocab(max_parts=int(params["max_compound_parts"]))
    missing = {"meeting_id", "utterance_id", "text"} - set(utterances.columns)
    if missing:
        raise PipelineError(None, f"utterances table lacks column(s) {sorted(missing)}")
    speech = utterances[utterances["kind"] == "speech"] if "kind" in utterances else utterances
    parts = meeting_partitions(speech, meetings, params, vocab)
    ex_name, ex_workers, _ = resolve_executor(executor, n_workers)
    if (ex_name == "dask" or ex_workers > 1) and len(parts) > 1:
        # meetings already run in parallel worker processes: no nested NER processes
        for part in parts:
            part.payload["params"] = {**params, "n_process": 1}
    key = {**{k: v for k, v in params.items() if k not in SPEED_ONLY}, "vocab": _vocab_key(vocab),
           "roles": list(person_suffixes())}  # NER-gate triggers (configs/roles.yaml)
    for _, tables in iter_partitions(parse_partition, parts, stage=STAGE, params=key, cache=cache,
                                     cache_dir=cache_dir, executor=executor, n_workers=n_workers, stats=stats,
                                     libraries=(params["model"], *MODEL_PACKAGES)):
        yield tables


def parse_utterances(utterances: pd.DataFrame, meetings: pd.DataFrame | None = None,
                     params: dict | None = None, *, vocab: TermVocab | None = None,
                     cache: bool = True, cache_dir: str | Path | None = None,
                     executor: str | None = None, n_workers: int | None = None) -> ParseResult:
    """Utterances (ingest's table) -> :class:`ParseResult` (sentences, tokens, entities, report),
    every table in memory (notebooks, tests); see :func:`iter_parse` for what it does."""
    from pipeline.partition import concat_tables

    stats: dict = {}
    results = list(iter_parse(utterances, meetings, params, vocab=vocab, cache=cache, cache_dir=cache_dir,
                              executor=executor, n_workers=n_workers, stats=stats))
    tables = concat_tables(results) if results else {}
    sentences = tables.get("sentences", pd.DataFrame(columns=SENTENCE_COLUMNS))
    tokens = tables.get("tokens", pd.DataFrame(columns=TOKEN_COLUMNS))
    entities = tables.get("entities", pd.DataFrame(columns=ENTITY_COLUMNS))
    report = build_report(utterances, sentences, tokens, entities, stats)
    return ParseResult(sentences, tokens, entities, report)


#: columns of each output table (kept in the files when a table has no rows)
OUTPUT_COLUMNS = {"sentences": SENTENCE_COLUMNS, "tokens": TOKEN_COLUMNS, "entities": ENTITY_COLUMNS}


def parse_to_datasets(utterances: pd.DataFrame, meetings: pd.DataFrame | None, params: dict | None,
                      out: dict[str, str | Path], **kw) -> dict:
    """The stage: parse meeting by meeting and write each meeting's tables straight into the
    partitioned datasets ``out`` (``{"sentences": path, "tokens": path, "entities": path}``, one
    Parquet file per meeting); returns the metrics/parse.json dict. The outputs appear together
    once every meeting is parsed, or not at all (:func:`pipeline.dataset.open_datasets`)."""
    from pipeline.dataset import open_datasets

    acc = ParseReport()
    stats: dict = {}
    with open_datasets(out) as writers:
        for tables in iter_parse(utterances, meetings, params, stats=stats, **kw):
            for name, w in writers.items():
                if name in tables:
                    w.write(tables[name])
            acc.add(tables)
        for name, w in writers.items():  # an empty table still has its columns
            w.write(pd.DataFrame(columns=OUTPUT_COLUMNS[name]))
    return acc.result(utterances, stats)


def entity_counts(entities: pd.DataFrame, by: tuple[str, ...] = ("meeting_id", "speaker")) -> pd.DataFrame:
    """How often each entity (text, coarse label) is mentioned per ``by`` group, most frequent first."""
    keys = [*by, "coarse_label", "text"]
    if entities.empty:
        return pd.DataFrame(columns=[*keys, "count"])
    return (entities.groupby(keys, dropna=False).size().rename("count").reset_index()
            .sort_values([*by, "count"], ascending=[True] * len(by) + [False], kind="stable")
            .reset_index(drop=True))


class ParseReport:
    """metrics/parse.json built partition by partition (the stage never holds the whole tables):
    :meth:`add` each meeting's tables, then :meth:`result`. Same figures as :func:`build_report`."""

    def __init__(self) -> None:
        self.n_sentences = self.n_chars = self.max_chars = self.over_200 = 0
        self.n_tokens = self.n_entities = 0
        self.terms: Counter = Counter()
        self.by_coarse: Counter = Counter()
        self.by_source: Counter = Counter()
        self.per_meeting: dict[str, Counter] = {}
        self.per_speaker: dict[str, Counter] = {}
        self.entity_texts: Counter = Counter()

    def add(self, tables: dict[str, pd.DataFrame]) -> None:
        sentences = tables.get("sentences")
        if sentences is not None and len(sentences):
            lengths = sentences["text"].str.len()
            self.n_sentences += len(sentences)
            self.n_chars += int(lengths.sum())
            self.max_chars = max(self.max_chars, int(lengths.max()))
            self.over_200 += int((lengths > 200).sum())
            if "terms" in sentences:
                self.terms.update(t for ts in sentences["terms"] for t in ts)
        tokens = tables.get("tokens")
        self.n_tokens += 0 if tokens is None else len(tokens)
        e = tables.get("entities")
        if e is None or not len(e):
            return
        self.n_entities += len(e)
        self.by_coarse.update(e["coarse_label"].astype(str))
        self.by_source.update(e["source"].astype(str))
        for (mid, lab), n in e.groupby(["meeting_id", "coarse_label"]).size().items():
            self.per_meeting.setdefault(str(mid), Counter())[str(lab)] += int(n)
        for (spk, lab), n in e.groupby([e["speaker"].fillna(""), "coarse_label"]).size().items():
            self.per_speaker.setdefault(str(spk), Counter())[str(lab)] += int(n)
        self.entity_texts.update(zip(e["text"].astype(str), e["coarse_label"].astype(str)))

    def result(self, utterances: pd.DataFrame, stats: dict | None = None) -> dict:
        n_speech = int((utterances["kind"] == "speech").sum()) if "kind" in utterances else len(utterances)
        ranked = lambda c: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))  # noqa: E731
        top = sorted(self.entity_texts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        return {
            "n_utterances": int(len(utterances)),
            "n_speech_utterances": n_speech,
            "n_sentences": self.n_sentences,
            "n_chars": self.n_chars,
            "sentence_chars": {"mean": round(self.n_chars / self.n_sentences, 1) if self.n_sentences else 0.0,
                               "max": self.max_chars, "over_200": self.over_200},
            "n_tokens": self.n_tokens,
            "n_entities": self.n_entities,
            "entities_by_coarse_label": ranked(self.by_coarse),
            "entities_by_source": ranked(self.by_source),
            "entities_per_meeting": {m: dict(sorted(c.items())) for m, c in sorted(self.per_meeting.items())},
            "entities_per_speaker": {s: dict(sorted(c.items())) for s, c in sorted(self.per_speaker.items())},
            "top_entities": [{"text": t, "coarse_label": c, "count": int(n)} for (t, c), n in top],
            "n_distinct_terms": len(self.terms),
            "top_terms": [[t, n] for t, n in self.terms.most_common(30)],
            "partitions": {k: stats.get(k) for k in ("n_partitions", "seconds", "compute_seconds")}
            | {"computed": len(stats.get("computed", [])), "cached": len(stats.get("cached", []))} if stats else {},
        }


def build_report(utterances, sentences, tokens, entities, stats: dict | None = None) -> dict:
    """metrics/parse.json from whole tables (see :class:`ParseReport` for the streaming form)."""
    acc = ParseReport()
    acc.add({"sentences": sentences, "tokens": tokens, "entities": entities})
    return acc.result(utterances, stats)


# --------------------------------------------------------------------------- CLI

def run_parse_cli(args: argparse.Namespace) -> int:
    from pipeline.dataset import read_table
    from pipeline.io import output_transaction, stage_timer, write_metrics

    upath = Path(args.utterances)
    if not upath.exists():
        raise PipelineError(upath, "file not found (run `policy-topics ingest` first)")
    utterances = read_table(upath)
    meetings = None
    if args.meetings:
        mpath = Path(args.meetings)
        if not mpath.exists():
            raise PipelineError(mpath, "file not found")
        meetings = read_table(mpath)
    params = resolve_params()
    if args.n_process is not None:
        params["n_process"] = args.n_process
    t0 = time.perf_counter()
    with stage_timer(STAGE) as st, output_transaction():  # the three tables and the report together, or none
        try:
            report = parse_to_datasets(utterances, meetings, params,
                                       {"sentences": args.sentences, "tokens": args.tokens,
                                        "entities": args.entities}, cache=not args.no_cache)
        except PipelineError as exc:
            if exc.path is None:  # a problem of the input table: name the file
                raise PipelineError(upath, exc.problem) from exc
            raise
        st.update(sentences=report["n_sentences"], tokens=report["n_tokens"], entities=report["n_entities"])
        if args.report:
            # wall time and cache hits -> metrics/timings/ (not a DVC output): a rerun leaves dvc.lock clean
            write_metrics({**report, "seconds": round(time.perf_counter() - t0, 2)}, args.report)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("parse", help="utterances -> sentences, tokens, content terms, entities (GiNZA)",
                              description="Split speech utterances into sentences; tokens, content terms "
                                          "and named entities with GiNZA. Parameters: params.yaml parse:.")
    p.add_argument("utterances", help="utterances.parquet from `policy-topics ingest`")
    p.add_argument("--meetings", help="meetings.parquet (attendees -> known person entities)")
    p.add_argument("--sentences", required=True, help="output sentences.parquet")
    p.add_argument("--tokens", required=True, help="output tokens.parquet")
    p.add_argument("--entities", required=True, help="output entities.parquet")
    p.add_argument("--report", help="output metrics JSON")
    p.add_argument("--n-process", type=int, default=None, help="override params.yaml parse.n_process")
    p.add_argument("--no-cache", action="store_true", help="ignore the per-meeting parse cache")
    p.set_defaults(func=run_parse_cli)
