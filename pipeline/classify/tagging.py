"""Tagging new text and assembling the processed tables (``classify`` stage)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.classify import DEFAULT_MODEL  # declared once, next to the CLI
from pipeline.errors import PipelineError

log = logging.getLogger("policy_topics.classify")


def load_model(path: str | Path = DEFAULT_MODEL):
    import joblib

    path = Path(path)
    if not path.exists():
        raise PipelineError(path, "no trained model (run `policy-topics train` or `dvc repro` first)")
    try:
        model = joblib.load(path)
    except Exception as exc:  # corrupt / incompatible pickle
        raise PipelineError(path, f"cannot load the classifier: {exc}") from exc
    if not hasattr(model, "tag") or not hasattr(model, "classes_"):
        raise PipelineError(path, "not a fitted ThemeClassifier")
    return model


def tag_texts(texts, model=None, model_path: str | Path = DEFAULT_MODEL, batch_size: int = 256) -> list[dict]:
    """Tag independent texts: ``[{"text", "themes", "scores", "evidence"}, ...]`` (same order).

    Empty / whitespace-only texts get no theme (and zero scores) without touching the model.
    """
    model = model if model is not None else load_model(model_path)
    ids = [str(c) for c in model.classes_]
    texts = ["" if t is None else str(t) for t in texts]
    out: list[dict] = [None] * len(texts)  # type: ignore[list-item]
    todo = [i for i, t in enumerate(texts) if t.strip()]
    for i, t in enumerate(texts):
        if not t.strip():
            out[i] = {"text": t, "themes": [], "scores": {c: 0.0 for c in ids}, "evidence": {}}
    for b in range(0, len(todo), batch_size):
        chunk = todo[b:b + batch_size]
        X = pd.DataFrame({"text": [texts[i] for i in chunk]})
        for i, res in zip(chunk, tag_frame(model, X)):
            out[i] = {"text": texts[i], **res}
    return out


#: a text longer than this (UTF-8 bytes) is tagged in pieces cut as parse cuts long sentences
#: (a 1 MB line took 49 s and 5.2 GB in one piece)
MAX_TAG_BYTES = 3000


def tag_frame(model, X: pd.DataFrame, max_bytes: int = MAX_TAG_BYTES) -> list[dict]:
    """``model.tag(X)`` with every text over ``max_bytes`` cut into pieces (at 。、 line breaks or
    spaces, :func:`pipeline.parse.byte_chunks`) tagged as one speaker turn, and the pieces'
    results folded back into one per row: themes = union, score = max, evidence merged.
    Rows within the limit are tagged exactly as before."""
    from pipeline.parse.sentences import byte_chunks

    texts = X["text"].astype(str).tolist()
    if all(len(t) * 3 <= max_bytes or len(t.encode("utf-8")) <= max_bytes for t in texts):
        return model.tag(X)
    groups = X["group"].astype(str).tolist() if "group" in X.columns else [f"row{i}" for i in range(len(X))]
    rows, owner = [], []
    for i, rec in enumerate(X.to_dict("records")):
        for a, b in byte_chunks(texts[i], max_bytes):
            rows.append({**rec, "text": texts[i][a:b], "group": groups[i]})
            owner.append(i)
    pieces = model.tag(pd.DataFrame(rows))
    order = [str(c) for c in model.classes_]
    out: list[dict | None] = [None] * len(X)
    for i, r in zip(owner, pieces):
        cur = out[i]
        if cur is None:
            out[i] = {"themes": list(r["themes"]), "scores": dict(r["scores"]),
                      "evidence": {k: list(v) for k, v in r["evidence"].items()}}
            continue
        cur["scores"] = {k: max(v, r["scores"].get(k, 0.0)) for k, v in cur["scores"].items()}
        for t, cues in r["evidence"].items():
            cur["evidence"].setdefault(t, [])
            cur["evidence"][t] += [c for c in cues if c not in cur["evidence"][t]]
        cur["themes"] = [t for t in order if t in cur["themes"] or t in r["themes"]]
    return out  # type: ignore[return-value]


def turn_groups(turns) -> list[str]:
    """Group id per line: consecutive lines with the same (non-null) ``turn`` form one speaker
    turn; a line without a turn is a turn of its own; the same turn value met again after
    another turn starts a new turn (the pipeline's turns are contiguous too)."""
    out: list[str] = []
    k, prev = -1, object()
    for t in turns:
        if t is None or t != prev:
            k += 1
        prev = t if t is not None else object()
        out.append(f"turn{k}")
    return out


def tag_records(records, model=None, model_path: str | Path = DEFAULT_MODEL) -> list[dict]:
    """Tag ``[{"id", "text", "turn", "council"}, ...]`` with the pipeline's turn context:
    consecutive records with the same ``turn`` are one speaker turn (neighbouring sentences'
    scores and turn-mean feed each sentence, as in the ``classify`` stage). ``council``
    (optional) scores a record as that council (``classify.domain_adaptation``: shared + its
    own weights if it had labels in training, else the shared ones, as without it). One result
    per record, in order, with ``id`` and ``turn`` (and ``council`` when given) echoed; empty
    texts get no theme."""
    model = model if model is not None else load_model(model_path)
    ids = [str(c) for c in model.classes_]
    recs = list(records)
    texts = ["" if r.get("text") is None else str(r.get("text")) for r in recs]
    groups = turn_groups([_hashable(r.get("turn")) for r in recs])
    out: list[dict] = []
    todo = [i for i, t in enumerate(texts) if t.strip()]
    res: dict[int, dict] = {}
    if todo:
        X = pd.DataFrame({"text": [texts[i] for i in todo], "group": [groups[i] for i in todo]})
        if any(recs[i].get("council") for i in todo):
            X["domain"] = [str(recs[i].get("council") or "(unknown)") for i in todo]
        for i, r in zip(todo, tag_frame(model, X)):
            res[i] = r
    for i, rec in enumerate(recs):
        r = res.get(i) or {"themes": [], "scores": {c: 0.0 for c in ids}, "evidence": {}}
        council = {"council": rec["council"]} if "council" in rec else {}
        out.append({"id": rec.get("id"), "turn": rec.get("turn"), **council, "text": texts[i], **r})
    return out


def _hashable(v):
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True, ensure_ascii=False)
    return v


