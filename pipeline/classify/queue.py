"""Growing the labels: the sentences the model is least sure about, or where rules and model disagree."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline.classify.features import text_key

QUEUE_COLUMNS = ["sentence_id", "meeting_id", "speaker", "previous_text", "text", "predicted", "rule_hits",
                 "uncertainty", "reason", "labels"]


def build_queue(model, sentences: pd.DataFrame, P: np.ndarray, rule_evidence: list[dict],
                labelled_keys: set[str] | frozenset = frozenset(), n: int = 50) -> pd.DataFrame:
    """Rank unlabelled sentences by uncertainty (+1 per theme where rules and model disagree).

    Uncertainty of a sentence = max over themes of 1 - |p - t| / max(t, 1 - t) (1 at the
    threshold t, 0 when the calibrated score p is at 0 or 1). Fill ``labels`` with theme ids
    separated by ``;`` (``-`` = deliberately no theme), save the CSV into data/labels/.
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
    for i, text in enumerate(texts):
        key = text_key(text)
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
    if not rows:
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    q = pd.DataFrame(rows).sort_values(["priority", "uncertainty"], ascending=False, kind="stable").head(n)
    return q[QUEUE_COLUMNS].reset_index(drop=True)


def evidence_from_column(values) -> list[dict]:
    return [json.loads(v) if isinstance(v, str) and v else {} for v in values]
