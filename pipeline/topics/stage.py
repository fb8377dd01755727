"""The ``topics`` stage: :func:`fit_topics` / :func:`assign_topics` (library) and :func:`run_topics`
(CLI / DVC; refits or only assigns new sentences, see :mod:`pipeline.topics.incremental`)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.topics import tables

log = logging.getLogger("policy_topics.topics")

CLASS_KINDS = tables.CLASS_KINDS


class EmbeddingsMismatch(PipelineError):
    """The embeddings do not cover the sentences (attributed to the embeddings file by the CLI)."""


@dataclass
class TopicResult:
    """Everything the stage writes; ``model`` is a fitted :class:`PolicyTopicModel`."""

    assignments: pd.DataFrame
    topic_info: pd.DataFrame
    topics_per_class: pd.DataFrame
    topics_over_time: pd.DataFrame
    topic_hierarchy: pd.DataFrame
    metrics: dict
    model: Any = None
    extra: dict = field(default_factory=dict)


def load_stopwords(params: dict, path: str | Path | None = None) -> list[str]:
    """The shared stop list (:func:`pipeline.vocab.load_stopwords`: configs/stopwords.yaml, NFKC) plus
    params ``topics.extra_stopwords`` (NFKC and as written)."""
    from pipeline.vocab import load_stopwords as shared

    extra = [str(w) for w in params.get("extra_stopwords") or []]
    return sorted(shared(path, extra) | set(extra))


def align_embeddings(sentences: pd.DataFrame, embeddings) -> np.ndarray:
    """Vectors in ``sentences`` row order from ``(sentence_ids, vectors)`` or an aligned array."""
    ids = sentences["sentence_id"].astype(str).to_numpy()
    if isinstance(embeddings, tuple):
        e_ids, vecs = embeddings[0], embeddings[1]
        pos = pd.Series(np.arange(len(e_ids)), index=np.asarray(e_ids).astype(str))
        if pos.index.has_duplicates:
            pos = pos[~pos.index.duplicated()]
        idx = pos.reindex(ids)
        missing = int(idx.isna().sum())
        if missing:
            raise EmbeddingsMismatch(None, f"{missing} sentence(s) have no embedding (e.g. "
                                     f"{ids[idx.isna().to_numpy()][0]}); re-run `policy-topics embed`")
        return np.asarray(vecs, dtype=np.float32)[idx.to_numpy().astype(int)]
    vecs = np.asarray(embeddings, dtype=np.float32)
    if len(vecs) != len(sentences):
        raise EmbeddingsMismatch(None, f"{len(vecs)} embeddings for {len(sentences)} sentences")
    return vecs


def fit_sample(frame: pd.DataFrame, size: int | None, seed: int) -> np.ndarray | None:
    """Row indices to fit on when the corpus exceeds ``fit_sample_size`` (same share from every meeting)."""
    n = len(frame)
    if not size or n <= int(size):
        return None
    rng = np.random.default_rng(seed)
    share = int(size) / n
    by = frame["meeting_id"].astype(str).to_numpy() if "meeting_id" in frame.columns else np.zeros(n, dtype=str)
    picked = []
    for key in pd.unique(by):
        rows = np.where(by == key)[0]
        k = max(1, int(round(share * len(rows))))
        picked.append(rng.choice(rows, size=min(k, len(rows)), replace=False))
    return np.sort(np.concatenate(picked))


def prepare_frame(sentences: pd.DataFrame, utterances: pd.DataFrame | None) -> pd.DataFrame:
    """Sentences with list-valued ``terms`` and the class/date columns taken from utterances."""
    for col in ("sentence_id", "text", "terms"):
        if col not in sentences.columns:
            raise PipelineError(None, f"sentences table lacks column {col!r} (run the parse stage)")
    frame = sentences.reset_index(drop=True).copy()
    frame["terms"] = [list(t) if t is not None else [] for t in frame["terms"]]
    if utterances is None or "utterance_id" not in frame.columns or "utterance_id" not in utterances.columns:
        return frame
    u = utterances.drop_duplicates("utterance_id").set_index("utterance_id")
    for col in ("meeting_date", "speaker_role", "agenda_item", "meeting_id"):
        if col in u.columns and (col not in frame.columns or frame[col].isna().all()):
            frame[col] = frame["utterance_id"].map(u[col])
    if "speaker" not in frame.columns:
        for col in ("speaker_name", "speaker_raw"):
            if col in u.columns:
                frame["speaker"] = frame["utterance_id"].map(u[col])
                break
    return frame


def _groups(frame: pd.DataFrame) -> list[str] | None:
    return frame["utterance_id"].astype(str).tolist() if "utterance_id" in frame.columns else None


def _stopwords(params: dict, frame: pd.DataFrame, stopwords: list[str] | None) -> list[str]:
    stop = load_stopwords(params) if stopwords is None else list(stopwords)
    if params["drop_speaker_names"] and "speaker" in frame.columns:
        names = {str(x).strip() for x in frame["speaker"].dropna().unique()}
        stop = sorted(set(stop) | {x for x in names if len(x) >= 2})
    return stop


def fit_topics(sentences: pd.DataFrame, embeddings, params: dict | None = None, *,
               utterances: pd.DataFrame | None = None, labels: dict[str, list[str]] | None = None,
               stopwords: list[str] | None = None, backend: str | None = None) -> TopicResult:
    """Fit the topic model on parsed sentences and their embeddings; compute every output table + metrics.

    ``sentences``: the parse stage's table (sentence_id, text, terms; utterance_id,
    meeting_id, speaker, speaker_role, agenda_item used when present).
    ``embeddings``: array aligned with ``sentences`` or ``(sentence_ids, vectors)``.
    ``utterances`` supplies meeting dates (topics over time) and missing class columns.
    ``labels``: ``{norm_text: [theme ids]}`` (:func:`evaluate.load_labels`) for NMI.
    """
    from pipeline.settings import load_settings, resolve
    from pipeline.topics.model import PolicyTopicModel, TooFewSentences

    t0 = time.perf_counter()
    params = resolve("topics", params).to_params()  # TopicsSettings, a dict of overrides, or None: params.yaml
    frame = prepare_frame(sentences, utterances)
    E = align_embeddings(frame, embeddings)
    if backend is None:
        backend = load_settings().embed.backend
    fit_idx = fit_sample(frame, params["fit_sample_size"], int(params["seed"]))
    model = PolicyTopicModel(params, _stopwords(params, frame, stopwords), backend=backend)
    try:
        model.fit(frame["text"].tolist(), E, frame["terms"].tolist(), groups=_groups(frame), fit_idx=fit_idx)
    except TooFewSentences as exc:
        raise PipelineError(None, f"{exc}; need at least 5 sentences") from exc
    scores = tables.representative_scores(E, model.topics_, model.centroid_ids_, model.centroids_)
    res = build_result(model, frame, model.topics_, model.probs_, model.procedural_, params, labels, scores)
    res.metrics["n_fit"] = int(len(frame) if fit_idx is None else len(fit_idx))
    res.metrics["outlier_share_before_reduction"] = round(model.n_outliers_before_ / max(1, len(frame)), 4)
    res.metrics["fit_seconds"] = round(time.perf_counter() - t0, 2)
    return res


def assignments_frame(model, frame: pd.DataFrame, topics: np.ndarray, probs: np.ndarray,
                      procedural: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "sentence_id": frame["sentence_id"].astype(str).to_numpy(),
        "topic_id": np.asarray(topics, dtype=int),
        "topic_label": [model.label(t) for t in topics],
        "topic_prob": np.asarray(probs, dtype=float),
        "is_procedural": np.asarray(procedural, dtype=bool),
    })


def build_result(model, frame: pd.DataFrame, topics: np.ndarray, probs: np.ndarray, procedural: np.ndarray,
                 params: dict, labels: dict | None, scores: np.ndarray,
                 group_tables: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> TopicResult:
    """Tables and metrics of an assignment (fitted or transformed) of every sentence in ``frame``.

    ``scores``: :func:`tables.representative_scores` of every sentence; ``group_tables``:
    topics_per_class and topics_over_time when the caller has them (an added meeting: the saved
    rows plus the groups it touched), else both are computed over every sentence."""
    topics = np.asarray(topics, dtype=int)
    terms = model.terms_
    info = tables.topic_info(terms, model.labels_, model.procedural_topic_, frame, topics, scores,
                             int(params["representative_docs"]))
    if group_tables is None:
        counts = terms.counts(frame["terms"].tolist())
        group_tables = (tables.topics_per_class(terms, frame, topics, counts),
                        tables.topics_over_time(terms, frame, topics, counts))
    res = TopicResult(assignments_frame(model, frame, topics, probs, procedural), info, *group_tables,
                      tables.topic_hierarchy(model), {}, model)
    res.extra["scores"] = np.asarray(scores, dtype=np.float64)
    res.metrics = topic_metrics(model, frame, info, topics, np.asarray(procedural, dtype=bool), params, labels)
    return res


def _largest_share(topics: np.ndarray) -> float:
    """Share of substantive sentences in the largest topic (outliers excluded): near 1 = no topics."""
    t = topics[topics != -1]
    return round(float(np.bincount(t - t.min()).max() / len(topics)), 4) if len(t) else 0.0


def topic_metrics(model, frame: pd.DataFrame, info: pd.DataFrame, topics: np.ndarray, proc: np.ndarray,
                  params: dict, labels: dict | None) -> dict[str, Any]:
    from pipeline.topics import evaluate as ev

    topic_words = {int(r.topic_id): list(r.terms) for r in info.itertuples()
                   if r.topic_id != -1 and r.topic_id != model.procedural_topic_}
    substantive = ~proc
    n = len(frame)
    metrics: dict[str, Any] = {
        "n_sentences": int(n),
        "n_fit": None,
        "n_topics": int(len(topic_words)),
        "n_topics_including_procedural": int(len([t for t in set(topics.tolist()) if t != -1])),
        "procedural_topic_id": model.procedural_topic_,
        "procedural_share": round(float(proc.mean()), 4) if n else 0.0,
        "outlier_share_before_reduction": None,
        "outlier_share": round(float((topics == -1).mean()), 4) if n else 0.0,
        "outlier_share_substantive": round(float((topics[substantive] == -1).mean()), 4) if substantive.any() else 0.0,
        "largest_topic_share": _largest_share(topics[substantive]),
        "topic_diversity": ev.topic_diversity(topic_words),
        "npmi_coherence": ev.npmi_coherence(topic_words, ev.documents_by(frame, "terms", "utterance_id"))["mean"],
        "npmi_document_unit": "utterance" if "utterance_id" in frame.columns else "sentence",
        "clustering": params["clustering"]["method"],
        "embedding_backend": model.backend,
        "fit_seconds": None,
    }
    if labels:
        groups = _groups(frame) or frame["sentence_id"].tolist()
        split_seed = int(params["evaluation"]["split_seed"])
        nmi = ev.nmi_report(frame["text"].tolist(), topics, groups, labels, split_seed)
        metrics["nmi"] = nmi
        metrics["nmi_test"] = (nmi.get("test") or {}).get("nmi")
        metrics["nmi_all"] = (nmi.get("all") or {}).get("nmi")
        metrics["nmi_definition"] = ("NMI(topic_id, theme) over labelled sentences with exactly one theme, not "
                                     "procedural; nmi_test = held-out half (GroupShuffleSplit by utterance, "
                                     "evaluation.split_seed), parameters were chosen on the dev half; nmi_all "
                                     "includes dev. Outliers (-1) and the procedural topic count as clusters.")
        metrics["procedural_rule"] = ev.procedural_rule_report(frame["text"].tolist(), proc, labels)
    return metrics
