"""The one place that talks to BERTopic (0.17.4, locked): everything else in ``pipeline.topics``
goes through :class:`BERTopicAdapter` and never imports ``bertopic``.

Public BERTopic API used: ``BERTopic(...)``, ``fit_transform``, ``transform``, ``update_topics``,
``set_topic_labels``, ``get_topic``, ``get_topics``, ``topics_over_time(topics=...)``,
``hierarchical_topics``, ``save(serialization="pickle")`` / ``BERTopic.load``, and the documented
fitted attributes ``c_tf_idf_``, ``topics_``, ``vectorizer_model``, ``ctfidf_model``,
``embedding_model``, ``representation_model``. No private name of BERTopic is used (a test greps
for them); ``tests/test_topics_adapter.py`` pins the behaviour relied on here:

* an ``embedding_model`` given to the constructor switches off BERTopic's English-only text
  cleaning (``language=None``), so Japanese documents reach our analyzer intact;
* ``transform`` with precomputed embeddings = ``umap_model.transform`` -> ``hdbscan_model.predict``
  -> the fit's topic-id mapping (topics are renumbered by size after ``fit``);
* ``update_topics(docs, topics=...)`` recomputes c-TF-IDF and representations on a custom assignment;
* rows of ``c_tf_idf_`` follow ``sorted(get_topics())`` (topic -1 first when present).
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bertopic import BERTopic
from bertopic import __version__ as BERTOPIC_VERSION  # noqa: N812
from bertopic.backend import BaseEmbedder
from bertopic.representation import KeyBERTInspired, MaximalMarginalRelevance
from bertopic.vectorizers import ClassTfidfTransformer

from pipeline.settings import default
from pipeline.topics.ctfidf import top_words

__all__ = ["BERTOPIC_VERSION", "BERTopicAdapter", "BackendEmbedder", "representation_chain"]


@contextlib.contextmanager
def _bertopic_log(level: int = logging.ERROR) -> Iterator[None]:
    """Silence BERTopic's expected warnings (custom topic assignment; pickle caveat, see README)."""
    bt_log = logging.getLogger("BERTopic")
    saved = bt_log.level
    bt_log.setLevel(level)
    try:
        yield
    finally:
        bt_log.setLevel(saved)


class BackendEmbedder(BaseEmbedder):
    """BERTopic backend around :func:`pipeline.embed.get_backend` (pickles without weights)."""

    def __init__(self, backend: str = default("embed.backend"), **backend_kw: Any):
        super().__init__()
        self.backend = backend
        self.backend_kw = dict(backend_kw)
        self._model = None

    def _get(self):
        if self._model is None:
            from pipeline.embed import get_backend

            self._model = get_backend(self.backend, **self.backend_kw)
        return self._model

    def embed(self, documents: list[str], verbose: bool = False) -> np.ndarray:
        return self._get().encode(list(documents))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_model"] = None
        return state


def representation_chain(names: Sequence[str], *, top_n_words: int, nr_repr_docs: int, nr_candidate_words: int,
                         mmr_diversity: float, seed: int) -> list | None:
    """KeyBERTInspired and/or MMR, in the order given (``topics.representation.models``)."""
    chain = []
    for name in names or []:
        if name == "keybert":
            chain.append(KeyBERTInspired(top_n_words=top_n_words, nr_repr_docs=nr_repr_docs,
                                         nr_candidate_words=nr_candidate_words, random_state=seed))
        elif name == "mmr":
            chain.append(MaximalMarginalRelevance(diversity=mmr_diversity, top_n_words=top_n_words))
        else:
            raise ValueError(f"unknown representation model {name!r} (keybert | mmr)")
    return chain or None


def terms_of(words) -> list[str]:
    """BERTopic's "a, b, c" word strings -> list of words."""
    if isinstance(words, str):
        return [w.strip() for w in words.split(",") if w.strip()]
    return list(words or [])


