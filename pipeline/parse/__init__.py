"""Parse stage: utterances -> sentences (with content terms), tokens and entities (GiNZA).

Library entry point: :func:`parse_utterances` (notebooks/tests); CLI: ``policy-topics parse``.
Modules: ``sentences`` (sentence and chunk rules), ``vocab`` (stop words, compounds),
``terms`` (:class:`ContentTerms`, :func:`terms_for_texts`), ``entities`` (coarse labels,
known people), ``models`` (GiNZA loading), ``meeting`` (one partition), ``stage``
(library function, report, CLI), ``settings`` (parameters).

How it works, per meeting (one :class:`~pipeline.partition.Partition` each, cached by
content hash so re-runs only parse meetings whose speech rows changed):

1. **Sentences** (rule-based, deterministic, no model): each ``kind == 'speech'``
   utterance is split after 。？！ (plus trailing closing brackets 」』）) ) and at the
   turn end; empty / punctuation-only pieces are dropped. Optionally (params
   ``split_long_sentences``) sentences over ``max_sentence_chars`` are split again
   at clause boundaries (〜ですが、 〜ので、 〜ており、 ...). A sentence never spans two
   utterances, so never two speakers.
2. **Chunks**: every sentence (a sentence is always a chunk border) is cut further
   only if it is longer than ``max_chunk_bytes`` of UTF-8 (below SudachiPy's hard
   limit of 49,149 bytes), at 、/spaces when possible. Chunk texts concatenate back
   to the sentence text exactly, so nothing is lost at chunk borders.
3. **Tokens and content terms** come from GiNZA's tokenizer alone (SudachiPy,
   split mode C: surface, lemma, normalised form, POS, Sudachi tag) -- about 40x
   faster than the full pipeline. Content terms: nouns (runs of nouns merged into
   one compound term: デジタル人材, データ連携基盤, ラスト・ワンマイル), proper nouns,
   verbs and adjectives as normalised lemmas; numbers, list markers, honorific
   prefixes and the stop list (``configs/stopwords.yaml``) dropped; the compound
   list (``configs/compounds.yaml``) kept whole.
4. **Entities**: the meeting's own people (speakers, attendees, officials, absentees
   recovered by ingest) are set as ``Person`` entities first (``source =
   known_speaker``); then only ``tok2vec`` + ``ner`` run (``nlp.pipe`` over the
   already-tokenised docs, batched, ``n_process`` from params) -- GiNZA's ``ner``
   keeps pre-set entities and predicts around them. Every GiNZA Extended Named
   Entity label is kept and mapped to a coarse label (person, organisation, place,
   date, product, programme, ...).

No text longer than SudachiPy's limit ever reaches ``nlp.pipe`` (with
``n_process > 1`` such an input makes spaCy's multiprocessing pipe hang instead
of failing): :func:`check_bytes` raises a :class:`PipelineError` naming the
utterance first.
"""
from __future__ import annotations

from pipeline.parse.entities import ENTITY_COLUMNS, KnownPersons, coarse_label, known_person_names
from pipeline.parse.meeting import TOKEN_COLUMNS, parse_partition, pipe_settings
from pipeline.parse.models import KNOWN_PERSONS, load_nlp
from pipeline.parse.sentences import (
                                      SENTENCE_COLUMNS,
                                      SUDACHI_MAX_BYTES,
                                      byte_chunks,
                                      check_bytes,
                                      clean_sentence_text,
                                      sentence_spans,
                                      split_utterances,
)
from pipeline.parse.settings import STAGE, resolve_params
from pipeline.parse.stage import (
                                      ParseReport,
                                      ParseResult,
                                      build_report,
                                      entity_counts,
                                      iter_parse,
                                      parse_to_datasets,
                                      parse_utterances,
                                      register,
                                      run_parse_cli,
)
from pipeline.parse.terms import ContentTerms, content_terms, terms_for_texts
from pipeline.parse.vocab import TermVocab, load_vocab

__all__ = [
    "ENTITY_COLUMNS", "KNOWN_PERSONS", "SENTENCE_COLUMNS", "STAGE", "SUDACHI_MAX_BYTES",
    "TOKEN_COLUMNS", "ContentTerms", "KnownPersons", "ParseReport", "ParseResult", "TermVocab", "build_report", "byte_chunks",
    "check_bytes", "clean_sentence_text", "coarse_label", "content_terms", "entity_counts", "iter_parse",
    "known_person_names", "parse_to_datasets",
    "load_nlp", "load_vocab", "parse_partition", "parse_utterances", "pipe_settings", "register",
    "resolve_params", "run_parse_cli", "sentence_spans", "split_utterances", "terms_for_texts",
]

_check_bytes = check_bytes  # former private name (pipeline/parse.py), kept for existing callers
