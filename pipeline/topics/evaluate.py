"""Topic-model metrics: NMI against labelled themes (dev/test split by turn), diversity, NPMI coherence."""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.labels import load_labels as load_label_set
from pipeline.labels import text_key as norm_text  # no BERTopic import for a text key
from pipeline.settings import default


def load_labels(labels_dir: str | Path | None) -> dict[str, list[str]]:
    """``{text_key: [theme ids]}`` for NMI, read by the same loader the classifier trains on
    (:func:`pipeline.labels.load_labels`), so both stages see identical labels. No folder -> ``{}``."""
    if labels_dir is None or not Path(labels_dir).is_dir():
        return {}
    return load_label_set(labels_dir).labels


def dev_test_split(groups: Sequence, seed: int = default("topics.evaluation.split_seed"), test_size: float = 0.5) -> np.ndarray:
    """Boolean ``is_test`` per row; whole groups (speaker turns) go to one side (fixed seed)."""
    from sklearn.model_selection import GroupShuffleSplit

    groups = np.asarray([str(g) for g in groups])
    if len(set(groups)) < 2:
        return np.zeros(len(groups), dtype=bool)
    _, test = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
                   .split(np.zeros(len(groups)), groups=groups))
    out = np.zeros(len(groups), dtype=bool)
    out[test] = True
    return out


def nmi_report(texts: Sequence[str], topics: Sequence[int], groups: Sequence, labels: dict[str, list[str]],
               seed: int = default("topics.evaluation.split_seed")) -> dict:
    """NMI(topic, theme) on substantive single-theme labelled sentences: dev, test and all.

    Evaluated sentences: matched to a label record, exactly one label, and that
    label is not ``procedural``. The dev/test split is over all labelled sentences,
    grouped by ``groups`` (utterance = speaker turn). Outliers (-1) count as a cluster.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    keys = [norm_text(t) for t in texts]
    lab_idx = np.array([i for i, k in enumerate(keys) if k in labels], dtype=int)
    if not len(lab_idx):
        return {"n_labelled": 0}
    is_test = dev_test_split([groups[i] for i in lab_idx], seed=seed)
    y = [labels[keys[i]] for i in lab_idx]
    single = np.array([len(v) == 1 and v[0] != "procedural" for v in y])
    topics = np.asarray(topics)
    rep: dict = {"n_labelled": int(len(lab_idx)), "split": "GroupShuffleSplit by utterance (turn), 50/50",
                 "split_seed": seed}
    for name, sel in (("dev", ~is_test), ("test", is_test), ("all", np.ones(len(lab_idx), bool))):
        m = sel & single
        if m.sum() < 2:
            rep[name] = {"n": int(m.sum())}
            continue
        yt = [y[j][0] for j in np.where(m)[0]]
        yp = topics[lab_idx[m]]
        rep[name] = {"n": int(m.sum()), "n_themes": len(set(yt)), "n_topics": int(len(set(yp.tolist()))),
                     "nmi": round(float(normalized_mutual_info_score(yt, yp)), 4),
                     "ari": round(float(adjusted_rand_score(yt, yp)), 4)}
    proc = np.array(["procedural" in v for v in y])
    rep["n_procedural_labelled"] = int(proc.sum())
    return rep


def procedural_rule_report(texts: Sequence[str], is_proc: Sequence[bool], labels: dict[str, list[str]]) -> dict:
    """How the procedural rule agrees with labels: recall on `procedural`, share of substantive lost."""
    keys = [norm_text(t) for t in texts]
    rows = [(labels[k], bool(p)) for k, p in zip(keys, is_proc) if k in labels]
    proc = [p for v, p in rows if "procedural" in v]
    subst = [p for v, p in rows if v and "procedural" not in v]
    return {"procedural_recall": round(sum(proc) / len(proc), 4) if proc else None,
            "substantive_flagged_share": round(sum(subst) / len(subst), 4) if subst else None,
            "n_procedural": len(proc), "n_substantive": len(subst)}


def topic_diversity(topic_words: dict[int, list[str]], top_n: int = 10) -> float:
    """Share of unique words among the top-n words of all topics (Dieng et al. 2020)."""
    lists = [w[:top_n] for w in topic_words.values() if w]
    total = sum(len(w) for w in lists)
    return round(len({x for w in lists for x in w}) / total, 4) if total else 0.0


def npmi_coherence(topic_words: dict[int, list[str]], documents: Sequence[Sequence[str]], top_n: int = 10) -> dict:
    """Mean NPMI of top-n word pairs, co-occurrence counted per document (sets of content terms).

    Pairs that never co-occur score -1. Returns mean over topics and per topic.
    """
    docs = [set(d) for d in documents if d]
    n = len(docs)
    if not n:
        return {"mean": None, "per_topic": {}}
    from scipy import sparse

    vocab = sorted({w for ws in topic_words.values() for w in ws[:top_n]})
    pos = {w: i for i, w in enumerate(vocab)}
    rows, cols = [], []
    for r, d in enumerate(docs):
        for w in d:
            if w in pos:
                rows.append(r)
                cols.append(pos[w])
    M = sparse.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n, len(vocab)))
    df = np.asarray(M.sum(axis=0)).ravel()
    co = (M.T @ M).toarray()
    per = {}
    for t, ws in topic_words.items():
        ids = [pos[w] for w in ws[:top_n] if w in pos and df[pos[w]] > 0]
        scores = []
        for a, b in combinations(ids, 2):
            if co[a, b] == 0:
                scores.append(-1.0)
                continue
            p_ab, p_a, p_b = co[a, b] / n, df[a] / n, df[b] / n
            scores.append(1.0 if p_ab >= 1.0 else math.log(p_ab / (p_a * p_b)) / -math.log(p_ab))
        if scores:
            per[int(t)] = round(float(np.mean(scores)), 4)
    return {"mean": round(float(np.mean(list(per.values()))), 4) if per else None, "per_topic": per}


def documents_by(frame: pd.DataFrame, terms_col: str = "terms", by: str = "utterance_id") -> list[list[str]]:
    """Content-term documents for coherence: one per utterance (falls back to one per sentence)."""
    if by in frame.columns:
        return [sorted({t for ts in g for t in ts}) for _, g in frame.groupby(by, sort=False)[terms_col]]
    return [list(ts) for ts in frame[terms_col]]
