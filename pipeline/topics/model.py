"""BERTopic for Japanese minutes: the pieces and :class:`PolicyTopicModel` (heavy imports here).

What makes BERTopic usable on Japanese minutes (see README "Topics and embeddings"):

* documents are embedded by our own backend (USE multilingual by default), wrapped
  as a BERTopic backend (:class:`BackendEmbedder`) so KeyBERTInspired can embed
  candidate words and ``transform`` works offline after reload;
* the c-TF-IDF vocabulary is the parse stage's content terms (compounds whole,
  boilerplate stop-listed), looked up per sentence by :class:`TermAnalyzer`; no
  re-tokenising, and unseen text falls back to the parse stage's extractor;
* procedural sentences (page turning, turn-taking, greetings) are detected by a
  documented rule (:func:`procedural_mask`) and form their own topic
  (:class:`ProceduralAwareClusterer`), so they never drown substantive topics;
* each sentence's embedding is mixed with its neighbours in the same utterance
  (``context_window`` / ``context_weight``) before UMAP: a sentence in the minutes
  continues its speaker's point, and alone it is often too short to place;
* outliers (HDBSCAN) are re-assigned to the nearest substantive topic centroid
  and the topic words are recomputed afterwards (``update_topics``).
"""
from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bertopic.backend import BaseEmbedder
from sklearn.base import BaseEstimator, ClusterMixin

from pipeline.labels import text_key

log = logging.getLogger("policy_topics.topics")

PROCEDURAL_LABEL = "議事進行・挨拶"
OUTLIER_LABEL = "未分類"


norm_text = text_key  # one key for sentences, labels and BERTopic documents


# --------------------------------------------------------------------------- embeddings

class BackendEmbedder(BaseEmbedder):
    """BERTopic backend around :func:`pipeline.embed.get_backend` (pickles without weights)."""

    def __init__(self, backend: str = "use_multilingual", **backend_kw: Any):
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


# --------------------------------------------------------------------------- terms

def _fallback_extractor():
    """Term function for unseen text: the parse stage's own (lazy import: GiNZA loads only when
    ``transform`` meets new text; any length). Returns ``list[str] -> list[list[str]]``."""
    from pipeline.parse import terms_for_texts  # noqa: PLC0415

    return terms_for_texts


class TermAnalyzer:
    """``CountVectorizer(analyzer=...)`` callable: document text -> its precomputed content terms.

    ``lookup`` maps :func:`norm_text` of each known sentence to its terms (from the
    parse stage). Unknown text (``transform`` on new sentences) goes through the
    parse stage's extractor. ``stopwords`` are removed in both cases.
    """

    def __init__(self, lookup: dict[str, list[str]] | None = None, stopwords: Sequence[str] = (),
                 drop_pattern: str | None = None):
        self.lookup = dict(lookup or {})
        self.stopwords = frozenset(stopwords)
        self.drop_pattern = drop_pattern

    def keep(self, term: str) -> bool:
        if not term or term in self.stopwords:
            return False
        if self.drop_pattern:
            if "_drop_re" not in self.__dict__:
                self._drop_re = re.compile(self.drop_pattern)
            if self._drop_re.search(term):
                return False
        return True

    def terms(self, doc: str) -> list[str]:
        """Terms of one document. BERTopic joins a topic's documents with a space before
        c-TF-IDF; documents handed to BERTopic are :func:`norm_text` keys (no whitespace), so
        a joined document splits back into known sentences."""
        doc = str(doc or "")
        key = norm_text(doc)
        terms = self.lookup.get(key)
        if terms is None:
            pieces = [p for p in doc.split(" ") if p] if " " in doc.strip() else [doc]
            if len(pieces) > 1 and all(norm_text(p) in self.lookup for p in pieces):
                terms = [t for p in pieces for t in self.lookup[norm_text(p)]]
            elif len(pieces) > 1:
                terms = [t for ts in self.terms_many(pieces, raw=True) for t in ts]
            elif not key:
                terms = []
            else:
                res = _fallback_extractor()([doc])
                terms = list(res[0]) if res else []
        return [t for t in terms if self.keep(t)]

    def terms_many(self, docs: Sequence[str], raw: bool = False) -> list[list[str]]:
        """Terms of many documents; unknown ones go through the extractor in one batch."""
        docs = [str(d or "") for d in docs]
        unknown = sorted({d for d in docs if d.strip() and norm_text(d) not in self.lookup})
        if unknown:
            extra = dict(zip((norm_text(d) for d in unknown), _fallback_extractor()(unknown)))
        else:
            extra = {}
        out = []
        for d in docs:
            k = norm_text(d)
            ts = self.lookup.get(k, extra.get(k, []))
            out.append(list(ts) if raw else [t for t in ts if self.keep(t)])
        return out

    def __call__(self, doc: str) -> list[str]:
        return self.terms(doc)


