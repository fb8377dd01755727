"""Content terms for BERTopic's c-TF-IDF and the optional lexical view (no BERTopic import).

* :class:`TermAnalyzer`: the ``CountVectorizer(analyzer=...)`` callable: a sentence's precomputed
  parse-stage content terms (compounds whole, boilerplate stop-listed); unseen text falls back to
  the parse stage's extractor;
* :class:`TermFeatures`: TF-IDF over content terms -> truncated SVD, concatenated to the sentence
  embeddings before UMAP when ``topics.term_features.weight`` > 0.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from pipeline.labels import text_key
from pipeline.settings import default

norm_text = text_key  # one key for sentences, labels and BERTopic documents


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

    def extend(self, texts: Sequence[str], terms: Sequence[Sequence[str]]) -> None:
        """Add known sentences (e.g. a new meeting's parse-stage terms) so they need no extractor."""
        for t, ts in zip(texts, terms):
            self.lookup.setdefault(norm_text(t), list(ts))

    def __call__(self, doc: str) -> list[str]:
        return self.terms(doc)


def _identity(x):
    return x


class TermFeatures:
    """Optional lexical view: TF-IDF over content terms -> truncated SVD, L2-normalised.

    Concatenated (times ``weight``) to the sentence embeddings before UMAP when
    ``topics.term_features.weight`` > 0: sentence encoders blur domain compounds
    (CYDER, 公設光ファイバ) that decide a policy theme.
    """

    def __init__(self, dims: int = default("topics.term_features.dims"),
                 min_df: int = default("topics.term_features.min_df"), random_state: int = default("topics.seed")):
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
        """L2 rows in float64 (the SVD's precision), then float32."""
        from pipeline.vectors import l2_normalize

        return l2_normalize(X, dtype=np.float64).astype(np.float32)
