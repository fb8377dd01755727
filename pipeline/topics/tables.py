"""The topics stage's output tables from a fitted :class:`~pipeline.topics.model.PolicyTopicModel`
and a topic assignment (fitted or transformed sentences): topic_info, topics_per_class,
topics_over_time, topic_hierarchy."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline.topics.geometry import l2_normalize

#: class columns of topics_per_class: kind -> sentences column
CLASS_KINDS = {"speaker": "speaker", "role": "speaker_role", "agenda": "agenda_item"}
HIERARCHY_COLUMNS = ["parent_id", "parent_name", "topics", "child_left_id", "child_left_name",
                     "child_right_id", "child_right_name", "distance"]


def _terms_of(words) -> list[str]:
    if isinstance(words, str):
        return [w.strip() for w in words.split(",") if w.strip()]
    return list(words or [])


def representative_scores(E: np.ndarray, topics: np.ndarray, centroid_ids: np.ndarray,
                          centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """How representative each sentence is of its topic: cosine of its (unit) embedding to the
    embedding part of its topic's centroid (NaN without a centroid). Row by row in float64, so a
    sentence's score does not depend on which other rows are scored with it (an added meeting is
    scored alone and the saved scores of the others are kept). ``chunk`` rows at a time: the float64
    copies of the whole matrix (normalised rows, their centroids) were 3 x 570 MB at 140k sentences,
    the topics stage's peak at 5x Tokyo."""
    out = np.full(len(E), np.nan)
    pos = {int(t): i for i, t in enumerate(np.asarray(centroid_ids).tolist())}
    idx = np.array([pos.get(int(t), -1) for t in np.asarray(topics).tolist()], dtype=int)
    if not (idx >= 0).any():
        return out
    C = np.asarray(centroids, dtype=np.float64)[:, :np.shape(E)[1]]
    for a in range(0, len(E), chunk):
        sl = slice(a, a + chunk)
        ok = idx[sl] >= 0
        if ok.any():
            En = l2_normalize(np.asarray(E[sl])[ok]).astype(np.float64)
            out[a:a + len(ok)][ok] = np.einsum("ij,ij->i", En, C[idx[sl][ok]])
    return out


def topic_info(terms, labels: dict[int, str], procedural_topic: int | None, frame: pd.DataFrame,
               topics: np.ndarray, scores: np.ndarray, n_repr: int) -> pd.DataFrame:
    """One row per topic: label, size, terms + weights, c-TF-IDF terms, representative sentences
    (the members of highest :func:`representative_scores`). ``terms``: the model's
    :class:`~pipeline.topics.ctfidf.TopicTerms`."""
    rows = []
    speakers = frame["speaker"].astype(str).to_numpy() if "speaker" in frame.columns else np.full(len(frame), "")
    sids, texts = frame["sentence_id"].astype(str).to_numpy(), frame["text"].astype(str).to_numpy()
    scores = np.asarray(scores, dtype=np.float64)
    for t in sorted(set(topics.tolist())):
        members = np.where(topics == t)[0]
        words = terms.topic_words(t) if t != -1 else []
        s = scores[members]
        order = members[np.argsort(-s)] if len(members) and not np.isnan(s).all() else members
        rep = [json.dumps({"sentence_id": sids[i], "speaker": speakers[i], "text": texts[i]}, ensure_ascii=False)
               for i in order[:n_repr]]
        rows.append({
            "topic_id": int(t), "label": labels.get(int(t), f"topic {t}"), "size": int(len(members)),
            "terms": [w for w, _ in words], "weights": [round(s, 6) for _, s in words],
            "ctfidf_terms": [w for w, _ in terms.topic_ctfidf_words(t)] if t != -1 else [],
            "representative": rep,
            "is_procedural": bool(t == procedural_topic), "is_outlier": bool(t == -1),
        })
    return pd.DataFrame(rows)


PER_CLASS_COLUMNS = ["topic_id", "class_kind", "class", "frequency", "terms"]
OVER_TIME_COLUMNS = ["topic_id", "timestamp", "frequency", "terms"]


