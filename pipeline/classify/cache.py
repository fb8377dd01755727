"""Per-meeting cache of the classifier's output, so adding a meeting tags only that meeting.

A meeting's tags depend only on the fitted model and that meeting's model input (text, terms,
speaker turn, embedding: context features never cross a speaker turn, so never a meeting).
The cache key is (hash of the saved model file, hash of the meeting's input rows); entries live
in ``<cache_dir>/classify/<model hash>/<meeting hash>.parquet`` (``scale.cache_dir``, default
``.cache/``). Only the model's public ``tag(X, return_details=True)`` is used.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("policy_topics.classify")


def _digest(X: pd.DataFrame, E: np.ndarray | None = None) -> str:
    """``E``: the rows' embeddings as one matrix when the caller has it (the same bytes as stacking
    ``X["embedding"]``, without a stack per meeting)."""
    h = hashlib.sha256()
    for col in ("text", "terms", "group"):
        if col in X.columns:
            h.update(json.dumps([list(v) if col == "terms" else str(v) for v in X[col]], ensure_ascii=False).encode())
    if "embedding" in X.columns and len(X):
        M = E if E is not None else np.vstack(X["embedding"].to_numpy())
        h.update(np.ascontiguousarray(M, dtype=np.float32).tobytes())
    return h.hexdigest()[:32]


def _store(path: Path, tags: list[dict], P: np.ndarray, rule_ev: list) -> None:
    df = pd.DataFrame({"tag": [json.dumps(t, ensure_ascii=False) for t in tags],
                       "proba": [list(map(float, row)) for row in P],
                       "rule_evidence": [json.dumps(e, ensure_ascii=False, default=list) for e in rule_ev]})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)


def _load(path: Path) -> tuple[list[dict], np.ndarray, list]:
    df = pd.read_parquet(path)
    P = np.array([list(r) for r in df["proba"]], dtype=float)
    return [json.loads(t) for t in df["tag"]], P, [json.loads(e) for e in df["rule_evidence"]]


def tag_by_meeting(model, X: pd.DataFrame, meetings: Sequence[str], model_key: str,
                   cache_dir: str | Path | None = None, embeddings: np.ndarray | None = None
                   ) -> tuple[list[dict], np.ndarray, list, dict]:
    """``model.tag(X, return_details=True)`` computed only for meetings not in the cache.

    ``embeddings``: ``X["embedding"]`` as one matrix, if the caller has it (faster keys).
    Returns (tags, P, rule_evidence, stats) in ``X`` row order; stats: meetings cached / computed."""
    from pipeline.partition import cache_root

    root = cache_root(cache_dir) / "classify" / model_key[:32]
    meetings = np.asarray([str(m) for m in meetings])
    order = list(pd.unique(meetings))
    rows = {m: np.where(meetings == m)[0] for m in order}
    paths = {m: root / f"{_digest(X.iloc[rows[m]], None if embeddings is None else embeddings[rows[m]])}.parquet"
             for m in order}
    todo = [m for m in order if not paths[m].exists()]
    if todo:
        idx = np.concatenate([rows[m] for m in todo])
        tags, P, ev = model.tag(X.iloc[idx].reset_index(drop=True), return_details=True)
        start = 0
        for m in todo:
            n = len(rows[m])
            _store(paths[m], tags[start:start + n], np.asarray(P)[start:start + n], ev[start:start + n])
            start += n
    L = len(model.classes_)
    out_tags: list = [None] * len(X)
    out_P = np.zeros((len(X), L))
    out_ev: list = [None] * len(X)
    for m in order:
        tags, P, ev = _load(paths[m])
        for j, i in enumerate(rows[m]):
            out_tags[i], out_ev[i] = tags[j], ev[j]
        if len(P):
            out_P[rows[m]] = P
    stats = {"meetings": len(order), "cached": len(order) - len(todo), "computed": len(todo)}
    log.debug("classify: %d meeting(s), %d from cache, %d computed", stats["meetings"], stats["cached"],
             stats["computed"])
    return out_tags, out_P, out_ev, stats


# ------------------------------------------------------------------ the trained classifier
#: the self-training pool is refreshed (the final model refitted) once the corpus holds more than
#: this share of meetings that were not in the pool the saved model was trained with
POOL_REFRESH_SHARE = 0.25


def train_key(X: pd.DataFrame, Y: np.ndarray, settings: dict, files: Sequence[str | Path], code: str,
              backend: str | None, evaluate: bool) -> str:
    """What the evaluation and the final model of ``train`` depend on, besides the unlabelled pool:
    the labelled model input (text, terms, turn, embedding, meeting / agenda item / speaker) and labels, the classify settings, the
    taxonomy and label files (annotator agreement), the code and the embedding backend."""
    h = hashlib.sha256()
    h.update(_digest(X).encode())
    for col in ("meeting_id", "agenda_item", "speaker"):  # the units the cross-group evaluations hold out
        if col in X.columns:
            h.update(json.dumps([col, X[col].astype(str).tolist()], ensure_ascii=False).encode())
    h.update(np.ascontiguousarray(Y, dtype=np.int8).tobytes())
    h.update(json.dumps([settings, code, backend, evaluate], sort_keys=True, default=str).encode())
    for f in files:
        for p in sorted(Path(f).rglob("*")) if Path(f).is_dir() else [Path(f)]:
            if p.is_file():
                h.update(p.name.encode() + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:32]


def train_entry(key: str, cache_dir: str | Path | None = None) -> Path:
    from pipeline.partition import cache_root

    return cache_root(cache_dir) / "train" / key


def pool_is_fresh(entry: Path, meetings: set[str]) -> bool:
    """The saved model's self-training pool still stands for the corpus (few meetings added since)."""
    p = entry / "pool.json"
    if not (entry / "model.joblib").exists() or not p.exists():
        return False
    pool = set(json.loads(p.read_text(encoding="utf-8"))["meetings"])
    return len(meetings - pool) <= POOL_REFRESH_SHARE * max(1, len(pool))


def store_training(entry: Path, model_file: Path, metrics: dict, meetings: set[str]) -> None:
    import shutil

    from pipeline.io import write_json

    entry.mkdir(parents=True, exist_ok=True)
    tmp = entry / "model.joblib.tmp"
    shutil.copyfile(model_file, tmp)
    tmp.replace(entry / "model.joblib")
    write_json(metrics, entry / "metrics.json")  # numpy numbers as numbers, like metrics/classifier.json
    (entry / "pool.json").write_text(json.dumps({"meetings": sorted(meetings)}, ensure_ascii=False), encoding="utf-8")
