"""The topics stage's output tables from a fitted :class:`~pipeline.topics.model.PolicyTopicModel`
and a topic assignment (fitted or transformed sentences): topic_info, topics_per_class,
topics_over_time, topic_hierarchy."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline.topics.geometry import l2_normalize
from pipeline.topics.terms import norm_text

#: class columns of topics_per_class: kind -> sentences column
CLASS_KINDS = {"speaker": "speaker", "role": "speaker_role", "agenda": "agenda_item"}
HIERARCHY_COLUMNS = ["parent_id", "parent_name", "topics", "child_left_id", "child_left_name",
                     "child_right_id", "child_right_name", "distance"]


def _terms_of(words) -> list[str]:
    if isinstance(words, str):
        return [w.strip() for w in words.split(",") if w.strip()]
    return list(words or [])


def topic_info(model, frame: pd.DataFrame, E: np.ndarray, topics: np.ndarray, n_repr: int) -> pd.DataFrame:
    """One row per topic: label, size, terms + weights, c-TF-IDF terms, representative sentences
    (the members closest to the topic centroid)."""
    En = l2_normalize(E)
    cent = {int(t): model.centroids_[i] for i, t in enumerate(model.centroid_ids_)}
    rows = []
    speakers = frame["speaker"].astype(str).to_numpy() if "speaker" in frame.columns else np.full(len(frame), "")
    sids, texts = frame["sentence_id"].astype(str).to_numpy(), frame["text"].astype(str).to_numpy()
    for t in sorted(set(topics.tolist())):
        members = np.where(topics == t)[0]
        words = model.topic_words(t) if t != -1 else []
        if t in cent and len(members):
            order = members[np.argsort(-(En[members] @ cent[t][:En.shape[1]]))]
        else:
            order = members
        rep = [json.dumps({"sentence_id": sids[i], "speaker": speakers[i], "text": texts[i]}, ensure_ascii=False)
               for i in order[:n_repr]]
        rows.append({
            "topic_id": int(t), "label": model.label(t), "size": int(len(members)),
            "terms": [w for w, _ in words], "weights": [round(s, 6) for _, s in words],
            "ctfidf_terms": [w for w, _ in model.ctfidf_words(t)] if t != -1 else [],
            "representative": rep,
            "is_procedural": bool(t == model.procedural_topic_), "is_outlier": bool(t == -1),
        })
    return pd.DataFrame(rows)


def topics_per_class(model, frame: pd.DataFrame, topics: np.ndarray) -> pd.DataFrame:
    """Topic frequency and plain c-TF-IDF words per speaker / role / agenda item."""
    cols = ["topic_id", "class_kind", "class", "frequency", "terms"]
    docs = [norm_text(t) for t in frame["text"]]
    out = []
    for kind, col in CLASS_KINDS.items():
        if col not in frame.columns:
            continue
        classes = frame[col].astype("string").fillna("").astype(str).tolist()
        if not any(classes):
            continue
        df = model.bertopic_.words_per_class(docs, topics, classes)
        df = df[df["Class"].astype(str) != ""]
        out.append(pd.DataFrame({"topic_id": df["Topic"].astype(int), "class_kind": kind,
                                 "class": df["Class"].astype(str), "frequency": df["Frequency"].astype(int),
                                 "terms": [_terms_of(w) for w in df["Words"]]}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def topics_over_time(model, frame: pd.DataFrame, topics: np.ndarray | None = None) -> pd.DataFrame:
    """Topic frequency and words per meeting date (BERTopic topics_over_time), when >= 2 dates."""
    cols = ["topic_id", "timestamp", "frequency", "terms"]
    topics = model.topics_ if topics is None else topics
    if "meeting_date" not in frame.columns:
        return pd.DataFrame(columns=cols)
    dates = pd.to_datetime(frame["meeting_date"], errors="coerce")
    ok = dates.notna().to_numpy()
    if dates[ok].nunique() < 2:
        return pd.DataFrame(columns=cols)
    docs = [norm_text(d) for d, k in zip(frame["text"], ok) if k]
    df = model.bertopic_.topics_over_time(docs, np.asarray(topics)[ok], list(dates[ok]))
    return pd.DataFrame({"topic_id": df["Topic"].astype(int), "timestamp": pd.to_datetime(df["Timestamp"]),
                         "frequency": df["Frequency"].astype(int), "terms": [_terms_of(w) for w in df["Words"]]})


def topic_hierarchy(model) -> pd.DataFrame:
    """The fit's topic hierarchy (BERTopic hierarchical_topics) in the stage's column names."""
    h = getattr(model, "hierarchy_", None)
    if h is None or not len(h):
        return pd.DataFrame(columns=HIERARCHY_COLUMNS)
    h = h.rename(columns={c: c.lower() for c in h.columns})
    for c in ("parent_id", "child_left_id", "child_right_id"):
        if c in h.columns:
            h[c] = h[c].astype(str)
    if "topics" in h.columns:
        h["topics"] = [[int(x) for x in ts] for ts in h["topics"]]
    return h.reset_index(drop=True)