def _frame_for(model, sentences: pd.DataFrame, embeddings_path=None) -> pd.DataFrame:
    """Model input for parse sentences: text, terms, group (utterance) and embeddings."""
    return _frame_and_embeddings(model, sentences, embeddings_path)[0]


def _frame_and_embeddings(model, sentences: pd.DataFrame, embeddings_path=None) -> tuple[pd.DataFrame, np.ndarray | None]:
    """:func:`_frame_for` and its ``embedding`` column as one matrix (None without embeddings).
    ``embeddings_path``: the embed stage's output, or the rows' vectors as a matrix."""
    X = pd.DataFrame({"text": sentences["text"].fillna("").astype(str).to_numpy()})
    if "terms" in sentences.columns:
        X["terms"] = [list(t) if t is not None and not isinstance(t, float) else [] for t in sentences["terms"]]
    X["group"] = (sentences["utterance_id"] if "utterance_id" in sentences.columns
                  else pd.Series(np.arange(len(sentences)))).astype(str).to_numpy()
    for c in ("meeting_id", "agenda_item", "speaker"):  # held-out units of the cross-group evaluation; queue spread
        if c in sentences.columns:
            X[c] = sentences[c].astype(object).where(sentences[c].notna(), "(none)").astype(str).to_numpy()
    src = next((c for c in ("source_file", "meeting_id") if c in sentences.columns), None)
    if src is not None:  # the council: seen in training -> its own weights too, else the shared ones only
        from pipeline.labels import council_of

        X["domain"] = [council_of(v) for v in sentences[src].tolist()]
    if not getattr(model, "use_embeddings", False) or embeddings_path is None:
        return X, None
    if isinstance(embeddings_path, np.ndarray):  # the rows' vectors, already aligned (classify by meeting)
        E = embeddings_path if len(X) else np.zeros((0, 0), np.float32)
    elif Path(embeddings_path).exists():
        from pipeline.classify.features import load_embeddings_for

        E = load_embeddings_for(sentences["sentence_id"].astype(str).tolist(), embeddings_path)
    else:
        return X, None
    X["embedding"] = list(E)
    return X, E


def with_source_file(sentences: pd.DataFrame, meetings: pd.DataFrame | None) -> pd.DataFrame:
    """``sentences`` with its meetings' ``source_file`` (from a meetings or utterances table, by
    ``meeting_id``) when it lacks one: the council of a sentence comes from where its minutes were
    read (:func:`pipeline.labels.council_of`)."""
    if (meetings is None or "source_file" in sentences.columns or "meeting_id" not in sentences.columns
            or not {"meeting_id", "source_file"} <= set(meetings.columns)):
        return sentences
    files = meetings.drop_duplicates("meeting_id").set_index("meeting_id")["source_file"]
    return sentences.assign(source_file=sentences["meeting_id"].map(files).fillna(sentences["meeting_id"]).to_numpy())


