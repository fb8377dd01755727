"""Parse stage: the library function :func:`parse_utterances` (one cached partition per
meeting), its report, and the ``policy-topics parse`` CLI."""
from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.parse.entities import ENTITY_COLUMNS, known_person_names
from pipeline.parse.gate import ner_mode
from pipeline.parse.meeting import TOKEN_COLUMNS, parse_partition
from pipeline.parse.models import load_nlp
from pipeline.parse.sentences import SENTENCE_COLUMNS
from pipeline.parse.settings import SPEED_ONLY, STAGE, resolve_params
from pipeline.parse.vocab import TermVocab, load_vocab


def package_digest() -> str:
    """Hash of every module of this package: editing any of them invalidates cached partitions
    (the partition cache itself hashes only the module defining ``parse_partition``)."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


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


def parse_utterances(utterances: pd.DataFrame, meetings: pd.DataFrame | None = None,
                     params: dict | None = None, *, vocab: TermVocab | None = None,
                     cache: bool = True, cache_dir: str | Path | None = None,
                     executor: str | None = None, n_workers: int | None = None) -> ParseResult:
    """Utterances (ingest's table) -> :class:`ParseResult` (sentences, tokens, entities, report).

    Only ``kind == 'speech'`` rows become sentences. One partition per meeting,
    cached under ``.cache/parse/`` by the hash of that meeting's speech rows, its
    known people, the parameters, the vocabularies and this package's code.
    """
    from pipeline.partition import concat_tables, map_partitions, resolve_executor

    params = resolve_params(params)
    vocab = vocab or load_vocab(max_parts=int(params.get("max_compound_parts", 6)))
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
           "code": package_digest()}
    stats: dict = {}
    results = map_partitions(parse_partition, parts, stage=STAGE, params=key, cache=cache, cache_dir=cache_dir,
                             executor=executor, n_workers=n_workers, stats=stats)
    tables = concat_tables(results) if results else {}
    sentences = tables.get("sentences", pd.DataFrame(columns=SENTENCE_COLUMNS))
    tokens = tables.get("tokens", pd.DataFrame(columns=TOKEN_COLUMNS))
    entities = tables.get("entities", pd.DataFrame(columns=ENTITY_COLUMNS))
    report = build_report(utterances, sentences, tokens, entities, stats)
    return ParseResult(sentences, tokens, entities, report)


def entity_counts(entities: pd.DataFrame, by: tuple[str, ...] = ("meeting_id", "speaker")) -> pd.DataFrame:
    """How often each entity (text, coarse label) is mentioned per ``by`` group, most frequent first."""
    keys = [*by, "coarse_label", "text"]
    if entities.empty:
        return pd.DataFrame(columns=[*keys, "count"])
    return (entities.groupby(keys, dropna=False).size().rename("count").reset_index()
            .sort_values([*by, "count"], ascending=[True] * len(by) + [False], kind="stable")
            .reset_index(drop=True))


def build_report(utterances, sentences, tokens, entities, stats: dict | None = None) -> dict:
    n_speech = int((utterances["kind"] == "speech").sum()) if "kind" in utterances else len(utterances)
    lengths = sentences["text"].str.len() if len(sentences) else pd.Series(dtype=int)
    terms = Counter(t for ts in sentences.get("terms", []) for t in ts)
    per_meeting = {}
    if len(entities):
        for (mid, lab), n in entities.groupby(["meeting_id", "coarse_label"]).size().items():
            per_meeting.setdefault(str(mid), {})[str(lab)] = int(n)
    per_speaker = {}
    if len(entities):
        for (spk, lab), n in entities.groupby([entities["speaker"].fillna(""), "coarse_label"]).size().items():
            per_speaker.setdefault(str(spk), {})[str(lab)] = int(n)
    return {
        "n_utterances": int(len(utterances)),
        "n_speech_utterances": n_speech,
        "n_sentences": int(len(sentences)),
        "n_chars": int(lengths.sum()) if len(lengths) else 0,
        "sentence_chars": {"mean": round(float(lengths.mean()), 1) if len(lengths) else 0.0,
                           "max": int(lengths.max()) if len(lengths) else 0,
                           "over_200": int((lengths > 200).sum()) if len(lengths) else 0},
        "n_tokens": int(len(tokens)),
        "n_entities": int(len(entities)),
        "entities_by_coarse_label": {str(k): int(v) for k, v in entities["coarse_label"].value_counts().items()}
        if len(entities) else {},
        "entities_by_source": {str(k): int(v) for k, v in entities["source"].value_counts().items()}
        if len(entities) else {},
        "entities_per_meeting": per_meeting,
        "entities_per_speaker": per_speaker,
        "top_entities": [{"text": t, "coarse_label": c, "count": int(n)} for (t, c), n in
                         entities.groupby(["text", "coarse_label"]).size().nlargest(20).items()]
        if len(entities) else [],
        "n_distinct_terms": len(terms),
        "top_terms": [[t, n] for t, n in terms.most_common(30)],
        "partitions": {k: stats.get(k) for k in ("n_partitions", "seconds", "compute_seconds")}
        | {"computed": len(stats.get("computed", [])), "cached": len(stats.get("cached", []))} if stats else {},
    }


# --------------------------------------------------------------------------- CLI

def run(args: argparse.Namespace) -> int:
    from pipeline.io import stage_timer, write_json, write_parquet

    upath = Path(args.utterances)
    if not upath.exists():
        raise PipelineError(upath, "file not found (run `policy-topics ingest` first)")
    try:
        utterances = pd.read_parquet(upath)
    except Exception as exc:
        raise PipelineError(upath, f"cannot read Parquet: {exc}") from exc
    meetings = None
    if args.meetings:
        mpath = Path(args.meetings)
        if not mpath.exists():
            raise PipelineError(mpath, "file not found")
        meetings = pd.read_parquet(mpath)
    params = resolve_params()
    if args.n_process is not None:
        params["n_process"] = args.n_process
    with stage_timer(STAGE) as st:
        try:
            res = parse_utterances(utterances, meetings, params, cache=not args.no_cache)
        except PipelineError as exc:
            if exc.path is None:  # a problem of the input table: name the file
                raise PipelineError(upath, exc.problem) from exc
            raise
        write_parquet(res.sentences, args.sentences)
        write_parquet(res.tokens, args.tokens)
        write_parquet(res.entities, args.entities)
        st.update(sentences=len(res.sentences), tokens=len(res.tokens), entities=len(res.entities))
    if args.report:
        write_json({**res.report, "seconds": st.get("seconds")}, args.report)
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
    p.set_defaults(func=run)
