"""BERTopic for Japanese minutes: :class:`PolicyTopicModel` (fit / transform / save / load).

What makes BERTopic usable on Japanese minutes (see README "Topics and embeddings"):

* documents are embedded by our own backend (USE multilingual by default), wrapped
  as a BERTopic backend (``adapter.BackendEmbedder``) so KeyBERTInspired can embed
  candidate words and ``transform`` works offline after reload;
* the c-TF-IDF vocabulary is the parse stage's content terms (compounds whole,
  boilerplate stop-listed), looked up per sentence by ``terms.TermAnalyzer``; no
  re-tokenising, and unseen text falls back to the parse stage's extractor;
* procedural sentences (page turning, turn-taking, greetings) are detected by a
  documented rule (``rules.procedural_mask``) and form their own topic
  (``clustering.ProceduralAwareClusterer``), so they never drown substantive topics;
* each sentence's embedding is mixed with its neighbours in the same utterance
  (``context_window`` / ``context_weight``) before UMAP: a sentence in the minutes
  continues its speaker's point, and alone it is often too short to place;
* outliers (HDBSCAN) are re-assigned to the nearest substantive topic centroid
  and the topic words are recomputed afterwards (``update_topics``).

BERTopic itself is reached only through :mod:`pipeline.topics.adapter`.
"""
from __future__ import annotations

import json
import logging
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.settings import default
from pipeline.topics.geometry import (
    centroids,
    context_embeddings,
    knn_vote,
    l2_normalize,
    reassign,
    topic_probabilities,
)
from pipeline.topics.rules import OUTLIER_LABEL, PROCEDURAL_LABEL, procedural_mask, topic_labels
from pipeline.topics.terms import TermAnalyzer, TermFeatures, norm_text

log = logging.getLogger("policy_topics.topics")

__all__ = ["PolicyTopicModel", "load_topic_model", "TooFewSentences", "PROCEDURAL_LABEL", "OUTLIER_LABEL"]


class TooFewSentences(ValueError):
    """Fewer sentences than a topic model needs (5)."""


