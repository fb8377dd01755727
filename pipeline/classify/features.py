"""Inputs for the classifier: content terms and sentence embeddings.

Terms and embeddings come from the parse and embed stages' library functions,
imported lazily so that importing the classifier does not load GiNZA or USE.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from pipeline.settings import default


# ------------------------------------------------------------------ terms
def terms_for_texts(texts: Sequence[str]) -> list[list[str]]:
    """Content-term lemmas for new text, computed exactly like the parse stage's ``terms``
    column (:func:`pipeline.parse.terms_for_texts`, imported lazily: GiNZA loads only when called)."""
    from pipeline.parse import terms_for_texts as parse_terms

    texts = [unicodedata.normalize("NFKC", str(t or "")) for t in texts]
    return [list(r) for r in parse_terms(texts)] if texts else []


# ------------------------------------------------------------------ embeddings
def encode_texts(texts: Sequence[str], backend: str | None = None) -> np.ndarray:
    """Sentence embeddings with the embed stage's backend (default: the declared ``embed.backend``)."""
    from pipeline.embed import get_backend

    return np.asarray(get_backend(backend or default("embed.backend")).encode([str(t or "") for t in texts]),
                      dtype=np.float32)


def load_embeddings_for(sentence_ids: Sequence[str], path) -> np.ndarray:
    """Rows of the embeddings (dataset or .npz) aligned to ``sentence_ids`` (raises if any id is missing)."""
    ids, vecs = _read_vectors(path)
    return align_vectors({str(s): i for i, s in enumerate(np.asarray(ids).tolist())}, vecs, sentence_ids, path)


def align_vectors(index: dict[str, int], vecs, sentence_ids: Sequence[str], path) -> np.ndarray:
    """``vecs`` rows (``index``: sentence id -> row) in ``sentence_ids`` order; a missing id is an error
    naming ``path``."""
    from pipeline.errors import PipelineError

    missing = [s for s in sentence_ids if str(s) not in index]
    if missing:
        raise PipelineError(path, f"{len(missing)} sentence(s) have no embedding, e.g. {missing[0]}")
    vecs = np.asarray(vecs, dtype=np.float32)
    if not len(sentence_ids):
        return vecs[:0] if vecs.ndim == 2 else np.zeros((0, 0), dtype=np.float32)
    return vecs[[index[str(s)] for s in sentence_ids]]


def _read_vectors(path) -> tuple[np.ndarray, np.ndarray]:
    """(sentence ids, float32 vectors) in stored order: the embed stage's dataset read part by part
    (:func:`pipeline.dataset.read_table`), else its own reader (a legacy
    ``.npz``, or anything unusual)."""
    from pathlib import Path

    from pipeline.embed import load_embeddings

    p = Path(path)
    if p.is_dir():
        import pyarrow.compute as pc

        from pipeline.dataset import read_table

        try:
            t = read_table(p, columns=["sentence_id", "vector"], arrow=True)
            col = t.column("vector").combine_chunks()
            dim = getattr(col.type, "list_size", None)
            if dim and t.num_rows:
                vecs = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
                return np.asarray(t.column("sentence_id").to_pylist(), dtype=str), vecs.reshape(-1, dim)
        except Exception:  # noqa: BLE001 - the embed stage's reader names the problem
            pass
    return load_embeddings(p)
