"""The fitted topic model's words and c-TF-IDF, saved next to the model so that assigning new
sentences needs neither BERTopic nor its pickle (numpy/scipy only).

:class:`TopicTerms` holds what the output tables need from the fit: each topic's words (after
KeyBERT/MMR) and plain c-TF-IDF words, the c-TF-IDF vocabulary and idf, and the global c-TF-IDF
matrix (rows l1-normalised, one per topic id). From it :func:`group_words` computes the words of
any group of sentences (a speaker's, a role's, an agenda item's or a meeting date's sentences of
one topic) exactly as BERTopic 0.17.4 does in ``topics_per_class`` / ``topics_over_time`` with
``global_tuning``: the group's term counts -> c-TF-IDF (l1 rows, square root of frequent words,
times idf) -> l1 rows -> averaged with the topic's global row -> top words (ties broken like
BERTopic's ``_extract_words_per_topic``). A group's row depends only on its own sentences and
these fixed arrays, so after a new meeting only the groups holding its sentences are recomputed
(``tests/test_topics.py`` checks equality with BERTopic's own tables).

Term counts of a sentence: its parse-stage content terms that are in the vocabulary (the fit's
``TermAnalyzer`` filter left only such terms in the vocabulary).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ARRAYS_FILE = "topic_terms.npz"
WORDS_FILE = "topic_words.json"
#: words kept per group row (BERTopic's tables join the first 5)
GROUP_WORDS = 5


def top_words(M: sp.csr_matrix, row: int, n: int) -> list[int]:
    """Column indices of the top ``n`` values of a CSR row, best first, ties broken exactly as
    BERTopic's ``_extract_words_per_topic`` (argpartition, rows padded to ``n`` with zeros,
    ascending argsort, reversed); zero scores are left out."""
    start, end = M.indptr[row], M.indptr[row + 1]
    data, cols = M.data[start:end], M.indices[start:end]
    k = min(n, len(data))
    picked = list(cols[np.argpartition(data, -k)[-k:]]) if k else []
    idx = picked + [None] * (n - len(picked))
    lookup = dict(zip(cols.tolist(), data.tolist()))
    scores = np.array([lookup.get(int(j), 0.0) if j is not None else 0 for j in idx])
    order = np.argsort(scores)[::-1]
    return [int(idx[j]) for j in order if idx[j] is not None and scores[j] > 0]


@dataclass
class TopicTerms:
    """A fitted topic model's words and c-TF-IDF pieces (see the module docstring)."""

    vocab: np.ndarray
    idf: np.ndarray
    glob: sp.csr_matrix
    topic_ids: np.ndarray
    reduce_frequent_words: bool
    top_n_words: int
    words: dict[int, list[tuple[str, float]]] = field(default_factory=dict)
    ctfidf_words: dict[int, list[tuple[str, float]]] = field(default_factory=dict)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        path = Path(path)
        g = self.glob.tocsr()
        np.savez(path / ARRAYS_FILE, vocab=np.asarray(self.vocab, dtype=str), idf=self.idf, data=g.data,
                 indices=g.indices, indptr=g.indptr, shape=np.asarray(g.shape), topic_ids=self.topic_ids)
        meta = {"reduce_frequent_words": bool(self.reduce_frequent_words), "top_n_words": int(self.top_n_words),
                "words": {str(k): [[w, s] for w, s in v] for k, v in self.words.items()},
                "ctfidf_words": {str(k): [[w, s] for w, s in v] for k, v in self.ctfidf_words.items()}}
        (path / WORDS_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def exists(cls, path: str | Path) -> bool:
        return (Path(path) / ARRAYS_FILE).exists() and (Path(path) / WORDS_FILE).exists()

    @classmethod
    def load(cls, path: str | Path) -> TopicTerms:
        path = Path(path)
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as z:
            glob = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(int(x) for x in z["shape"]))
            vocab, idf, topic_ids = z["vocab"], z["idf"], z["topic_ids"]
        meta = json.loads((path / WORDS_FILE).read_text(encoding="utf-8"))
        return cls(vocab, idf, glob, topic_ids.astype(int), meta["reduce_frequent_words"], meta["top_n_words"],
                   {int(k): [(w, float(s)) for w, s in v] for k, v in meta["words"].items()},
                   {int(k): [(w, float(s)) for w, s in v] for k, v in meta["ctfidf_words"].items()})

    # ------------------------------------------------------------------ words
    def topic_words(self, topic: int) -> list[tuple[str, float]]:
        return list(self.words.get(int(topic), []))

    def topic_ctfidf_words(self, topic: int) -> list[tuple[str, float]]:
        return list(self.ctfidf_words.get(int(topic), []))

    def rows(self) -> dict[int, int]:
        """Topic id -> row of ``glob``."""
        return {int(t): i for i, t in enumerate(self.topic_ids.tolist())}

    def counts(self, term_lists: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """Term counts (sentences x vocabulary, int64, sorted indices) of content-term lists."""
        pos = {w: i for i, w in enumerate(self.vocab.tolist())}
        indptr, indices = [0], []
        for terms in term_lists:
            indices.extend(pos[t] for t in terms if t in pos)
            indptr.append(len(indices))
        X = sp.csr_matrix((np.ones(len(indices), dtype=np.int64), np.asarray(indices, dtype=np.int64),
                           np.asarray(indptr, dtype=np.int64)), shape=(len(term_lists), len(self.vocab)))
        X.sum_duplicates()  # also sorts the indices, as CountVectorizer's output
        return X

    def transform(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """BERTopic's ``ClassTfidfTransformer.transform`` (idf on, bm25 off): l1 rows, square root
        when reducing frequent words, times idf."""
        from sklearn.preprocessing import normalize

        X = normalize(X, axis=1, norm="l1", copy=False)
        if self.reduce_frequent_words:
            X.data = np.sqrt(X.data)
        return X * sp.diags(self.idf, offsets=0, shape=(len(self.idf), len(self.idf)), format="csr",
                            dtype=np.float64)

    def group_words(self, counts: sp.csr_matrix, glob_rows: Sequence[int], n_words: int = GROUP_WORDS) -> list[list[str]]:
        """Words of each group (row of summed term ``counts``), tuned with row ``glob_rows[i]`` of the
        global c-TF-IDF (BERTopic's ``global_tuning``)."""
        from sklearn.preprocessing import normalize

        if not counts.shape[0]:
            return []
        local = normalize(self.transform(counts), axis=1, norm="l1", copy=False)
        tuned = ((self.glob[list(glob_rows)] + local) / 2.0).tocsr()
        n = max(int(self.top_n_words), 30)
        vocab = self.vocab
        return [[str(vocab[j]) for j in top_words(tuned, i, n)[:n_words]] for i in range(tuned.shape[0])]


def group_counts(counts: sp.csr_matrix, codes: np.ndarray, n_groups: int) -> sp.csr_matrix:
    """Summed rows of ``counts`` per group code (``-1``: in no group), int64, sorted indices."""
    codes = np.asarray(codes, dtype=np.int64)
    keep = np.where(codes >= 0)[0]
    G = sp.csr_matrix((np.ones(len(keep), dtype=np.int64), (codes[keep], keep)), shape=(n_groups, counts.shape[0]))
    out = (G @ counts).tocsr()
    out.sum_duplicates()
    out.sort_indices()
    return out
