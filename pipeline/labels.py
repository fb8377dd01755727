"""Labelled sentences from ``data/labels/`` keyed by normalised text.

Shared by the classifier (training, evaluation) and the topics stage (NMI against themes).

Reads ``*.jsonl`` (one sentence per line: text, source, labels, ...) and labelled
``*.csv`` returned from the label queue (columns ``text`` and ``labels``; labels
separated by ``;`` / ``,`` / ``|`` / whitespace, ``-`` or empty = deliberately no label)
at the top level of the folder. Sub-folders (e.g. ``agreement/``) are not training data.
Keys are NFKC-normalised, whitespace-free text, so re-splitting sentences does not
orphan labels; matching falls back to containment, and unmatched labels are
counted and logged, never silently dropped.

Records that carry a speaker ``turn`` (with ``meeting`` and ``source``; e.g. sentences of
another council's meeting labelled from its minutes) are *anchored*: they are kept one per
sentence, in document order. When their meeting is in the corpus they match its sentences by
text; when it is not (shared files are never copied into the repo), they become training
rows of their own (:func:`anchored_features` computes their terms and embeddings like the
parse and embed stages do, cached under ``.cache/label_records``).
"""
from __future__ import annotations

import csv
import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError

log = logging.getLogger("policy_topics.classify")

_SPLIT = re.compile(r"[;,|\s]+")
_WS = re.compile(r"\s+")


def text_key(text: str) -> str:
    """Key matching sentences across tables and label files: NFKC, all whitespace removed."""
    return _WS.sub("", unicodedata.normalize("NFKC", str(text or "")))


@dataclass
class LabelSet:
    #: key -> sorted label ids
    labels: dict[str, list[str]]
    #: key -> one original record (text, source, speaker, idx, ...)
    records: dict[str, dict]
    files: list[str] = field(default_factory=list)
    n_rows: int = 0
    conflicts: int = 0
    unknown_ids: dict[str, int] = field(default_factory=dict)
    conflict_examples: list[dict] = field(default_factory=list)
    #: records with a ``turn``, one per sentence in document order: {"key", "labels", "text",
    #: "source", "meeting", "turn", "idx", "file", ...} (not in ``labels``: a stock phrase of
    #: another meeting must not vote on the corpus's label of the same words)
    anchored: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def all_labels(self) -> dict[str, list[str]]:
        """key -> label ids of every labelled text, anchored records included (for "already
        labelled" checks; the unanchored labels win where both exist)."""
        out = {a["key"]: a["labels"] for a in self.anchored}
        out.update(self.labels)
        return out