# --------------------------------------------------------------------------- procedural rule

def procedural_mask(texts: Sequence[str], terms: Sequence[Sequence[str]], *, min_terms: int = 2,
                    max_chars: int = 45, cues: Sequence[str] = ()) -> np.ndarray:
    """The documented procedural rule: True where a sentence is meeting management, not policy.

    A sentence is procedural when it has fewer than ``min_terms`` content terms
    (after the boilerplate stop list: "ありがとうございます", "以上です", "次をお願いします"),
    or when it is short (<= ``max_chars`` characters) and contains a procedural cue
    ("ページ", "御覧", "御発言", "議題", ... — params.yaml ``topics.procedural.cues``).
    """
    pattern = re.compile("|".join(re.escape(c) for c in cues)) if cues else None
    out = np.zeros(len(texts), dtype=bool)
    for i, (t, ts) in enumerate(zip(texts, terms)):
        t = unicodedata.normalize("NFKC", str(t or "")).strip()
        if len(ts) < min_terms:
            out[i] = True
        elif pattern is not None and len(t) <= max_chars and pattern.search(t):
            out[i] = True
    return out


# --------------------------------------------------------------------------- context

def context_embeddings(X: np.ndarray, groups: Sequence[Any], mask: np.ndarray | None = None,
                       window: int = 1, weight: float = 0.5) -> np.ndarray:
    """x_i + weight * mean(neighbours within ``window`` rows in the same group, not masked), re-normalised.

    Rows must be in document order (sentences.parquet order). ``weight=0`` returns X normalised.
    """
    X = np.asarray(X, dtype=np.float32)
    Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    if not weight or not window or len(X) == 0:
        return Xn
    groups = np.asarray(list(groups), dtype=object)
    mask = np.zeros(len(X), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    Y = Xn.copy()
    n = len(X)
    for i in range(n):
        nb = [j for j in range(max(0, i - window), min(n, i + window + 1))
              if j != i and groups[j] == groups[i] and not mask[j]]
        if nb:
            Y[i] = Xn[i] + weight * Xn[nb].mean(axis=0)
    return (Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------- term features

def _identity(x):
    return x


class TermFeatures:
    """Optional lexical view: TF-IDF over content terms -> truncated SVD, L2-normalised.

    Concatenated (times ``weight``) to the sentence embeddings before UMAP when
    ``topics.term_features.weight`` > 0: sentence encoders blur domain compounds
    (CYDER, 公設光ファイバ) that decide a policy theme.
    """

    def __init__(self, dims: int = 100, min_df: int = 2, random_state: int = 42):
        self.dims = dims
        self.min_df = min_df
        self.random_state = random_state

    def fit_transform(self, terms: Sequence[Sequence[str]]) -> np.ndarray:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        docs = [list(t) for t in terms]
        try:
            self.tfidf_ = TfidfVectorizer(analyzer=_identity, min_df=self.min_df, sublinear_tf=True, lowercase=False)
            M = self.tfidf_.fit_transform(docs)
        except ValueError:  # tiny corpus: no term in min_df documents
            self.tfidf_ = TfidfVectorizer(analyzer=_identity, min_df=1, sublinear_tf=True, lowercase=False)
            M = self.tfidf_.fit_transform(docs + [["<empty>"]])[:-1]
        k = min(int(self.dims), M.shape[1] - 1, M.shape[0] - 1)
        if k < 1:  # too few terms or documents for a lexical view
            self.svd_ = None
            return np.zeros((M.shape[0], 1), dtype=np.float32)
        self.svd_ = TruncatedSVD(n_components=k, random_state=self.random_state).fit(M)
        return self._norm(self.svd_.transform(M))

    def transform(self, terms: Sequence[Sequence[str]]) -> np.ndarray:
        if self.svd_ is None:
            return np.zeros((len(terms), 1), dtype=np.float32)
        return self._norm(self.svd_.transform(self.tfidf_.transform([list(t) for t in terms])))

    @staticmethod
    def _norm(X: np.ndarray) -> np.ndarray:
        return (X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------- clustering

def auto_n_clusters(n: int, lo: int = 2, hi: int = 60) -> int:
    """k for k-means when ``n_clusters: auto``: sqrt(n/2) clipped to [lo, hi] (13 for one meeting)."""
    return int(np.clip(round(np.sqrt(max(n, 1) / 2.0)), lo, max(lo, min(hi, n - 1 if n > 2 else lo))))


def auto_min_cluster_size(n: int) -> int:
    """HDBSCAN min_cluster_size when ``auto``: 1 % of the sentences, between 5 and 100."""
    return int(np.clip(round(0.01 * n), 5, 100))


class ProceduralAwareClusterer(BaseEstimator, ClusterMixin):
    """Clusters substantive points with k-means or HDBSCAN; procedural points form cluster 0.

    The procedural flags are set by :class:`PolicyTopicModel` on ``procedural_mask``
    before BERTopic calls ``fit`` (BERTopic passes only reduced embeddings) and
    cleared afterwards. ``predict`` never returns the procedural cluster: new text
    is routed there by the rule, not by geometry.
    """

    def __init__(self, method: str = "kmeans", n_clusters: int | str = "auto",
                 min_cluster_size: int | str = "auto", min_samples: int | None = None,
                 cluster_selection_method: str = "eom", random_state: int = 42):
        self.method = method
        self.n_clusters = n_clusters
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.random_state = random_state

    def fit(self, X, y=None):
        X = np.asarray(X)
        mask = getattr(self, "procedural_mask", None)
        mask = np.zeros(len(X), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if len(mask) != len(X):
            raise ValueError(f"procedural mask has {len(mask)} rows, embeddings {len(X)}")
        sub = X[~mask]
        self.offset_ = 1 if mask.any() else 0
        self.fallback_ = None
        labels = np.full(len(X), -1, dtype=int)
        if len(sub) == 0:
            self.base_ = None
        elif self.method == "kmeans":
            from sklearn.cluster import KMeans

            k = auto_n_clusters(len(sub)) if self.n_clusters in (None, "auto") else int(self.n_clusters)
            k = max(1, min(k, len(sub)))
            self.base_ = KMeans(n_clusters=k, n_init=10, random_state=self.random_state).fit(sub)
            labels[~mask] = self.base_.labels_ + self.offset_
        elif self.method == "hdbscan":
            from hdbscan import HDBSCAN

            mcs = (auto_min_cluster_size(len(sub)) if self.min_cluster_size in (None, "auto")
                   else int(self.min_cluster_size))
            self.base_ = HDBSCAN(min_cluster_size=max(2, min(mcs, len(sub))), min_samples=self.min_samples,
                                 cluster_selection_method=self.cluster_selection_method,
                                 prediction_data=True).fit(sub)
            lab = self.base_.labels_
            if (lab < 0).all() and len(sub) >= 4:  # tiny input: no dense cluster -> k-means fallback
                from sklearn.cluster import KMeans

                log.info("hdbscan found no cluster in %d points; falling back to k-means", len(sub))
                self.base_ = KMeans(n_clusters=auto_n_clusters(len(sub)), n_init=10,
                                    random_state=self.random_state).fit(sub)
                self.fallback_ = "kmeans"
                lab = self.base_.labels_
            labels[~mask] = np.where(lab >= 0, lab + self.offset_, -1)
        else:
            raise ValueError(f"clustering method must be kmeans or hdbscan, got {self.method!r}")
        if self.offset_:
            labels[mask] = 0
        self.labels_ = labels
        self.procedural_mask = None
        return self

    def predict(self, X):
        X = np.asarray(X)
        if getattr(self, "base_", None) is None:
            return np.full(len(X), -1, dtype=int)
        if self.method == "kmeans" or getattr(self, "fallback_", None) == "kmeans":
            lab = self.base_.predict(X)
        else:
            from hdbscan import approximate_predict

            lab, _ = approximate_predict(self.base_, X)
        return np.where(lab >= 0, lab + self.offset_, -1).astype(int)


# --------------------------------------------------------------------------- the model

def short_label(words: Sequence[str], n: int = 3, max_chars: int = 12) -> str:
    """First ``n`` top terms of at most ``max_chars`` characters, skipping terms nested in a chosen one."""
    chosen: list[str] = []
    for pool in ([w for w in words if len(w) <= max_chars], list(words)):
        for w in pool:
            if len(chosen) >= n:
                break
            if w and not any(w in c or c in w for c in chosen):
                chosen.append(w)
        if chosen:
            break
    return "・".join(chosen)


def _softmax_rows(S: np.ndarray, temperature: float) -> np.ndarray:
    Z = (S - S.max(axis=1, keepdims=True)) / max(temperature, 1e-6)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


class PolicyTopicModel:
    """BERTopic configured for Japanese minutes, plus the procedural rule and outlier handling.

    ``fit(texts, embeddings, terms, groups)`` / ``transform(texts)``; ``save(dir)`` /
    :func:`load_topic_model`. ``params`` is the params.yaml ``topics`` section.
    """

    def __init__(self, params: dict | None = None, stopwords: Sequence[str] = (),
                 backend: str = "use_multilingual", backend_kw: dict | None = None):
        self.params = dict(params or {})
        self.stopwords = list(stopwords)
        self.backend = backend
        self.backend_kw = dict(backend_kw or {})

    # ---------------------------------------------------------------- params
    def _p(self, *keys, default=None):
        d: Any = self.params
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return default
            d = d[k]
        return d

    @property
    def seed(self) -> int:
        return int(self._p("seed", default=42))

    def _procedural(self, texts, terms) -> np.ndarray:
        if not self._p("procedural", "enabled", default=True):
            return np.zeros(len(texts), dtype=bool)
        return procedural_mask(texts, terms, min_terms=int(self._p("procedural", "min_terms", default=2)),
                               max_chars=int(self._p("procedural", "max_chars", default=45)),
                               cues=self._p("procedural", "cues", default=()) or ())

    def _representation(self):
        from bertopic.representation import KeyBERTInspired, MaximalMarginalRelevance

        chain = []
        for name in self._p("representation", "models", default=["keybert", "mmr"]) or []:
            if name == "keybert":
                chain.append(KeyBERTInspired(top_n_words=int(self._p("top_n_words", default=10)),
                                             nr_repr_docs=int(self._p("representation", "nr_repr_docs", default=5)),
                                             nr_candidate_words=int(self._p("representation", "nr_candidate_words",
                                                                            default=30)),
                                             random_state=self.seed))
            elif name == "mmr":
                chain.append(MaximalMarginalRelevance(diversity=float(self._p("representation", "mmr_diversity",
                                                                              default=0.3)),
                                                      top_n_words=int(self._p("top_n_words", default=10))))
            else:
                raise ValueError(f"unknown representation model {name!r} (keybert | mmr)")
        return chain or None

    def _analyzer(self, lookup: dict[str, list[str]] | None = None) -> TermAnalyzer:
        suffixes = self._p("name_suffixes", default=()) or ()
        pattern = "(?:" + "|".join(re.escape(x) for x in suffixes) + ")$" if suffixes else None
        return TermAnalyzer(lookup, self.stopwords, pattern)

    def _build(self, n_docs: int, lookup: dict[str, list[str]]):
        from bertopic import BERTopic
        from bertopic.vectorizers import ClassTfidfTransformer
        from sklearn.feature_extraction.text import CountVectorizer
        from umap import UMAP

        self.analyzer_ = self._analyzer(lookup)
        nn = int(self._p("umap", "n_neighbors", default=15))
        nc = int(self._p("umap", "n_components", default=5))
        nn = max(2, min(nn, n_docs - 1))
        nc = max(2, min(nc, n_docs - 2))
        umap_model = UMAP(n_neighbors=nn, n_components=nc, min_dist=float(self._p("umap", "min_dist", default=0.0)),
                          metric=self._p("umap", "metric", default="cosine"), random_state=self.seed,
                          low_memory=True)
        clusterer = ProceduralAwareClusterer(
            method=self._p("clustering", "method", default="kmeans"),
            n_clusters=self._p("clustering", "n_clusters", default="auto"),
            min_cluster_size=self._p("clustering", "min_cluster_size", default="auto"),
            min_samples=self._p("clustering", "min_samples", default=None),
            cluster_selection_method=self._p("clustering", "cluster_selection_method", default="eom"),
            random_state=self.seed)
        self.vectorizer_ = CountVectorizer(analyzer=self.analyzer_, min_df=int(self._p("min_df", default=1)),
                                           lowercase=False)
        self.ctfidf_ = ClassTfidfTransformer(reduce_frequent_words=True)
        model = BERTopic(embedding_model=BackendEmbedder(self.backend, **self.backend_kw), umap_model=umap_model,
                         hdbscan_model=clusterer, vectorizer_model=self.vectorizer_, ctfidf_model=self.ctfidf_,
                         representation_model=None,  # applied once, on the final assignment (fit)
                         top_n_words=int(self._p("top_n_words", default=10)), calculate_probabilities=False,
                         verbose=False)
        return model, clusterer

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
            raise ValueError(f"too few sentences to fit topics ({len(idx)})")
        lookup: dict[str, list[str]] = {}
        for t, ts in zip(texts, terms):
            lookup.setdefault(norm_text(t), ts)
        keep = self._analyzer().keep
        clean_terms = [[x for x in ts if keep(x)] for ts in terms]
        proc = self._procedural(texts, clean_terms)
        C = context_embeddings(E, groups, proc, window=int(self._p("context", "window", default=1)),
                               weight=float(self._p("context", "weight", default=0.5)))
        tw = float(self._p("term_features", "weight", default=0.0) or 0.0)
        self.term_features_ = None
        if tw > 0:
            self.term_features_ = TermFeatures(dims=int(self._p("term_features", "dims", default=100)),
                                               min_df=int(self._p("term_features", "min_df", default=2)),
                                               random_state=self.seed)
            T = self.term_features_.fit_transform(clean_terms)
            T = context_embeddings(T, groups, proc, window=int(self._p("context", "window", default=1)),
                                   weight=float(self._p("context", "weight", default=0.5)))
            C = np.hstack([C, tw * T]).astype(np.float32)
        model, clusterer = self._build(len(idx), lookup)
        clusterer.procedural_mask = proc[idx]
        docs = [norm_text(t) for t in texts]  # BERTopic documents: whitespace-free keys (see TermAnalyzer)
        docs_fit = [docs[i] for i in idx]
        topics_fit, _ = model.fit_transform(docs_fit, C[idx])
        topics = np.full(n, -1, dtype=int)
        topics[idx] = topics_fit
        pt = [t for t, p in zip(topics_fit, proc[idx]) if p]
        self.procedural_topic_ = int(max(set(pt), key=pt.count)) if pt else None
        self.model_ = model
        rest = np.setdiff1d(np.arange(n), idx)
        if len(rest):
            topics[rest] = self._predict_geometry(C[rest], proc[rest])
        topics[proc] = self.procedural_topic_ if self.procedural_topic_ is not None else -1
        # outlier handling, then topic words recomputed on the final assignment
        self.n_outliers_before_ = int((topics == -1).sum())
        self._set_centroids(C, topics)
        topics = self._reduce_outliers(C, topics, proc, texts)
        # topic words (c-TF-IDF + KeyBERTInspired/MMR) computed once, on the final assignment
        bt_log = logging.getLogger("BERTopic")
        level = bt_log.level
        bt_log.setLevel(logging.ERROR)  # its "custom list of topic assignments" warning is expected here
        try:
            model.update_topics(docs, topics=topics.tolist(), vectorizer_model=self.vectorizer_,
                                ctfidf_model=self.ctfidf_, representation_model=self._representation(),
                                top_n_words=int(self._p("top_n_words", default=10)))
        finally:
            bt_log.setLevel(level)
        self._set_centroids(C, topics)
        self.topics_ = topics
        self.probs_ = self._probabilities(C, topics, proc)
        self.procedural_ = proc
        self.labels_ = self._make_labels()
        model.set_topic_labels({k: v for k, v in self.labels_.items()})
        return self

    def _set_centroids(self, C: np.ndarray, topics: np.ndarray) -> None:
        ids = sorted(int(t) for t in set(topics.tolist()) if t != -1)
        cents = []
        for t in ids:
            c = C[topics == t].mean(axis=0)
            cents.append(c / max(np.linalg.norm(c), 1e-12))
        self.centroid_ids_ = np.array(ids, dtype=int)
        self.centroids_ = np.vstack(cents).astype(np.float32) if cents else np.zeros((0, C.shape[1]), np.float32)

    def _substantive_cols(self) -> np.ndarray:
        return np.array([i for i, t in enumerate(self.centroid_ids_) if t != self.procedural_topic_], dtype=int)

    def _reduce_outliers(self, C, topics, proc, texts):
        """Re-assign outliers (not procedural) to the most similar substantive topic (>= threshold)."""
        strategy = self._p("outliers", "strategy", default="embeddings")
        if strategy in (None, "none", False) or not (topics == -1).any():
            return topics
        cols = self._substantive_cols()
        if not len(cols):
            return topics
        threshold = float(self._p("outliers", "threshold", default=0.0))
        out = topics.copy()
        todo = np.where((topics == -1) & ~proc)[0]
        if not len(todo):
            return out
        if strategy == "embeddings":
            S = C[todo] @ self.centroids_[cols].T
        elif strategy == "c-tf-idf":
            from sklearn.preprocessing import normalize

            bow = self.model_.vectorizer_model.transform([texts[i] for i in todo])
            D = normalize(self.model_.ctfidf_model.transform(bow))
            T = normalize(self.model_.c_tf_idf_)
            rows = [int(t) + self.model_._outliers for t in self.centroid_ids_[cols]]
            S = (D @ T[rows].T).toarray()
        else:
            raise ValueError(f"outliers.strategy must be embeddings | c-tf-idf | none, got {strategy!r}")
        best = S.argmax(axis=1)
        ok = S[np.arange(len(todo)), best] >= threshold
        out[todo[ok]] = self.centroid_ids_[cols][best[ok]]
        return out

    def _probabilities(self, C, topics, proc) -> np.ndarray:
        if not len(self.centroid_ids_):
            return np.zeros(len(topics), dtype=np.float32)
        P = _softmax_rows(C @ self.centroids_.T, float(self._p("prob_temperature", default=0.05)))
        pos = {t: i for i, t in enumerate(self.centroid_ids_)}
        probs = np.array([P[i, pos[t]] if t in pos else P[i].max() for i, t in enumerate(topics)],
                         dtype=np.float32)
        probs[proc] = 1.0
        return probs

    def _predict_geometry(self, C: np.ndarray, proc: np.ndarray) -> np.ndarray:
        umap_emb = self.model_.umap_model.transform(C)
        pred = self.model_.hdbscan_model.predict(umap_emb)
        topics = np.array(self.model_._map_predictions(pred), dtype=int)
        if self.procedural_topic_ is not None:
            topics[proc] = self.procedural_topic_
        return topics

    # ---------------------------------------------------------------- labels / words
    def topic_words(self, topic: int) -> list[tuple[str, float]]:
        words = self.model_.get_topic(topic) or []
        return [(w, float(s)) for w, s in words if w]

    def ctfidf_words(self, topic: int, n: int = 10) -> list[tuple[str, float]]:
        """Plain c-TF-IDF top terms (before KeyBERT/MMR re-ranking)."""
        row = topic + self.model_._outliers
        if row < 0 or row >= self.model_.c_tf_idf_.shape[0]:
            return []
        vocab = self.model_.vectorizer_model.get_feature_names_out()
        vals = self.model_.c_tf_idf_[row].toarray().ravel()
        top = np.argsort(-vals)[:n]
        return [(str(vocab[i]), float(vals[i])) for i in top if vals[i] > 0]

    def _make_labels(self) -> dict[int, str]:
        n = int(self._p("label_terms", default=3))
        labels = {}
        for t in sorted(set(self.topics_.tolist())):
            if t == -1:
                labels[t] = OUTLIER_LABEL
            elif t == self.procedural_topic_:
                labels[t] = PROCEDURAL_LABEL
            else:
                labels[t] = short_label([w for w, _ in self.topic_words(t)], n,
                                        int(self._p("label_max_chars", default=12))) or f"topic {t}"
        return labels

    # ---------------------------------------------------------------- transform
    def transform(self, texts: Sequence[str], embeddings: np.ndarray | None = None,
                  terms: Sequence[Sequence[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """New sentences -> (topic_ids, probabilities); embeds with the saved backend if needed."""
        texts = [str(t or "") for t in texts]
        if not texts:
            return np.zeros(0, dtype=int), np.zeros(0, dtype=np.float32)
        E = (self.model_.embedding_model.embed(texts) if embeddings is None
             else np.asarray(embeddings, dtype=np.float32))
        C = context_embeddings(E, list(range(len(texts))), weight=0)
        if terms is None:
            terms = self.analyzer_.terms_many(texts)
        clean_terms = [[x for x in ts if self.analyzer_.keep(x)] for ts in terms]
        proc = self._procedural(texts, clean_terms)
        if getattr(self, "term_features_", None) is not None:
            tw = float(self._p("term_features", "weight", default=0.0))
            C = np.hstack([C, tw * self.term_features_.transform(clean_terms)]).astype(np.float32)
        topics = np.full(len(texts), -1, dtype=int)
        sub = np.where(~proc)[0]
        if len(sub):
            topics[sub] = self._predict_geometry(C[sub], np.zeros(len(sub), dtype=bool))
        if self.procedural_topic_ is not None:
            topics[proc] = self.procedural_topic_
        topics = self._reduce_outliers(C, topics, proc, texts)
        return topics, self._probabilities(C, topics, proc)

    def label(self, topic: int) -> str:
        return self.labels_.get(int(topic), f"topic {topic}")

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Directory with ``bertopic.pkl`` (BERTopic.save, pickle) and ``policy_topics.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        bt_log = logging.getLogger("BERTopic")
        level = bt_log.level
        bt_log.setLevel(logging.ERROR)  # pickle caveat (same environment to reload) is documented in README
        try:
            self.model_.save(str(path / "bertopic.pkl"), serialization="pickle", save_embedding_model=True)
        finally:
            bt_log.setLevel(level)
        meta = {
            "params": self.params, "stopwords": self.stopwords, "backend": self.backend,
            "backend_kw": self.backend_kw, "procedural_topic": self.procedural_topic_,
            "labels": {str(k): v for k, v in self.labels_.items()},
            "centroid_ids": self.centroid_ids_.tolist(),
            "n_outliers_before": self.n_outliers_before_,
        }
        (path / "policy_topics.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        np.save(path / "centroids.npy", self.centroids_)
        if getattr(self, "term_features_", None) is not None:
            import pickle

            (path / "term_features.pkl").write_bytes(pickle.dumps(self.term_features_))
        return path


def load_topic_model(path: str | Path) -> PolicyTopicModel:
    """Reload a model saved by :meth:`PolicyTopicModel.save`; ``transform`` works offline."""
    from bertopic import BERTopic

    from pipeline.errors import PipelineError

    path = Path(path)
    meta_p, model_p = path / "policy_topics.json", path / "bertopic.pkl"
    if not meta_p.exists() or not model_p.exists():
        raise PipelineError(path, "not a saved topic model (policy_topics.json / bertopic.pkl missing)")
    meta = json.loads(meta_p.read_text(encoding="utf-8"))
    m = PolicyTopicModel(meta["params"], meta["stopwords"], meta["backend"], meta["backend_kw"])
    m.model_ = BERTopic.load(str(model_p))
    if not isinstance(m.model_.embedding_model, BackendEmbedder):
        m.model_.embedding_model = BackendEmbedder(meta["backend"], **meta["backend_kw"])
    m.analyzer_ = m.model_.vectorizer_model.analyzer
    m.vectorizer_ = m.model_.vectorizer_model
    m.ctfidf_ = m.model_.ctfidf_model
    m.procedural_topic_ = meta["procedural_topic"]
    m.labels_ = {int(k): v for k, v in meta["labels"].items()}
    m.centroid_ids_ = np.array(meta["centroid_ids"], dtype=int)
    m.centroids_ = np.load(path / "centroids.npy")
    m.n_outliers_before_ = meta.get("n_outliers_before", 0)
    m.topics_ = np.array(m.model_.topics_, dtype=int)
    m.term_features_ = None
    if (path / "term_features.pkl").exists():
        import pickle

        m.term_features_ = pickle.loads((path / "term_features.pkl").read_bytes())
    return m
