"""Labelled sentences from ``data/labels/`` keyed by normalised text.

Shared by the classifier (training, evaluation) and the topics stage (NMI against themes).

Reads ``*.jsonl`` (one sentence per line: text, source, labels, ...) and labelled
``*.csv`` returned from the label queue (columns ``text`` and ``labels``; labels
separated by ``;`` / ``,`` / ``|`` / whitespace, ``-`` or empty = deliberately no label)
at the top level of the folder. Sub-folders (e.g. ``agreement/``) are not training data.
Keys are NFKC-normalised, whitespace-free text, so re-splitting sentences does not
orphan labels; matching falls back to containment, and unmatched labels are
counted and logged, never silently dropped.
"""
from __future__ import annotations

import csv
import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

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

    def __len__(self) -> int:
        return len(self.labels)


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
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PipelineError(path, f"line {n}: invalid JSON ({exc.msg})") from exc
            if not isinstance(rec, dict) or "text" not in rec or "labels" not in rec:
                raise PipelineError(path, f"line {n}: needs `text` and `labels`")
            rows.append(rec)
    return rows


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
    folder = Path(folder)
    if not folder.is_dir():
        raise PipelineError(folder, "labels folder not found")
    # JSONL first, then CSVs returned from the label queue (later files win on conflicts)
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".jsonl", ".csv")),
                   key=lambda p: (p.suffix.lower() == ".csv", p.name))
    labels: dict[str, list[str]] = {}
    records: dict[str, dict] = {}
    n_rows = conflicts = 0
    unknown: dict[str, int] = {}
    conflict_examples: list[dict] = []
    votes: dict[str, dict[tuple, int]] = {}
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
    log.info("labels: %d labelled sentence(s) from %d file(s)", len(labels), len(files))
    return LabelSet(labels, records, [p.name for p in files], n_rows, conflicts, unknown, conflict_examples)


@dataclass
class Matched:
    #: positional index into the sentences frame -> label ids
    rows: dict[int, list[str]]
    n_exact: int
    n_contained: int
    unmatched: list[str]


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
    if unmatched:
        log.warning("labels: %d labelled text(s) match no sentence (e.g. %s)", len(unmatched), unmatched[0][:40])
    log.info("labels: %d exact, %d by containment, %d unmatched; %d sentence(s) labelled",
             n_exact, n_cont, len(unmatched), len(rows))
    return Matched(rows, n_exact, n_cont, unmatched)


def agreement(folder: str | Path, theme_ids: list[str]) -> dict | None:
    """Inter-annotator agreement: ``agreement/*.jsonl`` (second annotations of a subset)
    against the main labels of the same sentences (paired by ``source``+``idx``, else by text).
    """
    import numpy as np

    folder = Path(folder)
    sub = folder / "agreement"
    files = sorted(sub.glob("*.jsonl")) if sub.is_dir() else []
    if not files:
        return None
    main_by_idx: dict[tuple, tuple[set, str]] = {}
    main_by_key: dict[str, tuple[set, str]] = {}
    for p in sorted(folder.glob("*.jsonl")):
        for r in _read_jsonl(p):
            val = (set(r["labels"]), str(r.get("annotator", p.stem)))
            if "idx" in r:
                main_by_idx[(r.get("source"), r["idx"])] = val
            main_by_key[text_key(r["text"])] = val
    pairs = []
    for p in files:
        for r in _read_jsonl(p):
            ref = main_by_idx.get((r.get("source"), r.get("idx"))) if "idx" in r else None
            if ref is None:
                ref = main_by_key.get(text_key(r["text"]))
            if ref is None:
                continue
            if ref[1] == str(r.get("annotator", "")):  # same annotator twice is not agreement
                continue
            pairs.append((ref[0], set(r["labels"])))
    if not pairs:
        return None
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
        "files": [p.name for p in files],
        "n_sentences": len(pairs),
        "micro_f1": round(float(2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)), 4),
        "macro_f1": round(float(per[present].mean()), 4) if present.any() else None,
        "exact_match": round(float((a == b).all(1).mean()), 4),
        "per_label_f1": {t: round(float(per[j]), 4) for j, t in enumerate(theme_ids) if present[j]},
        "note": "second annotation of a subset vs. the main labels; macro over labels used by either annotator",
    }
