"""The clusterer BERTopic runs on the reduced embeddings: k-means or HDBSCAN on substantive
sentences, procedural sentences (the documented rule) as their own cluster."""
from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from pipeline.settings import default

log = logging.getLogger("policy_topics.topics")


def auto_n_clusters(n: int, lo: int = 2, hi: int = 60) -> int:
    """k for k-means when ``n_clusters: auto``: sqrt(n/2) clipped to [lo, hi] (13 for one meeting)."""
    return int(np.clip(round(np.sqrt(max(n, 1) / 2.0)), lo, max(lo, min(hi, n - 1 if n > 2 else lo))))


def auto_min_cluster_size(n: int) -> int:
    """HDBSCAN min_cluster_size when ``auto``: 1 % of the sentences, between 5 and 100."""
    return int(np.clip(round(0.01 * n), 5, 100))


def max_cluster_size(n: int, share: float | None, min_cluster_size: int) -> int:
    """HDBSCAN ``max_cluster_size`` for a cap of ``share`` of ``n`` points (0 = no cap, hdbscan's default).

    Excess-of-mass selection prefers the most stable clusters, and on a corpus of many meetings the
    most stable one can be the corpus itself: on the full Tokyo corpus (20,005 fit sentences) it chose a
    single cluster of 92 % of the substantive sentences, so the "topics" were one topic. With the cap,
    eom picks the most stable clusters below it (38 there). Never below twice ``min_cluster_size``, so
    a cluster can always be selected."""
    if share is None or share >= 1.0 or n <= 0:
        return 0
    return max(int(np.ceil(share * n)), 2 * int(min_cluster_size))


class ProceduralAwareClusterer(BaseEstimator, ClusterMixin):
    """Clusters substantive points with k-means or HDBSCAN; procedural points form cluster 0.

    ``procedural`` (one flag per row of the ``fit`` data; BERTopic passes the clusterer only
    the reduced embeddings) is a constructor parameter: :class:`PolicyTopicModel` builds one
    clusterer per fit. ``predict`` never returns the procedural cluster: new text is routed
    there by the rule, not by geometry.
    """

    def __init__(self, method: str = default("topics.clustering.method"),
                 n_clusters: int | str = default("topics.clustering.n_clusters"),
                 min_cluster_size: int | str = default("topics.clustering.min_cluster_size"),
                 min_samples: int | None = default("topics.clustering.min_samples"),
                 cluster_selection_method: str = default("topics.clustering.cluster_selection_method"),
                 max_cluster_share: float | None = default("topics.clustering.max_cluster_share"),
                 random_state: int = default("topics.seed"),
                 procedural: np.ndarray | None = None):
        self.procedural = procedural
        self.method = method
        self.n_clusters = n_clusters
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.max_cluster_share = max_cluster_share
        self.random_state = random_state

    def fit(self, X, y=None):
        X = np.asarray(X)
        mask = np.zeros(len(X), dtype=bool) if self.procedural is None else np.asarray(self.procedural, dtype=bool)
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
            mcs = max(2, min(mcs, len(sub)))
            self.base_ = HDBSCAN(min_cluster_size=mcs, min_samples=self.min_samples,
                                 cluster_selection_method=self.cluster_selection_method,
                                 max_cluster_size=max_cluster_size(len(sub), self.max_cluster_share, mcs),
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
