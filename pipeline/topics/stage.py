"""The ``topics`` stage: :func:`fit_topics` (library) and :func:`run_topics` (CLI / DVC)."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError

log = logging.getLogger("policy_topics.topics")

#: minutes boilerplate that must never be a topic word (on top of configs/stopwords.yaml)
CLASS_KINDS = {"speaker": "speaker", "role": "speaker_role", "agenda": "agenda_item"}


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
    """configs/stopwords.yaml (every list in it) + params ``topics.extra_stopwords``, NFKC-normalised."""
    import unicodedata

    from pipeline.config import CONFIGS, ConfigError, load_config

    words: set[str] = set()
    p = Path(path) if path else CONFIGS / "stopwords.yaml"
    if p.exists():
        try:
            data = load_config("stopwords", p)
        except ConfigError as exc:
            raise PipelineError(p, str(exc).split(": ", 1)[-1]) from exc
        if isinstance(data, dict):
            for v in data.values():
                if isinstance(v, list):
                    words |= {str(w) for w in v}
        elif isinstance(data, list):
            words |= {str(w) for w in data}
    words |= {str(w) for w in params.get("extra_stopwords") or []}
    return sorted({unicodedata.normalize("NFKC", w) for w in words} | words)


def _align_embeddings(sentences: pd.DataFrame, embeddings) -> np.ndarray:
    ids = sentences["sentence_id"].astype(str).to_numpy()
    if isinstance(embeddings, tuple):
        e_ids, vecs = embeddings[0], embeddings[1]
        pos = pd.Series(np.arange(len(e_ids)), index=np.asarray(e_ids).astype(str))
        if pos.index.has_duplicates:
            pos = pos[~pos.index.duplicated()]
        idx = pos.reindex(ids)
        missing = int(idx.isna().sum())
        if missing:
            raise PipelineError(None, f"{missing} sentence(s) have no embedding (e.g. {ids[idx.isna().to_numpy()][0]}); "
                                "re-run `policy-topics embed`")
        return np.asarray(vecs, dtype=np.float32)[idx.to_numpy().astype(int)]
    vecs = np.asarray(embeddings, dtype=np.float32)
    if len(vecs) != len(sentences):
        raise PipelineError(None, f"{len(vecs)} embeddings for {len(sentences)} sentences")
    return vecs


def _fit_sample(frame: pd.DataFrame, size: int | None, seed: int) -> np.ndarray | None:
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
    from pipeline.config import stage_params
    from pipeline.topics import evaluate as ev
    from pipeline.topics.model import PolicyTopicModel

    t0 = time.perf_counter()
    params = dict(stage_params("topics") if params is None else params)
    for col in ("sentence_id", "text", "terms"):
        if col not in sentences.columns:
            raise PipelineError(None, f"sentences table lacks column {col!r} (run the parse stage)")
    frame = sentences.reset_index(drop=True).copy()
    frame["terms"] = [list(t) if t is not None else [] for t in frame["terms"]]
    frame = _add_context_columns(frame, utterances)
    E = _align_embeddings(frame, embeddings)
    stop = load_stopwords(params) if stopwords is None else list(stopwords)
    if params.get("drop_speaker_names", True) and "speaker" in frame.columns:
        names = {str(x).strip() for x in frame["speaker"].dropna().unique()}
        stop = sorted(set(stop) | {x for x in names if len(x) >= 2})
    if backend is None:
        from pipeline.embed import DEFAULT_BACKEND

        backend = stage_params("embed").get("backend") or DEFAULT_BACKEND
    seed = int(params.get("seed", 42))
    fit_idx = _fit_sample(frame, params.get("fit_sample_size"), seed)
    groups = frame["utterance_id"].astype(str).tolist() if "utterance_id" in frame.columns else None

    model = PolicyTopicModel(params, stop, backend=backend)
    try:
        model.fit(frame["text"].tolist(), E, frame["terms"].tolist(), groups=groups, fit_idx=fit_idx)
    except ValueError as exc:
        if "too few sentences" in str(exc):
            raise PipelineError(None, f"{exc}; need at least 5 sentences") from exc
        raise
    fit_seconds = time.perf_counter() - t0

    topics, probs = model.topics_, model.probs_
    assignments = pd.DataFrame({
        "sentence_id": frame["sentence_id"].astype(str),
        "topic_id": topics.astype(int),
        "topic_label": [model.label(t) for t in topics],
        "topic_prob": probs.astype(float),
        "is_procedural": model.procedural_.astype(bool),
    })
    info = _topic_info(model, frame, E, int(params.get("representative_docs", 3)))
    per_class = _topics_per_class(model, frame)
    over_time = _topics_over_time(model, frame)
    hierarchy = _hierarchy(model, frame)

    topic_words = {int(r.topic_id): list(r.terms) for r in info.itertuples()
                   if r.topic_id != -1 and r.topic_id != model.procedural_topic_}
    substantive = ~model.procedural_
    metrics: dict[str, Any] = {
        "n_sentences": int(len(frame)),
        "n_fit": int(len(frame) if fit_idx is None else len(fit_idx)),
        "n_topics": int(len(topic_words)),
        "n_topics_including_procedural": int(len([t for t in set(topics.tolist()) if t != -1])),
        "procedural_topic_id": model.procedural_topic_,
        "procedural_share": round(float(model.procedural_.mean()), 4) if len(frame) else 0.0,
        "outlier_share_before_reduction": round(model.n_outliers_before_ / max(1, len(frame)), 4),
        "outlier_share": round(float((topics == -1).mean()), 4) if len(frame) else 0.0,
        "outlier_share_substantive": round(float((topics[substantive] == -1).mean()), 4) if substantive.any() else 0.0,
        "topic_diversity": ev.topic_diversity(topic_words),
        "npmi_coherence": ev.npmi_coherence(topic_words, ev.documents_by(frame, "terms", "utterance_id"))["mean"],
        "npmi_document_unit": "utterance" if "utterance_id" in frame.columns else "sentence",
        "clustering": (params.get("clustering") or {}).get("method", "kmeans"),
        "embedding_backend": backend,
        "fit_seconds": round(fit_seconds, 2),
    }
    if labels:
        split_seed = int((params.get("evaluation") or {}).get("split_seed", 42))
        nmi = ev.nmi_report(frame["text"].tolist(), topics, groups or frame["sentence_id"].tolist(), labels,
                            split_seed)
        metrics["nmi"] = nmi
        metrics["nmi_test"] = (nmi.get("test") or {}).get("nmi")
        metrics["nmi_all"] = (nmi.get("all") or {}).get("nmi")
        metrics["nmi_definition"] = ("NMI(topic_id, theme) over labelled sentences with exactly one theme, not "
                                     "procedural; nmi_test = held-out half (GroupShuffleSplit by utterance, "
                                     "evaluation.split_seed), parameters were chosen on the dev half; nmi_all "
                                     "includes dev. Outliers (-1) and the procedural topic count as clusters.")
        metrics["procedural_rule"] = ev.procedural_rule_report(frame["text"].tolist(), model.procedural_, labels)
    return TopicResult(assignments, info, per_class, over_time, hierarchy, metrics, model)


def _add_context_columns(frame: pd.DataFrame, utterances: pd.DataFrame | None) -> pd.DataFrame:
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


def _topic_info(model, frame: pd.DataFrame, E: np.ndarray, n_repr: int) -> pd.DataFrame:
    from pipeline.topics.model import context_embeddings

    topics = model.topics_
    En = context_embeddings(E, list(range(len(E))), weight=0)
    cent = {int(t): model.centroids_[i] for i, t in enumerate(model.centroid_ids_)}
    rows = []
    speakers = frame["speaker"].astype(str).to_numpy() if "speaker" in frame.columns else np.full(len(frame), "")
    for t in sorted(set(topics.tolist())):
        members = np.where(topics == t)[0]
        words = model.topic_words(t) if t != -1 else []
        if t in cent and len(members):
            order = members[np.argsort(-(En[members] @ cent[t][:En.shape[1]]))]
        else:
            order = members
        rep = [json.dumps({"sentence_id": str(frame.at[i, "sentence_id"]), "speaker": speakers[i],
                           "text": str(frame.at[i, "text"])}, ensure_ascii=False) for i in order[:n_repr]]
        rows.append({
            "topic_id": int(t), "label": model.label(t), "size": int(len(members)),
            "terms": [w for w, _ in words], "weights": [round(s, 6) for _, s in words],
            "ctfidf_terms": [w for w, _ in model.ctfidf_words(t)] if t != -1 else [],
            "representative": rep,
            "is_procedural": bool(t == model.procedural_topic_), "is_outlier": bool(t == -1),
        })
    return pd.DataFrame(rows)


def _terms_of(words) -> list[str]:
    if isinstance(words, str):
        return [w.strip() for w in words.split(",") if w.strip()]
    return list(words or [])


class _plain_ctfidf:
    """Context: BERTopic per-class / per-time words from c-TF-IDF only (the representation models
    would re-embed candidate words for every class x topic: minutes on a large corpus)."""

    def __init__(self, bertopic):
        self.m = bertopic

    def __enter__(self):
        self.saved = self.m.representation_model
        self.m.representation_model = None
        return self.m

    def __exit__(self, *exc):
        self.m.representation_model = self.saved
        return False


def _topics_per_class(model, frame: pd.DataFrame) -> pd.DataFrame:
    cols = ["topic_id", "class_kind", "class", "frequency", "terms"]
    from pipeline.topics.model import norm_text

    docs = [norm_text(t) for t in frame["text"]]
    out = []
    for kind, col in CLASS_KINDS.items():
        if col not in frame.columns:
            continue
        classes = frame[col].astype("string").fillna("").astype(str).tolist()
        if not any(classes) or len(set(classes)) < 1:
            continue
        with _plain_ctfidf(model.model_) as bt:
            df = bt.topics_per_class(docs, classes=classes)
        df = df[df["Class"].astype(str) != ""]
        out.append(pd.DataFrame({"topic_id": df["Topic"].astype(int), "class_kind": kind,
                                 "class": df["Class"].astype(str), "frequency": df["Frequency"].astype(int),
                                 "terms": [_terms_of(w) for w in df["Words"]]}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def _topics_over_time(model, frame: pd.DataFrame) -> pd.DataFrame:
    from pipeline.topics.model import norm_text

    cols = ["topic_id", "timestamp", "frequency", "terms"]
    if "meeting_date" not in frame.columns:
        return pd.DataFrame(columns=cols)
    dates = pd.to_datetime(frame["meeting_date"], errors="coerce")
    ok = dates.notna().to_numpy()
    if dates[ok].nunique() < 2:
        return pd.DataFrame(columns=cols)
    bertopic = model.model_
    saved = bertopic.topics_
    try:
        bertopic.topics_ = [int(t) for t in model.topics_[ok]]
        with _plain_ctfidf(bertopic):
            df = bertopic.topics_over_time([norm_text(d) for d, k in zip(frame["text"], ok) if k], list(dates[ok]))
    finally:
        bertopic.topics_ = saved
    return pd.DataFrame({"topic_id": df["Topic"].astype(int), "timestamp": pd.to_datetime(df["Timestamp"]),
                         "frequency": df["Frequency"].astype(int), "terms": [_terms_of(w) for w in df["Words"]]})


def _hierarchy(model, frame: pd.DataFrame) -> pd.DataFrame:
    from pipeline.topics.model import norm_text

    n_topics = len([t for t in set(model.topics_.tolist()) if t != -1])
    if n_topics < 3:
        return pd.DataFrame(columns=["parent_id", "parent_name", "topics", "child_left_id", "child_left_name",
                                     "child_right_id", "child_right_name", "distance"])
    import bertopic._bertopic as bt_module

    from pipeline.io import progress

    saved = bt_module.tqdm
    bt_module.tqdm = lambda it=None, **kw: progress(it, desc="topic hierarchy", **kw)  # respects --quiet
    try:
        h = model.model_.hierarchical_topics([norm_text(t) for t in frame["text"]])
    finally:
        bt_module.tqdm = saved
    h = h.rename(columns={c: c.lower() for c in h.columns})
    for c in ("parent_id", "child_left_id", "child_right_id"):
        if c in h.columns:
            h[c] = h[c].astype(str)
    if "topics" in h.columns:
        h["topics"] = [[int(x) for x in ts] for ts in h["topics"]]
    return h.reset_index(drop=True)


# --------------------------------------------------------------------------- CLI

def _read_parquet(path: str | Path, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise PipelineError(p, f"{what} file not found")
    from pipeline.dataset import read_table

    return read_table(p)  # a single file or a partitioned dataset directory (pyarrow.dataset)


def run_topics(sentences: str | Path, embeddings: str | Path, out_dir: str | Path, assignments: str | Path,
               model_dir: str | Path, metrics: str | Path, utterances: str | Path | None = None,
               labels: str | Path | None = None, params: dict | None = None) -> TopicResult:
    """Library form of ``policy-topics topics``: read inputs, fit, write every output atomically."""
    from pipeline.config import stage_params
    from pipeline.embed import load_embeddings
    from pipeline.io import output_transaction, stage_timer
    from pipeline.topics.evaluate import load_labels

    params = dict(stage_params("topics") if params is None else params)
    sent = _read_parquet(sentences, "sentences")
    for col in ("sentence_id", "text", "terms"):
        if col not in sent.columns:
            raise PipelineError(sentences, f"sentences table lacks column {col!r}")
    ids, vecs, backend = load_embeddings(embeddings, with_backend=True)
    utt = _read_parquet(utterances, "utterances") if utterances else None
    labs = load_labels(labels) if labels else None
    with stage_timer("topics") as st:
        try:
            res = fit_topics(sent, (ids, vecs), params, utterances=utt, labels=labs, backend=backend)
        except PipelineError as exc:
            if exc.path is None:
                raise PipelineError(embeddings if "embedding" in exc.problem else sentences, exc.problem) from exc
            raise
        out_dir = Path(out_dir)
        with output_transaction():  # every output, or none
            _write_outputs(res, assignments, out_dir, Path(model_dir), metrics)
        st.update(sentences=res.metrics["n_sentences"], topics=res.metrics["n_topics"],
                  outliers=res.metrics["outlier_share"], nmi_test=res.metrics.get("nmi_test"))
    return res


def _write_outputs(res, assignments, out_dir: Path, model_dir: Path, metrics) -> None:
    from pipeline.io import atomic_path, write_json, write_parquet

    write_parquet(res.assignments, assignments)
    write_parquet(res.topic_info, out_dir / "topic_info.parquet")
    write_parquet(res.topics_per_class, out_dir / "topics_per_class.parquet")
    write_parquet(res.topics_over_time, out_dir / "topics_over_time.parquet")
    write_parquet(res.topic_hierarchy, out_dir / "topic_hierarchy.parquet")
    with atomic_path(model_dir, directory=True) as tmp:
        res.model.save(tmp)
    write_json(res.metrics, metrics)