class PolicyTopicModel:
    """BERTopic configured for Japanese minutes, plus the procedural rule and outlier handling.

    ``fit(texts, embeddings, terms, groups)`` / ``transform(texts)``; ``save(dir)`` /
    :func:`load_topic_model`. ``settings``: :class:`pipeline.settings.TopicsSettings`, a dict of
    overrides merged over params.yaml ``topics``, or None (params.yaml), as every stage function.
    """

    def __init__(self, settings=None, stopwords: Sequence[str] = (),
                 backend: str = default("embed.backend"), backend_kw: dict | None = None):
        from pipeline.settings import resolve

        self.s = resolve("topics", settings)
        self.stopwords = list(stopwords)
        self.backend = backend
        self.backend_kw = dict(backend_kw or {})
        self._bertopic = None
        self._bertopic_path: Path | None = None
        self.terms_ = None

    @property
    def bertopic_(self):
        """The BERTopic adapter; a model loaded with ``lazy=True`` unpickles it on first use only."""
        if self._bertopic is None and self._bertopic_path is not None:
            from pipeline.topics.adapter import BERTopicAdapter

            self._bertopic = BERTopicAdapter.load(self._bertopic_path, self.backend, self.backend_kw)
        return self._bertopic

    @bertopic_.setter
    def bertopic_(self, value) -> None:
        self._bertopic = value

    @property
    def params(self) -> dict[str, Any]:
        """The settings as a plain dict (saved with the model, part of the fit key)."""
        return self.s.to_params()

    @property
    def seed(self) -> int:
        return int(self.s.seed)

    def _procedural(self, texts, terms) -> np.ndarray:
        if not self.s.procedural.enabled:
            return np.zeros(len(texts), dtype=bool)
        return procedural_mask(texts, terms, min_terms=int(self.s.procedural.min_terms),
                               max_chars=int(self.s.procedural.max_chars),
                               cues=self.s.procedural.cues or ())

    def _representation(self):
        from pipeline.topics.adapter import representation_chain

        return representation_chain(
            self.s.representation.models or [],
            top_n_words=int(self.s.top_n_words),
            nr_repr_docs=int(self.s.representation.nr_repr_docs),
            nr_candidate_words=int(self.s.representation.nr_candidate_words),
            mmr_diversity=float(self.s.representation.mmr_diversity), seed=self.seed)

    def _analyzer(self, lookup: dict[str, list[str]] | None = None) -> TermAnalyzer:
        suffixes = self.s.name_suffixes or ()
        pattern = "(?:" + "|".join(re.escape(x) for x in suffixes) + ")$" if suffixes else None
        return TermAnalyzer(lookup, self.stopwords, pattern)

    def _build(self, n_docs: int, lookup: dict[str, list[str]], procedural: np.ndarray):
        from sklearn.feature_extraction.text import CountVectorizer
        from umap import UMAP

        from pipeline.topics.adapter import BackendEmbedder, BERTopicAdapter
        from pipeline.topics.clustering import ProceduralAwareClusterer

        self.analyzer_ = self._analyzer(lookup)
        nn = max(2, min(int(self.s.umap.n_neighbors), n_docs - 1))
        nc = max(2, min(int(self.s.umap.n_components), n_docs - 2))
        umap_model = UMAP(n_neighbors=nn, n_components=nc, min_dist=float(self.s.umap.min_dist),
                          metric=self.s.umap.metric, random_state=self.seed,
                          low_memory=True)
        clusterer = ProceduralAwareClusterer(
            method=self.s.clustering.method,
            n_clusters=self.s.clustering.n_clusters,
            min_cluster_size=self.s.clustering.min_cluster_size,
            min_samples=self.s.clustering.min_samples,
            cluster_selection_method=self.s.clustering.cluster_selection_method,
            max_cluster_share=self.s.clustering.max_cluster_share,
            random_state=self.seed, procedural=procedural)
        vectorizer = CountVectorizer(analyzer=self.analyzer_, min_df=int(self.s.min_df),
                                     lowercase=False)
        return BERTopicAdapter.build(embedder=BackendEmbedder(self.backend, **self.backend_kw),
                                     umap_model=umap_model, cluster_model=clusterer, vectorizer=vectorizer,
                                     top_n_words=int(self.s.top_n_words))

    def _features(self, E: np.ndarray, clean_terms: list[list[str]], groups: Sequence[Any] | None,
                  proc: np.ndarray, fit: bool) -> np.ndarray:
        """What UMAP sees: context-mixed embeddings (+ the context-mixed lexical view, weighted).

        ``groups=None`` (transform of independent sentences): no context mixing."""
        window = int(self.s.context.window)
        weight = float(self.s.context.weight) if groups is not None else 0.0
        groups = list(range(len(E))) if groups is None else groups

        def ctx(X):
            return context_embeddings(X, groups, proc, window=window, weight=weight) if weight else X

        C = context_embeddings(E, groups, proc, window=window, weight=weight)
        tw = float(self.s.term_features.weight or 0.0)
        if fit:
            self.term_features_ = None
            if tw > 0:
                self.term_features_ = TermFeatures(dims=int(self.s.term_features.dims),
                                                   min_df=int(self.s.term_features.min_df),
                                                   random_state=self.seed)
                C = np.hstack([C, tw * ctx(self.term_features_.fit_transform(clean_terms))])
        elif getattr(self, "term_features_", None) is not None:
            C = np.hstack([C, tw * ctx(self.term_features_.transform(clean_terms))])
        return C.astype(np.float32)

    def _clean(self, terms: Sequence[Sequence[str]]) -> list[list[str]]:
        keep = (getattr(self, "analyzer_", None) or self._analyzer()).keep
        return [[x for x in ts if keep(x)] for ts in terms]

    # ---------------------------------------------------------------- fit
    def fit(self, texts: Sequence[str], embeddings: np.ndarray, terms: Sequence[Sequence[str]],
            groups: Sequence[Any] | None = None, fit_idx: np.ndarray | None = None) -> PolicyTopicModel:
        """Fit on sentences; ``fit_idx`` (row indices) fits on a sample and assigns the rest by ``transform``."""
        texts = [str(t or "") for t in texts]
        terms = [list(t) for t in terms]
        n = len(texts)
        E = np.asarray(embeddings, dtype=np.float32)
        if len(E) != n or len(terms) != n:
            raise ValueError(f"{n} texts, {len(E)} embeddings, {len(terms)} term lists")
        groups = list(range(n)) if groups is None else list(groups)
        idx = np.arange(n) if fit_idx is None else np.sort(np.asarray(fit_idx, dtype=int))
        if len(idx) < 5:
            raise TooFewSentences(f"too few sentences to fit topics ({len(idx)})")
        lookup: dict[str, list[str]] = {}
        for t, ts in zip(texts, terms):
            lookup.setdefault(norm_text(t), ts)
        self.analyzer_ = None
        clean_terms = self._clean(terms)
        proc = self._procedural(texts, clean_terms)
        C = self._features(E, clean_terms, groups, proc, fit=True)
        self.bertopic_ = self._build(len(idx), lookup, proc[idx])
        docs = [norm_text(t) for t in texts]  # BERTopic documents: whitespace-free keys (see TermAnalyzer)
        topics = np.full(n, -1, dtype=int)
        topics[idx] = self.bertopic_.fit([docs[i] for i in idx], C[idx])
        # what `transform` places new sentences by (k nearest fitted substantive sentences, see _predict_knn)
        ref = idx[~proc[idx]]
        self.fit_features_, self.fit_labels_ = l2_normalize(C[ref]).astype(np.float16), topics[ref].copy()
        pt = [t for t, p in zip(topics[idx].tolist(), proc[idx]) if p]
        self.procedural_topic_ = int(max(set(pt), key=pt.count)) if pt else None
        rest = np.setdiff1d(np.arange(n), idx)
        if len(rest):
            topics[rest] = self._predict_geometry([docs[i] for i in rest], C[rest], proc[rest])
        if self.procedural_topic_ is not None:
            topics[proc] = self.procedural_topic_
        # outlier handling, then topic words (c-TF-IDF + KeyBERTInspired/MMR) once, on the final assignment
        self.n_outliers_before_ = int((topics == -1).sum())
        outlier_before = topics == -1
        self.centroid_ids_, self.centroids_ = centroids(C, topics)
        topics = self._reduce_outliers(C, topics, proc, docs)
        self.hierarchy_ = self.bertopic_.set_assignment(docs, topics, self._representation(),
                                                        int(self.s.top_n_words))
        self.terms_ = self.bertopic_.topic_terms()  # what the tables need, saved without BERTopic
        self.centroid_ids_, self.centroids_ = centroids(C, topics)
        self.reference_ = self._reference(C, outlier_before, proc)
        self.topics_ = topics
        self.probs_ = self._probabilities(C, topics, proc)
        self.procedural_ = proc
        self.labels_ = topic_labels(topics, self.procedural_topic_, self.topic_words,
                                    int(self.s.label_terms), int(self.s.label_max_chars))
        self.bertopic_.set_labels(self.labels_)
        return self

    def _reference(self, C: np.ndarray, outlier: np.ndarray, proc: np.ndarray) -> dict:
        """Fit figures new text is compared with (drift): 5th percentile of the substantive sentences'
        cosine to their nearest topic centroid, and their outlier share before re-assignment."""
        subst = ~proc
        if not subst.any() or not len(self.centroid_ids_):
            return {"similarity_p05": 0.0, "outlier_share_substantive": 0.0}
        sims = (C[subst] @ self.centroids_.T).max(axis=1)
        return {"similarity_p05": round(float(np.quantile(sims, 0.05)), 4),
                "outlier_share_substantive": round(float(outlier[subst].mean()), 4)}

    def _substantive(self) -> np.ndarray:
        return np.array([t for t in self.centroid_ids_.tolist() if t != self.procedural_topic_], dtype=int)

    def _reduce_outliers(self, C: np.ndarray, topics: np.ndarray, proc: np.ndarray, docs: list[str]) -> np.ndarray:
        """Re-assign outliers (not procedural) to the most similar substantive topic (>= threshold)."""
        strategy = self.s.outliers.strategy
        if strategy in (None, "none", False) or not (topics == -1).any():
            return topics
        cand = self._substantive()
        todo = np.where((topics == -1) & ~proc)[0]
        if not len(cand) or not len(todo):
            return topics
        if strategy == "embeddings":
            pos = {t: i for i, t in enumerate(self.centroid_ids_.tolist())}
            S = C[todo] @ self.centroids_[[pos[t] for t in cand.tolist()]].T
        elif strategy == "c-tf-idf":
            S = self.bertopic_.ctfidf_similarity([docs[i] for i in todo], cand)
        else:
            raise ValueError(f"outliers.strategy must be embeddings | c-tf-idf | none, got {strategy!r}")
        return reassign(topics, todo, S, cand, float(self.s.outliers.threshold))

    def _probabilities(self, C, topics, proc) -> np.ndarray:
        return topic_probabilities(C, topics, proc, self.centroid_ids_, self.centroids_,
                                   float(self.s.prob_temperature))

    def _predict_knn(self, C: np.ndarray) -> np.ndarray:
        """Cluster of new substantive sentences without UMAP: the similarity-weighted vote of their
        ``umap.n_neighbors`` nearest fitted substantive sentences (cosine, in the features UMAP saw)
        over those sentences' fitted clusters, -1 (outlier, re-assigned afterwards) included.
        UMAP's own transform places a point from the same neighbours but compiles its numba code in
        every process (~15 CPU-s), most of what adding one meeting cost."""
        return knn_vote(l2_normalize(C), self.fit_features_, self.fit_labels_, int(self.s.umap.n_neighbors))

    def _predict_geometry(self, docs: list[str], C: np.ndarray, proc: np.ndarray) -> np.ndarray:
        topics = self.bertopic_.predict(docs, C)
        if self.procedural_topic_ is not None:
            topics[np.asarray(proc, dtype=bool)] = self.procedural_topic_
        return topics

    # ---------------------------------------------------------------- words / labels
    def topic_words(self, topic: int) -> list[tuple[str, float]]:
        if self.terms_ is not None:
            return self.terms_.topic_words(topic)
        return self.bertopic_.topic_words(topic)

    def ctfidf_words(self, topic: int, n: int = 10) -> list[tuple[str, float]]:
        """Plain c-TF-IDF top terms (before KeyBERT/MMR re-ranking)."""
        if self.terms_ is not None and n <= 10:
            return self.terms_.topic_ctfidf_words(topic)[:n]
        return self.bertopic_.ctfidf_words(topic, n)

    @property
    def bertopic(self):
        """The fitted BERTopic object itself, for its ``visualize_*`` plots in notebooks."""
        return self.bertopic_.model

    def label(self, topic: int) -> str:
        return self.labels_.get(int(topic), f"topic {topic}")

    # ---------------------------------------------------------------- transform
    def transform(self, texts: Sequence[str], embeddings: np.ndarray | None = None,
                  terms: Sequence[Sequence[str]] | None = None, groups: Sequence[Any] | None = None,
                  return_details: bool = False):
        """New sentences -> (topic_ids, probabilities); embeds with the saved backend if needed.

        ``groups`` (utterance ids, rows in document order) mixes each sentence with its
        neighbours as in ``fit``; without it every sentence stands alone. With
        ``return_details`` also a dict: ``procedural`` flags, ``outlier_before`` (rows the
        cluster model left unassigned before outlier re-assignment) and ``similarity``
        (cosine to the nearest topic centroid, the drift signal of :mod:`.incremental`)."""
        texts = [str(t or "") for t in texts]
        if not texts:
            empty = (np.zeros(0, dtype=int), np.zeros(0, dtype=np.float32))
            return (*empty, {"procedural": np.zeros(0, bool), "outlier_before": np.zeros(0, bool),
                             "similarity": np.zeros(0, np.float32)}) if return_details else empty
        E = self.bertopic_.embed(texts) if embeddings is None else np.asarray(embeddings, dtype=np.float32)
        if terms is None:
            terms = self.analyzer_.terms_many(texts)
        clean_terms = self._clean(terms)
        proc = self._procedural(texts, clean_terms)
        C = self._features(E, clean_terms, None if groups is None else list(groups), proc, fit=False)
        docs = [norm_text(t) for t in texts]
        topics = np.full(len(texts), -1, dtype=int)
        sub = np.where(~proc)[0]
        if len(sub):
            if getattr(self, "fit_features_", None) is not None:
                topics[sub] = self._predict_knn(C[sub])
            else:  # a model saved without its fitted features: UMAP transform + cluster model predict
                topics[sub] = self._predict_geometry([docs[i] for i in sub], C[sub], np.zeros(len(sub), dtype=bool))
        if self.procedural_topic_ is not None:
            topics[proc] = self.procedural_topic_
        before = topics == -1
        topics = self._reduce_outliers(C, topics, proc, docs)
        probs = self._probabilities(C, topics, proc)
        if not return_details:
            return topics, probs
        sim = (C @ self.centroids_.T).max(axis=1) if len(self.centroid_ids_) else np.zeros(len(texts))
        return topics, probs, {"procedural": proc, "outlier_before": before & ~proc,
                               "similarity": sim.astype(np.float32)}

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Directory with ``bertopic.pkl`` (BERTopic.save, pickle) and ``policy_topics.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.bertopic_.save(path / "bertopic.pkl")
        meta = {
            "params": self.params, "stopwords": self.stopwords, "backend": self.backend,
            "backend_kw": self.backend_kw, "procedural_topic": self.procedural_topic_,
            "labels": {str(k): v for k, v in self.labels_.items()},
            "centroid_ids": self.centroid_ids_.tolist(),
            "n_outliers_before": self.n_outliers_before_, "reference": self.reference_,
        }
        (path / "policy_topics.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        np.save(path / "centroids.npy", self.centroids_)
        if getattr(self, "hierarchy_", None) is not None:
            self.hierarchy_.to_parquet(path / "hierarchy.parquet", index=False)
        if getattr(self, "term_features_", None) is not None:
            (path / "term_features.pkl").write_bytes(pickle.dumps(self.term_features_))
        if getattr(self, "fit_features_", None) is not None:
            np.save(path / "fit_features.npy", self.fit_features_)
            np.save(path / "fit_labels.npy", self.fit_labels_)
        if self.terms_ is not None:
            self.terms_.save(path)
        return path


def load_topic_model(path: str | Path, lazy: bool = False) -> PolicyTopicModel:
    """Reload a model saved by :meth:`PolicyTopicModel.save`; ``transform`` works offline.

    ``lazy``: BERTopic is neither imported nor unpickled until something needs it (the
    ``topics`` stage assigning new sentences with their parse-stage terms never does: ~5 s of an
    added meeting on full Tokyo); ``transform`` then needs the sentences' ``terms``, or extracts
    them with the parse stage's extractor."""
    from pipeline.errors import PipelineError
    from pipeline.topics.ctfidf import TopicTerms

    path = Path(path)
    meta_p, model_p = path / "policy_topics.json", path / "bertopic.pkl"
    if not meta_p.exists() or not model_p.exists():
        raise PipelineError(path, "not a saved topic model (policy_topics.json / bertopic.pkl missing)")
    meta = json.loads(meta_p.read_text(encoding="utf-8"))
    m = PolicyTopicModel(meta["params"], meta["stopwords"], meta["backend"], meta["backend_kw"])
    m._bertopic_path = model_p
    lazy = lazy and TopicTerms.exists(path)
    m.terms_ = TopicTerms.load(path) if TopicTerms.exists(path) else None
    m.analyzer_ = m._analyzer() if lazy else m.bertopic_.analyzer
    m.procedural_topic_ = meta["procedural_topic"]
    m.labels_ = {int(k): v for k, v in meta["labels"].items()}
    m.centroid_ids_ = np.array(meta["centroid_ids"], dtype=int)
    m.centroids_ = np.load(path / "centroids.npy")
    m.n_outliers_before_ = meta.get("n_outliers_before", 0)
    m.reference_ = meta.get("reference") or {"similarity_p05": 0.0, "outlier_share_substantive": 0.0}
    m.topics_ = None if lazy else m.bertopic_.fitted_topics
    if m.terms_ is None:  # saved before topic_terms.npz existed
        m.terms_ = m.bertopic_.topic_terms()
    m.hierarchy_ = None
    if (path / "hierarchy.parquet").exists():
        import pandas as pd

        m.hierarchy_ = pd.read_parquet(path / "hierarchy.parquet")
    m.fit_features_ = m.fit_labels_ = None
    if (path / "fit_features.npy").exists() and (path / "fit_labels.npy").exists():
        m.fit_features_, m.fit_labels_ = np.load(path / "fit_features.npy"), np.load(path / "fit_labels.npy")
    m.term_features_ = None
    if (path / "term_features.pkl").exists():
        m.term_features_ = pickle.loads((path / "term_features.pkl").read_bytes())
    return m