def theme_shares(sent: pd.DataFrame, ids: list[str]) -> dict[str, dict[str, float]]:
    """Per utterance: share of its text (characters) about each theme.

    A sentence's characters are split equally among its themes; shares are divided by
    the utterance's total sentence characters, so they sum to <= 1 (the rest: no theme).
    """
    # one pass over plain lists (a pandas group per utterance cost ~2 s on 28k sentences); the sums
    # are taken in sentence order, as before, so the shares are the same floats
    totals: dict = {}
    accs: dict = {}
    for uid, text, themes in zip(sent["utterance_id"].tolist(), sent["text"].tolist(), sent["themes"].tolist()):
        if uid is None or uid != uid:  # groupby left out missing ids
            continue
        n = len(text) if isinstance(text, str) else 0
        totals[uid] = totals.get(uid, 0) + n
        acc = accs.setdefault(uid, {})
        themes = list(themes)
        if themes:
            w = n / len(themes)
            for t in themes:
                acc[t] = acc.get(t, 0.0) + w
    out: dict[str, dict[str, float]] = {}
    for uid, acc in accs.items():
        total = float(totals[uid]) or 1.0
        out[str(uid)] = {t: round(acc[t] / total, 4) for t in ids if t in acc}
    return out


def classify_tables(model, sentences: pd.DataFrame, *, embeddings=None, topics: pd.DataFrame | None = None,
                    utterances: pd.DataFrame | None = None, model_key: str | None = None,
                    cache_dir=None) -> dict[str, pd.DataFrame]:
    """Tag every sentence; add topic columns; per-utterance themes and shares.

    With ``model_key`` (hash of the saved model) meetings already tagged by that model come from
    the per-meeting cache (:mod:`pipeline.classify.cache`): only new or changed meetings are tagged."""
    ids = [str(c) for c in model.classes_]
    sent = sentences.reset_index(drop=True).copy()
    X, E = _frame_and_embeddings(model, with_source_file(sent, utterances), embeddings)
    if not len(X):
        tags, P, rule_ev = [], np.zeros((0, len(ids))), []
    elif model_key and "meeting_id" in sent.columns:
        from pipeline.classify.cache import tag_by_meeting

        tags, P, rule_ev, cache_stats = tag_by_meeting(model, X, sent["meeting_id"].astype(str).tolist(), model_key,
                                                       cache_dir, embeddings=E)
    else:
        tags, P, rule_ev = model.tag(X, return_details=True)
    sent["themes"] = [t["themes"] for t in tags]
    sent["theme_scores"] = [json.dumps(t["scores"], ensure_ascii=False) for t in tags]
    sent["theme_evidence"] = [json.dumps(t["evidence"], ensure_ascii=False) for t in tags]
    for c in ("topic_id", "topic_label", "topic_prob"):
        if c in sent.columns:
            sent = sent.drop(columns=c)
    if topics is not None and len(topics):
        if "sentence_id" not in topics.columns:
            raise PipelineError(None, "sentence topics table lacks `sentence_id`")
        # topic_id/label/prob plus whatever else topics adds (e.g. is_procedural)
        cols = ["sentence_id"] + [c for c in topics.columns if c != "sentence_id" and c not in sent.columns]
        sent = sent.merge(topics[cols].drop_duplicates("sentence_id"), on="sentence_id", how="left")
    for c, default in (("topic_id", -1), ("topic_label", ""), ("topic_prob", np.nan)):
        if c not in sent.columns:
            sent[c] = default
    sent["topic_id"] = sent["topic_id"].fillna(-1).astype(int)
    sent["topic_label"] = sent["topic_label"].fillna("").astype(str)
    sent["topic_prob"] = sent["topic_prob"].astype(float)
    out = {"sentences": sent, "_proba": P, "_rule_evidence": rule_ev}
    if model_key and len(X) and "meeting_id" in sent.columns:
        out["_cached"] = cache_stats["cached"]
    if "embedding" in X.columns:  # read once: the label queue needs them too (same rows, same order)
        out["_embeddings"] = E if E is not None else (np.vstack(X["embedding"].to_numpy()) if len(X)
                                                      else np.zeros((0, 0), np.float32))
    if utterances is not None:
        utt = utterances.copy()
        shares = theme_shares(sent, ids) if len(sent) else {}
        by_utt: dict[str, set] = {}
        for uid, themes in zip(sent["utterance_id"].astype(str), sent["themes"]):
            by_utt.setdefault(uid, set()).update(themes)
        utt["themes"] = [[t for t in ids if t in by_utt.get(str(u), set())] for u in utt["utterance_id"]]
        utt["theme_shares"] = [json.dumps(shares.get(str(u), {}), ensure_ascii=False) for u in utt["utterance_id"]]
        out["utterances"] = utt
    return out
