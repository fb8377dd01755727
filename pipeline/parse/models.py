"""GiNZA loading: only what the parse stage needs, once per process."""
from __future__ import annotations

from functools import lru_cache

from pipeline.errors import PipelineError
from pipeline.parse.entities import KnownPersons
from pipeline.settings import default

KNOWN_PERSONS = "policy_topics_known_persons"
STRIP = "policy_topics_strip"
#: GiNZA components the stage never uses: content terms come from the tokenizer and the noun-run rule
_UNUSED = ["parser", "morphologizer", "compound_splitter", "bunsetu_recognizer", "attribute_ruler"]


def strip_doc(doc):
    """Last component: drop what the stage does not use before nlp.pipe ships the Doc back
    from a worker process -- the tok2vec tensor (256 floats per token) and Sudachi's
    sub-token lists in ``user_data``; halves the serialisation cost."""
    import numpy

    doc.tensor = numpy.zeros((0,), dtype="float32")
    doc.user_data.clear()
    return doc


def _register_component() -> None:
    from spacy.language import Language

    if not Language.has_factory(KNOWN_PERSONS):
        Language.factory(KNOWN_PERSONS, func=lambda nlp, name: KnownPersons())
    if not Language.has_factory(STRIP):
        Language.component(STRIP, func=strip_doc)


@lru_cache(maxsize=4)
def load_nlp(model: str = default("parse.model"), ner: bool = True):
    """GiNZA with only what the parse stage needs (tokenizer, tok2vec, ner), loaded once per process.

    The dependency parser, morphologizer, compound splitter and bunsetu recognizer
    are excluded: content terms come from the tokenizer and the noun-run rule.
    """
    import spacy

    try:
        if ner:
            _register_component()
            nlp = spacy.load(model, exclude=_UNUSED)
            nlp.add_pipe(KNOWN_PERSONS, before="ner")
            nlp.add_pipe(STRIP, last=True)
            return nlp
        return spacy.load(model, exclude=[*_UNUSED, "ner", "tok2vec"])
    except OSError as exc:
        raise PipelineError(None, f"cannot load spaCy model {model!r}: {exc}") from exc
