"""The taxonomy's definitions in the classifier: each theme's ``prototypes`` (plain sentences
written from its definition in policy-themes.md) as extra training rows for the base models,
and the cosine of a sentence to them as a prior that does not depend on the sample's wording.

A mixin of :class:`pipeline.classify.model.ThemeClassifier`; split from model.py so each
file holds one responsibility.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


class DefinitionsMixin:
    """Definition prototypes of :class:`ThemeClassifier`."""

    def _uses_definitions(self) -> bool:
        return bool(self.use_definitions) and bool(self.taxonomy_.prototype_texts())

    def _definition_rows(self, tax):
        """The taxonomy's prototypes as extra training rows for the base models:
        (terms, rule block, embeddings or None, Y) -- or None when switched off."""
        pairs = tax.prototype_texts() if self.use_definitions else []
        if not pairs:
            self.proto_emb_, self.proto_theme_ = None, None
            return None
        texts = [t for _, t in pairs]
        Yp = np.zeros((len(pairs), len(tax.ids)), dtype=int)
        for i, (tid, _) in enumerate(pairs):
            Yp[i, tax.ids.index(tid)] = 1
        terms = _cached_terms(tuple(texts))
        dfp = pd.DataFrame({"text": texts, "terms": terms})
        RBp, _, _ = self._rule_block(dfp)
        Ep = None
        self.proto_emb_, self.proto_theme_ = None, None
        if self.use_embeddings:
            Ep = _cached_embeddings(tuple(texts), self.embedding_backend)
            norm = np.linalg.norm(Ep, axis=1, keepdims=True)
            self.proto_emb_ = (Ep / np.maximum(norm, 1e-9)).astype(np.float32)
            self.proto_theme_ = np.array([tax.ids.index(tid) for tid, _ in pairs])
        return terms, RBp, Ep, Yp

    def _definition_similarity(self, E):
        """[n, L]: max cosine between each sentence and the theme's definition prototypes."""
        if E is None or getattr(self, "proto_emb_", None) is None:
            return None
        En = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-9)
        S = En @ self.proto_emb_.T
        L = len(self.classes_)
        D = np.full((len(E), L), -1.0)
        for j in range(L):
            cols = self.proto_theme_ == j
            if cols.any():
                D[:, j] = S[:, cols].max(1)
        return D


_TERMS_CACHE: dict = {}
_EMB_CACHE: dict = {}


def _cached_terms(texts: tuple[str, ...]) -> list[list[str]]:
    """Content terms of the (few, fixed) prototype texts, computed once per process."""
    if texts not in _TERMS_CACHE:
        from pipeline.classify.features import terms_for_texts

        _TERMS_CACHE[texts] = terms_for_texts(list(texts))
    return _TERMS_CACHE[texts]


def _cached_embeddings(texts: tuple[str, ...], backend: str) -> np.ndarray:
    key = (texts, backend)
    if key not in _EMB_CACHE:
        from pipeline.classify.features import encode_texts

        _EMB_CACHE[key] = encode_texts(list(texts), backend)
    return _EMB_CACHE[key]
