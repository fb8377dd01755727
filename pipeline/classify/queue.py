"""Growing the labels: the sentences the model is least sure about, or where rules and model disagree."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline.labels import text_key

QUEUE_COLUMNS = ["sentence_id", "meeting_id", "speaker", "previous_text", "text", "predicted", "rule_hits",
                 "uncertainty", "reason", "labels"]


def build_queue(model, sentences: pd.DataFrame, P: np.ndarray, rule_evidence: list[dict],
                labelled_keys=frozenset(), n: int = 50) -> pd.DataFrame:
    """Rank unlabelled sentences by uncertainty (+1 per theme where rules and model disagree).

    Uncertainty of a sentence = max over themes of 1 - |p - t| / max(t, 1 - t) (1 at the
    threshold t, 0 when the calibrated score p is at 0 or 1). Fill ``labels`` with theme ids
    separated by ``;`` (``-`` = deliberately no theme), save the CSV into data/labels/.

    ``labelled_keys`` may be a mapping key -> label ids: when fewer than ``n`` unlabelled
    sentences remain, the queue is topped up with labelled sentences whose label the model
    contradicts (``labels`` pre-filled with the current label, to confirm or correct).
    """
    ids = [str(c) for c in model.classes_]
    thr = np.asarray(model.thresholds_)
    Yp = model.decide(P) if len(P) else np.zeros((0, len(ids)), dtype=int)
    scale = np.maximum(thr, 1 - thr)[None, :]
    unc = (1 - np.abs(P - thr[None, :]) / scale).max(1) if len(P) else np.zeros(0)
    rows = []
    texts = sentences["text"].fillna("").astype(str).tolist()
    seen: set[str] = set(labelled_keys)
    prev_text = [""] + texts[:-1]
    utt = sentences["utterance_id"].astype(str).tolist() if "utterance_id" in sentences.columns else [""] * len(texts)
    gold = labelled_keys if isinstance(labelled_keys, dict) else {}
    review = []
    for i, text in enumerate(texts):
        key = text_key(text)
        if key in gold and text.strip():
            pred = {ids[j] for j in np.flatnonzero(Yp[i])}
            have = set(gold[key]) & set(ids)
            if pred != have:
                review.append((i, have, pred))
        if not key or key in seen:
            continue
        seen.add(key)
        pred = {ids[j] for j in np.flatnonzero(Yp[i])}
        rules = set(rule_evidence[i].keys()) & set(ids)
        dis = sorted(pred ^ rules)
        reason = ("rules vs model: " + ", ".join(dis)) if dis else "uncertain"
        rows.append({
            "sentence_id": sentences["sentence_id"].iloc[i] if "sentence_id" in sentences.columns else str(i),
            "meeting_id": sentences["meeting_id"].iloc[i] if "meeting_id" in sentences.columns else "",
            "speaker": sentences["speaker"].iloc[i] if "speaker" in sentences.columns else "",
            "previous_text": prev_text[i] if i > 0 and utt[i - 1] == utt[i] else "",
            "text": text,
            "predicted": ";".join(sorted(pred, key=ids.index)),
            "rule_hits": ";".join(sorted(rules, key=ids.index)),
            "uncertainty": round(float(unc[i]), 4),
            "priority": float(unc[i]) + len(dis),
            "reason": reason,
            "labels": "",
        })
    q = pd.DataFrame(rows, columns=QUEUE_COLUMNS + ["priority"])
    q = q.sort_values(["priority", "uncertainty"], ascending=False, kind="stable").head(n)
    if len(q) < n and review:
        extra, done = [], set()
        for i, have, pred in review:
            key = text_key(texts[i])
            if key in done:
                continue
            done.add(key)
            extra.append({
                "sentence_id": sentences["sentence_id"].iloc[i] if "sentence_id" in sentences.columns else str(i),
                "meeting_id": sentences["meeting_id"].iloc[i] if "meeting_id" in sentences.columns else "",
                "speaker": sentences["speaker"].iloc[i] if "speaker" in sentences.columns else "",
                "previous_text": prev_text[i] if i > 0 and utt[i - 1] == utt[i] else "",
                "text": texts[i],
                "predicted": ";".join(sorted(pred, key=ids.index)),
                "rule_hits": ";".join(sorted(set(rule_evidence[i]) & set(ids), key=ids.index)),
                "uncertainty": round(float(unc[i]), 4),
                "priority": float(unc[i]) + len(have ^ pred),
                "reason": "review: labelled " + (";".join(sorted(have, key=ids.index)) or "-")
                          + ", model says " + (";".join(sorted(pred, key=ids.index)) or "-"),
                "labels": ";".join(sorted(have, key=ids.index)) or "-",
            })
        ex = pd.DataFrame(extra).sort_values("priority", ascending=False, kind="stable").head(n - len(q))
        q = pd.concat([q, ex], ignore_index=True) if len(q) else ex
    return q[QUEUE_COLUMNS].reset_index(drop=True)


def evidence_from_column(values) -> list[dict]:
    return [json.loads(v) if isinstance(v, str) and v else {} for v in values]