class BERTopicAdapter:
    """A fitted (or to-be-fitted) BERTopic model seen through the operations the pipeline needs.

    Documents handed to BERTopic are whitespace-free text keys (see ``terms.TermAnalyzer``):
    BERTopic joins a topic's documents with a space before c-TF-IDF.
    """

    def __init__(self, model: BERTopic):
        self.model = model

    # ------------------------------------------------------------------ construction / fit
    @classmethod
    def build(cls, *, embedder: BackendEmbedder, umap_model, cluster_model, vectorizer, top_n_words: int
              ) -> BERTopicAdapter:
        """BERTopic over our own sub-models; representations are applied once, on the final assignment."""
        ctfidf = ClassTfidfTransformer(reduce_frequent_words=True)
        return cls(BERTopic(embedding_model=embedder, umap_model=umap_model, hdbscan_model=cluster_model,
                            vectorizer_model=vectorizer, ctfidf_model=ctfidf, representation_model=None,
                            top_n_words=top_n_words, calculate_probabilities=False, verbose=False))

    def fit(self, docs: list[str], X: np.ndarray) -> np.ndarray:
        """UMAP + clustering + c-TF-IDF on ``docs`` with precomputed features ``X``; topic ids by size."""
        topics, _ = self.model.fit_transform(docs, np.asarray(X))
        return np.asarray(topics, dtype=int)

    def predict(self, docs: list[str], X: np.ndarray) -> np.ndarray:
        """Topic ids of new documents from their features (UMAP transform + cluster model predict)."""
        if not len(docs):
            return np.zeros(0, dtype=int)
        topics, _ = self.model.transform(list(docs), embeddings=np.asarray(X))
        return np.asarray(topics, dtype=int)

    def set_assignment(self, docs: list[str], topics: Sequence[int], representation: list | None,
                       top_n_words: int) -> pd.DataFrame | None:
        """Final topic of every document -> c-TF-IDF and topic words (KeyBERT/MMR) recomputed on it,
        then the topic hierarchy (``hierarchical_topics``, names re-ranked like the topic words;
        None under 3 topics).

        Afterwards ``representation_model`` is left empty: per-class / per-time words are plain
        c-TF-IDF (re-ranking would re-embed candidate words for every class x topic)."""
        from pipeline.io import QUIET

        with _bertopic_log():  # its "custom list of topic assignments" warning is expected here
            self.model.update_topics(docs, topics=[int(t) for t in topics], top_n_words=top_n_words,
                                     vectorizer_model=self.model.vectorizer_model,
                                     ctfidf_model=self.model.ctfidf_model, representation_model=representation)
        hierarchy = None
        if len({int(t) for t in topics} - {-1}) >= 3:
            sink = contextlib.redirect_stderr(io.StringIO()) if QUIET else contextlib.nullcontext()
            with sink:  # its progress bar, hidden under --quiet
                hierarchy = self.model.hierarchical_topics(list(docs))
        self.model.representation_model = None
        return hierarchy

    def set_labels(self, labels: dict[int, str]) -> None:
        self.model.set_topic_labels({int(k): v for k, v in labels.items()})

    # ------------------------------------------------------------------ read access
    @property
    def analyzer(self):
        return self.model.vectorizer_model.analyzer

    @property
    def fitted_topics(self) -> np.ndarray:
        """Final topic of each document the model was fitted on (``topics_``)."""
        return np.asarray(self.model.topics_, dtype=int)

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.embedding_model.embed(list(texts)), dtype=np.float32)

    def topic_words(self, topic: int) -> list[tuple[str, float]]:
        words = self.model.get_topic(int(topic)) or []
        return [(w, float(s)) for w, s in words if w]

    def _rows(self) -> dict[int, int]:
        """Topic id -> row of ``c_tf_idf_`` (rows follow the sorted topic ids)."""
        return {int(t): i for i, t in enumerate(sorted(self.model.get_topics()))}

    def ctfidf_words(self, topic: int, n: int = 10) -> list[tuple[str, float]]:
        """Plain c-TF-IDF top terms of a topic (before KeyBERT/MMR re-ranking)."""
        row = self._rows().get(int(topic))
        if row is None:
            return []
        vocab = self.model.vectorizer_model.get_feature_names_out()
        vals = self.model.c_tf_idf_[row].toarray().ravel()
        top = np.argsort(-vals)[:n]
        return [(str(vocab[i]), float(vals[i])) for i in top if vals[i] > 0]

    def ctfidf_similarity(self, docs: list[str], topics: Sequence[int]) -> np.ndarray:
        """Cosine similarity of each document's c-TF-IDF vector to the given topics' rows."""
        from sklearn.preprocessing import normalize

        rows = self._rows()
        bow = self.model.vectorizer_model.transform(list(docs))
        D = normalize(self.model.ctfidf_model.transform(bow))
        T = normalize(self.model.c_tf_idf_)
        return (D @ T[[rows[int(t)] for t in topics]].T).toarray()

    def topic_terms(self, n_ctfidf: int = 10):
        """What the output tables need from the fitted model, without BERTopic
        (:class:`pipeline.topics.ctfidf.TopicTerms`): words per topic, plain c-TF-IDF words, the
        vocabulary, idf and the l1-normalised global c-TF-IDF rows (``sorted(get_topics())``)."""
        import scipy.sparse as sp
        from sklearn.preprocessing import normalize

        from pipeline.topics.ctfidf import TopicTerms

        ctfidf = self.model.ctfidf_model
        if not getattr(ctfidf, "use_idf", True):  # (bm25 changes the idf only, which is read below)
            raise ValueError("TopicTerms reproduces ClassTfidfTransformer with idf on only")
        vocab = self.model.vectorizer_model.get_feature_names_out()
        # idf through the public transform: a row with a single count of term j -> 1 * idf_j
        idf = ctfidf.transform(sp.identity(len(vocab), dtype=np.float64, format="csr")).diagonal()
        topics = sorted(int(t) for t in self.model.get_topics())
        glob = normalize(self.model.c_tf_idf_, axis=1, norm="l1", copy=True).tocsr()
        return TopicTerms(np.asarray(vocab, dtype=str), np.asarray(idf, dtype=np.float64), glob,
                          np.asarray(topics, dtype=int), bool(ctfidf.reduce_frequent_words),
                          int(self.model.top_n_words), {t: self.topic_words(t) for t in topics},
                          {t: self.ctfidf_words(t, n_ctfidf) for t in topics})

    # ------------------------------------------------------------------ tables
    def words_per_class(self, docs: list[str], topics: Sequence[int], classes: Sequence[str],
                        n_words: int = 5) -> pd.DataFrame:
        """BERTopic's ``topics_per_class`` (global tuning, plain c-TF-IDF) for any topic assignment.

        ``topics_per_class`` itself only accepts the fitted ``topics_``; this one takes the
        assignment (fitted + transformed sentences) and uses the fitted vectorizer, c-TF-IDF
        model and ``c_tf_idf_``. Columns Topic, Words, Frequency, Class as in BERTopic."""
        from sklearn.preprocessing import normalize

        frame = pd.DataFrame({"Document": list(docs), "Topic": np.asarray(topics, dtype=int),
                              "Class": list(classes)})
        rows = self._rows()
        glob = normalize(self.model.c_tf_idf_, axis=1, norm="l1", copy=True)
        vocab = self.model.vectorizer_model.get_feature_names_out()
        grouped = frame.groupby(["Class", "Topic"], sort=True).agg(Document=("Document", " ".join),
                                                                   Frequency=("Document", "size")).reset_index()
        grouped = grouped[grouped["Topic"].isin(list(rows))].reset_index(drop=True)
        if grouped.empty:
            return pd.DataFrame(columns=["Topic", "Words", "Frequency", "Class"])
        bow = self.model.vectorizer_model.transform([d if d else "emptydoc" for d in grouped["Document"]])
        local = normalize(self.model.ctfidf_model.transform(bow), axis=1, norm="l1", copy=False)
        tuned = ((glob[[rows[int(t)] for t in grouped["Topic"]]] + local) / 2.0).tocsr()
        words = [", ".join(str(vocab[j]) for j in top_words(tuned, i, max(self.model.top_n_words, 30))[:n_words])
                 for i in range(tuned.shape[0])]
        return pd.DataFrame({"Topic": grouped["Topic"].astype(int), "Words": words,
                             "Frequency": grouped["Frequency"].astype(int), "Class": grouped["Class"]})

    def topics_over_time(self, docs: list[str], topics: Sequence[int], timestamps: list) -> pd.DataFrame:
        """BERTopic ``topics_over_time`` on an explicit assignment (plain c-TF-IDF words)."""
        return self.model.topics_over_time(list(docs), list(timestamps), topics=[int(t) for t in topics])

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Pickle (the only serialization that keeps the UMAP and cluster models ``transform`` needs)."""
        with _bertopic_log():  # pickle caveat (same environment to reload) is documented in README
            self.model.save(str(path), serialization="pickle", save_embedding_model=True)

    @classmethod
    def load(cls, path: str | Path, backend: str, backend_kw: dict) -> BERTopicAdapter:
        model = BERTopic.load(str(path))
        if not isinstance(model.embedding_model, BackendEmbedder):
            model.embedding_model = BackendEmbedder(backend, **backend_kw)
        return cls(model)

