"""Vector geometry of the topic model (numpy only): context mixing, centroids, similarity-based
outlier re-assignment and topic probabilities."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline import vectors
from pipeline.settings import default


def l2_normalize(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32: :func:`pipeline.vectors.l2_normalize`."""
    return vectors.l2_normalize(X)


def context_embeddings(X: np.ndarray, groups: Sequence[Any], mask: np.ndarray | None = None,
                       window: int = default("topics.context.window"),
                       weight: float = default("topics.context.weight")) -> np.ndarray:
    """x_i + weight * mean(neighbours within ``window`` rows in the same group, not masked), re-normalised.

    Rows must be in document order (sentences.parquet order). ``weight=0`` returns X normalised.
    """
    Xn = l2_normalize(X)
    if not weight or not window or len(Xn) == 0:
        return Xn
    groups = np.asarray(list(groups), dtype=object)
    mask = np.zeros(len(Xn), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    Y = Xn.copy()
    n = len(Xn)
    for i in range(n):
        nb = [j for j in range(max(0, i - window), min(n, i + window + 1))
              if j != i and groups[j] == groups[i] and not mask[j]]
        if nb:
            Y[i] = Xn[i] + weight * Xn[nb].mean(axis=0)
    return l2_normalize(Y)


def centroids(C: np.ndarray, topics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(topic ids without -1, unit-length mean vector of each topic's rows)."""
    ids = sorted(int(t) for t in set(np.asarray(topics).tolist()) if t != -1)
    cents = []
    for t in ids:
        c = C[topics == t].mean(axis=0)
        # 1-D norm (BLAS dot), not vectors.l2_normalize's row-wise sum: the two differ in the last
        # float32 bit (8 of 44 centroids of a sample fit), and centroids decide outlier re-assignment
        cents.append(c / max(np.linalg.norm(c), 1e-12))
    return (np.array(ids, dtype=int),
            np.vstack(cents).astype(np.float32) if cents else np.zeros((0, C.shape[1]), np.float32))


def softmax_rows(S: np.ndarray, temperature: float) -> np.ndarray:
    Z = (S - S.max(axis=1, keepdims=True)) / max(temperature, 1e-6)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def topic_probabilities(C: np.ndarray, topics: np.ndarray, proc: np.ndarray, centroid_ids: np.ndarray,
                        cents: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(cosine to the topic centroids / T) at the assigned topic; procedural rows 1.0."""
    if not len(centroid_ids):
        return np.zeros(len(topics), dtype=np.float32)
    P = softmax_rows(C @ cents.T, temperature)
    pos = {t: i for i, t in enumerate(centroid_ids.tolist())}
    probs = np.array([P[i, pos[t]] if t in pos else P[i].max() for i, t in enumerate(topics.tolist())],
                     dtype=np.float32)
    probs[np.asarray(proc, dtype=bool)] = 1.0
    return probs


def reassign(topics: np.ndarray, todo: np.ndarray, S: np.ndarray, candidates: np.ndarray,
             threshold: float) -> np.ndarray:
    """Rows ``todo`` go to the candidate topic of highest similarity ``S`` when it reaches ``threshold``."""
    out = topics.copy()
    if not len(todo) or not len(candidates):
        return out
    best = S.argmax(axis=1)
    ok = S[np.arange(len(todo)), best] >= threshold
    out[todo[ok]] = candidates[best[ok]]
    return out


def knn_vote(Q: np.ndarray, R: np.ndarray, labels: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Label of each row of ``Q``: the similarity-weighted majority label (``-1`` included) of its
    ``k`` most cosine-similar rows of ``R`` (unit-length rows; a tie goes to the nearest neighbour's label).

    How a new sentence is placed without UMAP: ``UMAP.transform`` puts a point at the weighted mean
    of its nearest fitted points in the same feature space, and HDBSCAN's prediction takes the
    cluster (or the noise) around it; the vote over the same neighbours' clusters says the same
    without UMAP's numba compilation (~15 CPU-s per process, most of an incremental run)."""
    Q = np.asarray(Q, dtype=np.float32)
    R = np.asarray(R, dtype=np.float32)
    labels = np.asarray(labels, dtype=int)
    out = np.full(len(Q), -1, dtype=int)
    if not len(Q) or not len(R):
        return out
    k = max(1, min(int(k), len(R)))
    uniq, inv = np.unique(labels, return_inverse=True)
    for s in range(0, len(Q), chunk):
        S = Q[s:s + chunk] @ R.T
        nb = np.argpartition(-S, k - 1, axis=1)[:, :k] if k < len(R) else np.tile(np.arange(len(R)), (len(S), 1))
        w = np.take_along_axis(S, nb, axis=1).clip(min=1e-6)
        votes = np.zeros((len(S), len(uniq)), dtype=np.float64)
        np.add.at(votes, (np.repeat(np.arange(len(S)), k), inv[nb].ravel()), w.ravel())
        votes[np.arange(len(S)), inv[nb[np.arange(len(S)), w.argmax(axis=1)]]] += 1e-9  # ties: nearest
        out[s:s + chunk] = uniq[votes.argmax(axis=1)]
    return out