def parse_label_field(value) -> list[str] | None:
    """CSV/JSON label cell -> list of ids; None when the row is not labelled yet."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    s = str(value).strip()
    if s == "" or s.lower() == "nan":
        return None
    if s in ("-", "none", "[]", "NONE"):
        return []
    if s.startswith("["):
        try:
            return [str(v) for v in json.loads(s)]
        except json.JSONDecodeError:
            pass
    return [p for p in _SPLIT.split(s) if p and p != "-"]


def _read_jsonl(path: Path) -> list[dict]:
    from pipeline.io import read_json_lines

    return [rec for _, rec in read_json_lines(path, lambda r: "text" in r and "labels" in r,
                                              "needs `text` and `labels`")]


def _read_csv(path: Path) -> list[dict]:
    from pipeline.cells import restore_cell

    rows = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "text" not in reader.fieldnames or "labels" not in reader.fieldnames:
            raise PipelineError(path, "labelled CSV needs `text` and `labels` columns")
        for rec in reader:
            labs = parse_label_field(rec.get("labels"))
            if labs is None:  # not annotated yet
                continue
            rec = dict(rec)
            rec["labels"] = labs
            # the queue was written formula-safe ('=... at line starts): the sentence itself has no apostrophe
            rec["text"] = restore_cell(rec.get("text"))
            rows.append(rec)
    return rows


def load_labels(folder: str | Path, theme_ids: list[str] | None = None) -> LabelSet:
    """The labelled files at the top level of ``folder`` (or the one ``.jsonl``/``.csv`` file
    ``folder`` names: a held-out gold file for ``policy-topics score``)."""
    folder = Path(folder)
    if folder.is_file():
        if folder.suffix.lower() not in (".jsonl", ".csv"):
            raise PipelineError(folder, "labels must be a .jsonl or .csv file (text + labels)")
        files = [folder]
    elif not folder.is_dir():
        raise PipelineError(folder, "labels folder not found")
    else:
        # JSONL first, then CSVs returned from the label queue (later files win on conflicts)
        files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".jsonl", ".csv")),
                       key=lambda p: (p.suffix.lower() == ".csv", p.name))
    labels: dict[str, list[str]] = {}
    records: dict[str, dict] = {}
    n_rows = conflicts = 0
    unknown: dict[str, int] = {}
    conflict_examples: list[dict] = []
    votes: dict[str, dict[tuple, int]] = {}
    anchored: dict[tuple, dict] = {}
    valid = set(theme_ids) if theme_ids else None
    for path in files:
        rows = _read_jsonl(path) if path.suffix.lower() == ".jsonl" else _read_csv(path)
        for rec in rows:
            labs = parse_label_field(rec["labels"])
            if labs is None:
                continue
            key = text_key(rec["text"])
            if not key:
                continue
            n_rows += 1
            if valid is not None:
                bad = [x for x in labs if x not in valid]
                for x in bad:
                    unknown[x] = unknown.get(x, 0) + 1
                labs = [x for x in labs if x in valid]
            labs = sorted(set(labs))
            if _is_anchored(rec):
                # one row per sentence of a named meeting (a later file relabelling it wins)
                where = (str(rec.get("source", "")), str(rec.get("meeting", "")), str(rec.get("turn")),
                         rec.get("idx", len(anchored)), key)
                anchored.pop(where, None)
                anchored[where] = {k: v for k, v in rec.items() if k != "labels"} | \
                    {"key": key, "labels": labs, "file": path.name}
                continue
            if key in labels and labels[key] != labs:
                conflicts += 1
                conflict_examples.append({"text": str(rec["text"])[:60], "before": labels[key], "after": labs,
                                          "file": path.name})
            votes.setdefault(key, {})
            votes[key][tuple(labs)] = votes[key].get(tuple(labs), 0) + 1
            if path.suffix.lower() == ".csv":
                # a returned label-queue CSV is a deliberate (re)decision: it overrides
                votes[key] = {tuple(labs): 10 ** 6}
            # the same text labelled differently in several places: majority, ties -> latest
            best = max(votes[key].values())
            labels[key] = list(labs) if votes[key].get(tuple(labs)) == best else \
                list(next(k for k, v in votes[key].items() if v == best))
            records[key] = {k: v for k, v in rec.items() if k != "labels"} | {"file": path.name}
    if unknown:
        log.warning("labels: %d label(s) with ids not in the taxonomy were ignored: %s",
                    sum(unknown.values()), dict(sorted(unknown.items())))
    if conflicts:
        log.warning("labels: %d text(s) labelled differently in several places; majority label used "
                    "(ties: the latest; a label-queue CSV overrides)", conflicts)
    log.info("labels: %d labelled sentence(s) from %d file(s)%s", len(labels), len(files),
             f", {len(anchored)} anchored to meeting turns" if anchored else "")
    return LabelSet(labels, records, [p.name for p in files], n_rows, conflicts, unknown, conflict_examples,
                    _document_order(list(anchored.values())))


def _is_anchored(rec: dict) -> bool:
    turn = rec.get("turn")
    return turn is not None and str(turn).strip() not in ("", "nan")


def _document_order(records: list[dict]) -> list[dict]:
    """Anchored records meeting by meeting (first appearance), each meeting by ``idx`` when every
    record has an integer one, else in file order (turn context needs consecutive sentences)."""
    by_meeting: dict[tuple, list[dict]] = {}
    for r in records:
        by_meeting.setdefault(anchor_meeting(r), []).append(r)
    out = []
    for recs in by_meeting.values():
        if all(isinstance(r.get("idx"), int) and not isinstance(r.get("idx"), bool) for r in recs):
            recs = sorted(recs, key=lambda r: r["idx"])
        out += recs
    return out


def anchor_meeting(rec: dict) -> str:
    """Meeting id of an anchored record: ``{source}#{meeting}`` (the source file's name and the
    meeting within it, e.g. its date)."""
    return f"{rec.get('source', '')}#{rec.get('meeting', '')}"


_TRAILING_DATE = re.compile(r"[_-]?\d{4}-\d{2}-\d{2}$")
_TRAILING_SESSION = re.compile(r"[_-]\d{1,3}$")


def council_of(source) -> str:
    """The council (``domain`` of the classifier's rows) that minutes come from, from where they were
    read: a meeting's ``source_file`` (relative to the ingest folder), a label record's ``source``,
    or a meeting id. Files in a sub-folder belong to the council named by its first folder
    (``tokyo-assembly/committee-olympic.json`` -> ``tokyo-assembly``: one folder per council); a file
    directly in the folder is its own council, named by the file stem without a trailing date and
    session number (``mic-chiiki-ict-06_2024-04-24.txt`` -> ``mic-chiiki-ict``). Anything after '#'
    (a meeting within a file) is ignored."""
    s = str(source or "").replace("\\", "/").split("#", 1)[0]
    parts = [x for x in s.split("/") if x not in ("", ".")]
    if len(parts) > 1:
        return parts[0]
    stem = Path(parts[0]).stem if parts else ""
    stem = _TRAILING_SESSION.sub("", _TRAILING_DATE.sub("", stem))
    return stem or "(unknown)"


def anchor_turn(rec: dict) -> str:
    """Speaker-turn id of an anchored record (unique across sources and meetings)."""
    return f"{anchor_meeting(rec)}#{rec.get('turn')}"


@dataclass
class Matched:
    #: positional index into the sentences frame -> label ids
    rows: dict[int, list[str]]
    n_exact: int
    n_contained: int
    unmatched: list[str]
    #: anchored records whose meeting is not in the corpus: training rows of their own, in
    #: document order (:func:`anchored_features`)
    off_corpus: list[dict] = field(default_factory=list)
    #: anchored records matched to corpus sentences (their meeting is in the corpus)
    n_anchored_in_corpus: int = 0


def match_labels(sentences: pd.DataFrame, labelset: LabelSet) -> Matched:
    """Match labels to sentences by normalised text; containment as fallback.

    Containment: a labelled text inside a (re-split, longer) sentence, or a sentence
    inside a labelled text. A sentence covered by several labelled texts gets the union.
    """
    keys = [text_key(t) for t in sentences["text"].tolist()]
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    rows: dict[int, list[str]] = {}
    unmatched: list[str] = []
    n_exact = n_cont = 0
    pending = []
    for key, labs in labelset.labels.items():
        if key in by_key:
            for i in by_key[key]:
                rows[i] = sorted(set(rows.get(i, [])) | set(labs))
            n_exact += 1
        else:
            pending.append((key, labs))
    for key, labs in pending:
        hit = [i for i, k in enumerate(keys) if k and i not in rows and len(k) >= 4 and (key in k or k in key)]
        if hit:
            n_cont += 1
            for i in hit:
                rows[i] = sorted(set(rows.get(i, [])) | set(labs))
        else:
            unmatched.append(key)
    off, n_in = _match_anchored(labelset.anchored, by_key, rows, unmatched)
    if unmatched:
        log.warning("labels: %d labelled text(s) match no sentence (e.g. %s)", len(unmatched), unmatched[0][:40])
    log.info("labels: %d exact, %d by containment, %d unmatched; %d sentence(s) labelled%s",
             n_exact, n_cont, len(unmatched), len(rows),
             f"; {len(off)} from label records of meetings not in the corpus" if off else "")
    return Matched(rows, n_exact, n_cont, unmatched, off, n_in)


#: share of an anchored meeting's sentences found verbatim in the corpus above which the
#: meeting counts as in the corpus (a few stock phrases shared with other meetings do not)
IN_CORPUS_SHARE = 0.5


def _match_anchored(anchored: list[dict], by_key: dict, rows: dict, unmatched: list) -> tuple[list[dict], int]:
    """Anchored records meeting by meeting: a meeting mostly found in the corpus labels its
    sentences by exact text (like unanchored labels); any other meeting's records are returned
    as off-corpus rows. Returns (off-corpus records, number matched in the corpus)."""
    by_meeting: dict[str, list[dict]] = {}
    for r in anchored:
        by_meeting.setdefault(anchor_meeting(r), []).append(r)
    off: list[dict] = []
    n_in = 0
    for recs in by_meeting.values():
        if sum(r["key"] in by_key for r in recs) <= IN_CORPUS_SHARE * len(recs):
            off += recs
            continue
        for r in recs:
            if r["key"] in by_key:
                n_in += 1
                for i in by_key[r["key"]]:
                    rows[i] = sorted(set(rows.get(i, [])) | set(r["labels"]))
            else:
                unmatched.append(r["key"])
    return off, n_in


def agreement(folder: str | Path, theme_ids: list[str]) -> dict | None:
    """Inter-annotator agreement: ``agreement/*.jsonl`` (second annotations of a subset)
    against the main labels of the same sentences, paired by ``source``+``meeting``+``idx``,
    else by text within the same meeting; pooled over all files and per file (``by_file``).
    """
    folder = Path(folder)
    sub = folder / "agreement"
    files = sorted(sub.glob("*.jsonl")) if sub.is_dir() else []
    if not files:
        return None
    main_by_idx: dict[tuple, tuple[set, str]] = {}
    main_by_key: dict[tuple, tuple[set, str]] = {}
    for p in sorted(folder.glob("*.jsonl")):
        for r in _read_jsonl(p):
            val = (set(r["labels"]), str(r.get("annotator", p.stem)))
            if "idx" in r:
                main_by_idx[(r.get("source"), r.get("meeting"), r["idx"])] = val
            main_by_key[(r.get("meeting"), text_key(r["text"]))] = val
    pairs, owner = [], []
    for p in files:
        for r in _read_jsonl(p):
            ref = main_by_idx.get((r.get("source"), r.get("meeting"), r.get("idx"))) if "idx" in r else None
            if ref is None:
                ref = main_by_key.get((r.get("meeting"), text_key(r["text"])))
            if ref is None:
                continue
            if ref[1] == str(r.get("annotator", "")):  # same annotator twice is not agreement
                continue
            pairs.append((ref[0], set(r["labels"])))
            owner.append(p.name)
    if not pairs:
        return None
    res = {"files": [p.name for p in files], **_pair_agreement(pairs, theme_ids),
           "note": "second annotation of a subset vs. the main labels; macro over labels used by either annotator"}
    res["by_file"] = {f: {k: v for k, v in _pair_agreement([x for x, o in zip(pairs, owner) if o == f],
                                                           theme_ids).items() if k != "per_label_f1"}
                      for f in dict.fromkeys(owner)}
    return res


def _pair_agreement(pairs: list[tuple[set, set]], theme_ids: list[str]) -> dict:
    idx = {t: j for j, t in enumerate(theme_ids)}
    a = np.zeros((len(pairs), len(theme_ids)), dtype=int)
    b = np.zeros_like(a)
    for i, (x, y) in enumerate(pairs):
        for lab in x:
            if lab in idx:
                a[i, idx[lab]] = 1
        for lab in y:
            if lab in idx:
                b[i, idx[lab]] = 1
    present = (a.sum(0) + b.sum(0)) > 0
    tp = (a & b).sum(0)
    fp = ((1 - a) & b).sum(0)
    fn = (a & (1 - b)).sum(0)
    per = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return {
        "n_sentences": len(pairs),
        "micro_f1": round(float(2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)), 4),
        "macro_f1": round(float(per[present].mean()), 4) if present.any() else None,
        "exact_match": round(float((a == b).all(1).mean()), 4),
        "per_label_f1": {t: round(float(per[j]), 4) for j, t in enumerate(theme_ids) if present[j]},
    }


# ------------------------------------------------------------------ off-corpus label records
def _featurise_records(payload: dict) -> dict[str, pd.DataFrame]:
    """map_partitions worker: one meeting's labelled sentences -> {"features": text, terms[, vector]}:
    terms as the parse stage computes its ``terms`` column, vectors with the embed stage's backend."""
    from pipeline.parse import terms_for_texts

    texts = payload["frame"]["text"].astype(str).tolist()
    out = pd.DataFrame({"text": texts, "terms": [list(t) for t in terms_for_texts(texts)]})
    if payload["backend"]:
        from pipeline.embed import get_backend

        out["vector"] = list(np.asarray(get_backend(payload["backend"]).encode(texts), dtype=np.float32))
    return {"features": out}


def anchored_features(records: list[dict], backend: str | None = None, *, cache: bool = True,
                      cache_dir=None) -> tuple[list[list[str]], np.ndarray | None]:
    """(terms per record, embeddings [n, dim] or None) for off-corpus label records, computed
    meeting by meeting with the parse stage's :func:`~pipeline.parse.terms_for_texts` and the
    embed stage's backend ``backend`` (None: no embeddings), and cached under
    ``.cache/label_records/`` keyed by the meeting's texts, the backend and the code (parse,
    embed, this module) and model versions, so ``train`` does not rerun GiNZA/USE each time."""
    from pipeline.parse.settings import MODEL_PACKAGES, SPEED_ONLY, resolve_params
    from pipeline.partition import Partition, hash_frame, iter_partitions

    if not records:
        return [], None
    order: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        order.setdefault(anchor_meeting(r), []).append(i)
    parts = []
    for name, idx in order.items():
        frame = pd.DataFrame({"text": [str(records[i]["text"]) for i in idx]})
        parts.append(Partition(name=name, payload={"frame": frame, "backend": backend}, digest=hash_frame(frame)))
    parse = {k: v for k, v in resolve_params().items() if k not in SPEED_ONLY}
    terms: list = [None] * len(records)
    vecs: list = [None] * len(records)
    for part, tables in iter_partitions(_featurise_records, parts, stage="label_records",
                                        params={"backend": backend, "parse": parse}, cache=cache,
                                        cache_dir=cache_dir, executor="local", n_workers=1,
                                        libraries=(str(parse.get("model", "")), *MODEL_PACKAGES)):
        f = tables["features"]
        for i, t, v in zip(order[part.name], f["terms"], f["vector"] if backend else [None] * len(f)):
            terms[i] = [str(x) for x in t]
            vecs[i] = v
    E = np.vstack([np.asarray(v, dtype=np.float32) for v in vecs]) if backend else None
    return terms, E