def class_values(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Class of every sentence per kind of topics_per_class ("" = none); kinds whose column is
    absent or empty everywhere are left out (as BERTopic's tables had them)."""
    out = {}
    for kind, col in CLASS_KINDS.items():
        if col not in frame.columns:
            continue
        classes = frame[col].astype("string").fillna("").astype(str).to_numpy()
        if any(classes):
            out[kind] = classes
    return out


def meeting_dates(frame: pd.DataFrame) -> pd.Series | None:
    """Meeting date of every sentence (NaT if unknown), or None when topics over time do not apply
    (no date column, or fewer than 2 distinct dates)."""
    if "meeting_date" not in frame.columns:
        return None
    dates = pd.to_datetime(frame["meeting_date"], errors="coerce")
    if dates[dates.notna()].nunique() < 2:
        return None
    return dates


def _sort_per_class(res: pd.DataFrame) -> pd.DataFrame:
    # a fixed order (BERTopic walked set(classes), whose order followed string hashing)
    kind_order = {k: i for i, k in enumerate(CLASS_KINDS)}
    res = res.assign(_k=res["class_kind"].map(kind_order)).sort_values(["_k", "class", "topic_id"], kind="stable")
    return res.drop(columns="_k").reset_index(drop=True)


def topics_per_class(terms, frame: pd.DataFrame, topics: np.ndarray, counts=None,
                     only: dict[str, set] | None = None) -> pd.DataFrame:
    """Topic frequency and plain c-TF-IDF words (global tuning) per speaker / role / agenda item,
    as BERTopic's ``topics_per_class``, for any assignment (fitted + transformed sentences).

    ``counts``: the sentences' term counts (``terms.counts(frame["terms"])``; computed when None);
    ``only``: ``{kind: {(class, topic), ...}}`` computes just those groups (rows of all other groups
    are the caller's)."""
    from pipeline.topics.ctfidf import group_counts

    topics = np.asarray(topics, dtype=int)
    rows_of = terms.rows()
    out = []
    for kind, classes in class_values(frame).items():
        keys = pd.MultiIndex.from_arrays([classes, topics])
        groups = pd.DataFrame({"cls": classes, "topic": topics}).drop_duplicates()
        groups = groups[(groups["cls"] != "") & groups["topic"].isin(list(rows_of))]
        if only is not None:
            wanted = only.get(kind, set())
            groups = groups[[(c, t) in wanted for c, t in zip(groups["cls"], groups["topic"])]]
        if groups.empty:
            continue
        groups = groups.sort_values(["cls", "topic"]).reset_index(drop=True)
        gidx = pd.MultiIndex.from_frame(groups[["cls", "topic"]])
        codes = gidx.get_indexer(keys)
        sel = np.where(codes >= 0)[0]
        if counts is None:
            C = terms.counts([frame["terms"].iat[i] for i in sel])
            codes_sel = codes[sel]
        else:
            C, codes_sel = counts[sel], codes[sel]
        B = group_counts(C, codes_sel, len(groups))
        words = terms.group_words(B, [rows_of[int(t)] for t in groups["topic"]])
        freq = np.bincount(codes_sel, minlength=len(groups))
        out.append(pd.DataFrame({"topic_id": groups["topic"].astype(int).to_numpy(), "class_kind": kind,
                                 "class": groups["cls"].astype(str).to_numpy(), "frequency": freq.astype(int),
                                 "terms": words}))
    if not out:
        return pd.DataFrame(columns=PER_CLASS_COLUMNS)
    return _sort_per_class(pd.concat(out, ignore_index=True))


def over_time_topics(frame: pd.DataFrame, topics: np.ndarray) -> list[int] | None:
    """The topic ids BERTopic's ``topics_over_time`` indexes the global c-TF-IDF by (the sorted
    topics of the dated sentences: its row i is taken for the i-th of them), or None."""
    dates = meeting_dates(frame)
    if dates is None:
        return None
    return sorted(set(np.asarray(topics, dtype=int)[dates.notna().to_numpy()].tolist()))


def topics_over_time(terms, frame: pd.DataFrame, topics: np.ndarray, counts=None,
                     only: set | None = None) -> pd.DataFrame:
    """Topic frequency and words per meeting date, as BERTopic's ``topics_over_time`` with global
    tuning (its evolution tuning changes nothing in 0.17.4: it writes into a temporary copy), when
    there are >= 2 dates. ``only``: ``{(timestamp, topic), ...}`` computes just those rows."""
    from pipeline.topics.ctfidf import group_counts

    dates = meeting_dates(frame)
    if dates is None:
        return pd.DataFrame(columns=OVER_TIME_COLUMNS)
    topics = np.asarray(topics, dtype=int)
    ok = dates.notna().to_numpy()
    index_of = {t: i for i, t in enumerate(over_time_topics(frame, topics))}
    stamps = dates.to_numpy()
    groups = pd.DataFrame({"timestamp": stamps[ok], "topic": topics[ok]}).drop_duplicates()
    if only is not None:
        groups = groups[[(pd.Timestamp(s), int(t)) in only for s, t in zip(groups["timestamp"], groups["topic"])]]
    if groups.empty:
        return pd.DataFrame(columns=OVER_TIME_COLUMNS)
    groups = groups.sort_values(["timestamp", "topic"]).reset_index(drop=True)
    gidx = pd.MultiIndex.from_frame(groups[["timestamp", "topic"]])
    codes = np.full(len(frame), -1, dtype=np.int64)
    codes[ok] = gidx.get_indexer(pd.MultiIndex.from_arrays([stamps[ok], topics[ok]]))
    sel = np.where(codes >= 0)[0]
    C = terms.counts([frame["terms"].iat[i] for i in sel]) if counts is None else counts[sel]
    B = group_counts(C, codes[sel], len(groups))
    words = terms.group_words(B, [index_of[int(t)] for t in groups["topic"]])
    freq = np.bincount(codes[sel], minlength=len(groups))
    return pd.DataFrame({"topic_id": groups["topic"].astype(int).to_numpy(),
                         "timestamp": pd.to_datetime(groups["timestamp"]).to_numpy(),
                         "frequency": freq.astype(int), "terms": words})


def merge_group_rows(previous: pd.DataFrame, fresh: pd.DataFrame, keys: list[str], sort) -> pd.DataFrame:
    """``previous`` rows of the groups not in ``fresh``, plus ``fresh``, in the table's order."""
    if previous is None or not len(previous):
        return sort(fresh) if len(fresh) else fresh
    if not len(fresh):
        return sort(previous)
    prev_keys = pd.MultiIndex.from_frame(previous[keys])
    drop = prev_keys.isin(pd.MultiIndex.from_frame(fresh[keys]))
    return sort(pd.concat([previous[~drop], fresh], ignore_index=True))


def sort_over_time(res: pd.DataFrame) -> pd.DataFrame:
    return res.sort_values(["timestamp", "topic_id"], kind="stable").reset_index(drop=True)


sort_per_class = _sort_per_class


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
