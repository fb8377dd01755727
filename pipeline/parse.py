"""Parse stage: utterances -> sentences (with content terms), tokens and entities (GiNZA).

Library entry point: :func:`parse_utterances` (notebooks/tests); CLI: ``policy-topics parse``.

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
of failing): :func:`_check_bytes` raises a :class:`PipelineError` naming the
utterance first.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import multiprocessing
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError

STAGE = "parse"
log = logging.getLogger("policy_topics.parse")

#: SudachiPy refuses inputs longer than this many UTF-8 bytes
SUDACHI_MAX_BYTES = 49149

DEFAULT_PARAMS: dict[str, Any] = {
    "model": "ja_ginza",
    "batch_size": 64,
    "n_process": 1,
    "split_long_sentences": False,
    "max_sentence_chars": 200,
    "split_on_newline": False,
    "max_chunk_bytes": 30000,
    "ner": True,
    "max_compound_parts": 6,
}
#: distributions whose version changes the output (with the spaCy model named in params; imports are found
#: automatically): part of the per-meeting cache key
MODEL_PACKAGES = ("ginza", "SudachiPy", "SudachiDict-core", "spacy")
#: params that change speed only, never results (left out of the cache key)
_SPEED_ONLY = ("batch_size", "n_process")

# --------------------------------------------------------------------------- sentences

_SENT_END = re.compile(r"[。？！?!]+[」』）)]*")
_NEWLINE = re.compile(r"\n+")
_HAS_WORD = re.compile(r"\w")
#: clause ends that are safe places to cut an over-long spoken sentence (after the 、)
_CLAUSE_END = re.compile(
    r"(?:けれども|けれど|けども|ですが|ますが|でしたが|ましたが|ございますが|のですが|ものの|ので|"
    r"でありまして|ありまして|おりまして|まして|ており|であり|でして|した上で|とともに|"
    r"ということで|といたしまして|につきましては|に関しましては|としましては|)、"
)
_MIN_CLAUSE_CHARS = 20


def sentence_spans(text: str, *, split_long: bool = False, max_chars: int = 200,
                   split_on_newline: bool = False) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of one utterance text.

    A sentence ends after 。？！ (and any closing brackets right after it) or at the end
    of the text; with ``split_on_newline`` also at a line break. Spans are stripped of
    surrounding whitespace; empty and punctuation-only spans are dropped. With
    ``split_long``, spans longer than ``max_chars`` are cut at clause boundaries.
    """
    if not isinstance(text, str) or not text:
        return []
    cuts = {m.end() for m in _SENT_END.finditer(text)}
    if split_on_newline:
        cuts |= {m.start() for m in _NEWLINE.finditer(text)}
    cuts = sorted(c for c in cuts if 0 < c < len(text)) + [len(text)]
    spans: list[tuple[int, int]] = []
    start = 0
    for end in cuts:
        a, b = start, end
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        start = end
        if b > a and _HAS_WORD.search(text, a, b):
            if split_long and b - a > max_chars:
                spans += _clause_split(text, a, b, max_chars)
            else:
                spans.append((a, b))
    return spans


def _clause_split(text: str, a: int, b: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut ``text[a:b]`` after clause-final 、 so pieces stay under ``max_chars`` where possible."""
    cands = [m.end() for m in _CLAUSE_END.finditer(text, a, b)
             if m.group() != "、" and _MIN_CLAUSE_CHARS <= m.end() - a and b - m.end() >= _MIN_CLAUSE_CHARS]
    out = []
    s = a
    while b - s > max_chars:
        ok = [c for c in cands if s + _MIN_CLAUSE_CHARS <= c <= s + max_chars and b - c >= _MIN_CLAUSE_CHARS]
        later = [c for c in cands if c > s + max_chars and b - c >= _MIN_CLAUSE_CHARS]
        cut = ok[-1] if ok else (later[0] if later else None)
        if cut is None:
            break
        out.append((s, cut))
        s = cut
        while s < b and text[s].isspace():
            s += 1
    out.append((s, b))
    return out


def clean_sentence_text(raw: str) -> str:
    """A sentence's text: line breaks inside it (and the indentation around them) removed."""
    return re.sub(r"[ \t\u3000]*\n[\s\u3000]*", "", raw)


def byte_chunks(text: str, max_bytes: int = 30000) -> list[tuple[int, int]]:
    """Character spans covering ``text`` exactly, each at most ``max_bytes`` of UTF-8.

    Cuts prefer (in order) 。 、 a line break or a space in the second half of the
    window; else the window's end. Concatenating the chunks gives ``text`` back.
    """
    if len(text.encode("utf-8")) <= max_bytes:
        return [(0, len(text))]
    cum = [0, *itertools.accumulate(len(c.encode("utf-8")) for c in text)]  # cum[i] = bytes of text[:i]
    out = []
    s = 0
    n = len(text)
    import bisect

    while cum[n] - cum[s] > max_bytes:
        e = bisect.bisect_right(cum, cum[s] + max_bytes) - 1  # largest e with bytes(text[s:e]) <= max
        e = max(e, s + 1)
        cut = None
        lo = s + (e - s) // 2
        for marks in ("。？！", "、，,", "\n", " \u3000\t"):
            best = max((text.rfind(ch, lo, e) for ch in marks), default=-1)
            if best >= lo:
                cut = best + 1
                break
        cut = cut or e
        out.append((s, cut))
        s = cut
    out.append((s, n))
    return out


# --------------------------------------------------------------------------- vocabularies

@dataclass(frozen=True)
class TermVocab:
    """What :func:`content_terms` needs from configs/: stop words, compounds, prefixes."""

    stopwords: frozenset[str] = frozenset()
    compounds: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    drop_prefixes: frozenset[str] = frozenset({"御", "お", "ご", "本", "当", "同", "各", "計", "約", "第"})
    break_suffixes: frozenset[str] = frozenset({"なり", "とも"})
    max_parts: int = 6

    @property
    def match_table(self) -> dict[str, str]:
        """Space-free NFKC key -> canonical term, for compounds and aliases."""
        table = {_key(c): self.aliases.get(c, c) for c in self.compounds}
        table.update({_key(a): c for a, c in self.aliases.items()})
        return table


def _key(s: str) -> str:
    return re.sub(r"\s+", "", _nfkc(s))


def _nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def load_vocab(stopwords_path: str | Path | None = None, compounds_path: str | Path | None = None,
               max_parts: int = 6) -> TermVocab:
    """Read ``configs/stopwords.yaml`` and ``configs/compounds.yaml`` (or the given files)."""
    from pipeline.config import CONFIGS, ConfigError, load_config

    def _load(name, path):
        p = Path(path) if path else CONFIGS / f"{name}.yaml"
        try:
            data = load_config(name, p)
        except ConfigError as exc:
            raise PipelineError(p, str(exc).split(": ", 1)[-1]) from exc
        if not isinstance(data, dict):
            raise PipelineError(p, "expected a YAML mapping")
        return data

    sw = _load("stopwords", stopwords_path)
    stop: set[str] = set()
    for key, words in sw.items():
        if key == "stopwords" or isinstance(words, list):
            stop |= {_nfkc(str(w)) for w in (words or [])}
    cp = _load("compounds", compounds_path)
    # longest first; ties in a fixed order (set order varies with PYTHONHASHSEED, which made the
    # parse cache key -- and so every re-run -- differ between processes)
    compounds = tuple(sorted({_nfkc(str(c)) for c in (cp.get("compounds") or [])}, key=lambda c: (-len(c), c)))
    aliases = {_nfkc(str(k)): _nfkc(str(v)) for k, v in (cp.get("aliases") or {}).items()}
    kw = {}
    for name in ("drop_prefixes", "break_suffixes"):
        if cp.get(name) is not None:
            kw[name] = frozenset(_nfkc(str(p)) for p in cp[name])
    return TermVocab(stopwords=frozenset(stop), compounds=compounds, aliases=aliases,
                     max_parts=int(cp.get("max_parts", max_parts)), **kw)


# --------------------------------------------------------------------------- content terms

_KATAKANA = re.compile(r"^[\u30A0-\u30FFー]+$")
_LATIN = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"\d")
_SINGLE_KANA_OR_LATIN = re.compile(r"^[\u3040-\u30FFA-Za-zー]$")
_DOTS = {"・", "･"}


def _category(tok) -> str:
    """Coarse role of a token for term extraction (from its Sudachi tag)."""
    tag = tok.tag_
    text = tok.text
    if tok.is_space or not text.strip():
        return "space"
    if text in _DOTS:
        return "dot"
    if tok.pos_ == "NUM" or tag.startswith("名詞-数詞") or _DIGIT.search(text):
        return "num"
    if tag.startswith("接頭辞"):
        return "prefix"
    if tag.startswith("名詞-普通名詞-副詞可能"):
        return "advnoun"
    if tag.startswith("名詞-普通名詞-助数詞可能"):
        return "counter_noun"
    if tag.startswith(("名詞-普通名詞", "名詞-固有名詞")):
        return "noun"
    if tag.startswith(("接尾辞-名詞的-一般", "接尾辞-名詞的-サ変可能")):
        return "suffix"
    if tag.startswith("接尾辞-名詞的-助数詞"):
        return "counter"
    if tag.startswith("形状詞-一般"):
        return "adjnoun"
    if tag.startswith("動詞-一般"):
        return "verb"
    if tag.startswith("形容詞-一般"):
        return "adj"
    return "other"


_KANJI = re.compile(r"[\u4E00-\u9FFF々]")


def _normalised(tok, base: str) -> str:
    """Sudachi's normalised form when it only unifies spelling (コミュニティ -> コミュニティー,
    取組 -> 取り組み, 感じる for 感ずる), else ``base``: never a form that brings in kanji the
    speaker did not use (ところ -> 所, やり方 -> 遣り方, する -> 為る)."""
    norm = tok.norm_
    if not norm or _LATIN.search(norm) or _LATIN.search(tok.text):
        return base
    if set(_KANJI.findall(norm)) <= set(_KANJI.findall(tok.text)):
        return _nfkc(norm)
    return base


def _form(tok) -> str:
    """Term form of a noun-ish token (Latin words as written: Sudachi lower-cases ICT -> ict;
    an honorific 御 fused into the token dropped: 御承知 -> 承知, 御都合 -> 都合)."""
    text = _nfkc(tok.text)
    if _LATIN.search(text):
        return text
    form = _normalised(tok, _nfkc(tok.lemma_ or text))
    if form.startswith("御") and len(form) >= 3:
        form = form[1:]
    return form


def _lemma(tok) -> str:
    """Term form of a verb/adjective: its dictionary form (lemma_: する, not norm_'s 為る)."""
    return _normalised(tok, _nfkc(tok.lemma_ or tok.text))


@lru_cache(maxsize=16)
def _match_table(vocab: TermVocab) -> dict[str, str]:
    return vocab.match_table


def content_terms(doc, vocab: TermVocab) -> list[str]:
    """Content terms of a tokenised (GiNZA tokenizer) doc, in text order.

    Runs of nouns (common/proper nouns, noun suffixes, a non-honorific prefix in
    front, ・ between katakana words, a 形状詞 glued to a following noun) become one
    compound term; entries of the compound list match first and are kept whole.
    Verbs (動詞-一般) and adjectives (形容詞-一般, 形状詞) give their lemma. Numbers,
    counters after numbers, list markers and stop words are dropped.
    """
    toks = list(doc)
    n = len(toks)
    cats = [_category(t) for t in toks]
    stop = vocab.stopwords
    terms: list[str] = []

    # 1) compound list: longest match over token-aligned surfaces (spaces ignored)
    fixed: dict[int, tuple[int, str]] = {}  # start token -> (end token, canonical term)
    table = _match_table(vocab)
    if table:
        maxlen = max(map(len, table))
        surf = [_key(t.text) for t in toks]
        i = 0
        while i < n:
            best = None
            acc = ""
            for j in range(i, n):
                acc += surf[j]
                if len(acc) > maxlen:
                    break
                if acc in table:
                    best = (j + 1, table[acc])
            if best:
                fixed[i] = best
                i = best[0]
            else:
                i += 1

    def emit(term: str, listed: bool = False) -> None:
        term = term.strip()
        if not term or term in stop:
            return
        if not listed and (_DIGIT.search(term) or _SINGLE_KANA_OR_LATIN.match(term)):
            return
        terms.append(vocab.aliases.get(term, term))

    def flush(run: list[int]) -> None:
        # strip leading suffixes/dots and trailing prefixes/dots, then stop words at the edges
        while run and cats[run[0]] in ("suffix", "dot"):
            run = run[1:]
        # a one-character noun glued to a number is part of the numeric expression (2020年比)
        if run and run[0] > 0 and cats[run[0] - 1] in ("num", "counter") and len(toks[run[0]].text) == 1:
            run = run[1:]
        while run and cats[run[-1]] in ("prefix", "dot", "adjnoun"):
            run = run[:-1]
        forms = [_form(toks[k]) if cats[k] != "dot" else "・" for k in run]
        while forms and (forms[0] in stop or _nfkc(toks[run[0]].text) in stop) and cats[run[0]] != "dot":
            run, forms = run[1:], forms[1:]
        while forms and (forms[-1] in stop or _nfkc(toks[run[-1]].text) in stop):
            run, forms = run[:-1], forms[:-1]
        if not run:
            return
        n_parts = sum(cats[k] != "dot" for k in run)
        if n_parts > vocab.max_parts:  # a run this long is a list of nouns, not a term
            for k in run:
                if cats[k] in ("noun",):
                    emit(_form(toks[k]))
            return
        emit("".join(forms))

    run: list[int] = []
    i = 0
    while i < n:
        if i in fixed:
            if run:
                flush(run)
                run = []
            end, term = fixed[i]
            emit(term, listed=True)
            i = end
            continue
        c = cats[i]
        nxt = cats[i + 1] if i + 1 < n else "end"
        prev = cats[i - 1] if i > 0 else "start"
        if c == "noun" or (c == "counter_noun" and prev != "num"):
            run.append(i)
        elif c == "suffix" and run and _nfkc(toks[i].text) not in vocab.break_suffixes:
            run.append(i)
        elif c == "prefix" and nxt in ("noun", "counter_noun", "prefix", "adjnoun"):
            if _nfkc(toks[i].text) not in vocab.drop_prefixes:
                run.append(i)
            else:  # honorific / deictic prefix: not part of the term, but ends the previous one
                if run:
                    flush(run)
                    run = []
        elif c == "adjnoun" and nxt in ("noun", "counter_noun"):
            run.append(i)
        elif (c == "dot" and run and i + 1 < n and cats[run[-1]] == "noun" and nxt == "noun"
              and _KATAKANA.match(toks[run[-1]].text) and _KATAKANA.match(toks[i + 1].text)):
            run.append(i)
        else:
            if run:
                flush(run)
                run = []
            if c == "advnoun":
                emit(_form(toks[i]))
            elif c in ("verb", "adj"):
                emit(_lemma(toks[i]))
            elif c == "adjnoun":
                emit(_lemma(toks[i]))
        i += 1
    if run:
        flush(run)
    return terms


# --------------------------------------------------------------------------- entities

#: OntoNotes-style labels (ginza.ENE_ONTONOTES_MAPPING) -> coarse labels
_COARSE_FROM_ONTONOTES = {
    "PERSON": "person", "ORG": "organisation", "NORP": "group", "GPE": "place", "LOC": "place",
    "FAC": "place", "DATE": "date", "TIME": "date", "PRODUCT": "product", "WORK_OF_ART": "product",
    "LAW": "programme", "EVENT": "event", "MONEY": "number", "PERCENT": "number",
    "QUANTITY": "number", "CARDINAL": "number", "ORDINAL": "number", "LANGUAGE": "language",
}
#: ENE labels whose OntoNotes mapping is too coarse for minutes
_COARSE_OVERRIDES = {
    "International_Organization": "organisation", "Political_Organization": "organisation",
    "Political_Organization_Other": "organisation", "Political_Party": "organisation",
    "School": "organisation", "Research_Institute": "organisation", "Public_Institution": "organisation",
    "Medical_Institution": "organisation", "GOE_Other": "organisation", "Position_Vocation": "title", "Title": "title",
    "Title_Other": "title", "Product": "product", "Event": "event", "Location": "place",
    "Numex": "number", "Numex_Other": "number", "Plan": "programme", "Rule": "programme",
    "Rule_Other": "programme", "Law": "programme", "Treaty": "programme", "Doctrine_Method_Other": "programme",
    "Doctrine_Method": "programme", "Offense": "other",
}


def coarse_label(ene_label: str) -> str:
    """Coarse label of a GiNZA Extended Named Entity label (person, organisation, place, date, ...)."""
    if ene_label in _COARSE_OVERRIDES:
        return _COARSE_OVERRIDES[ene_label]
    from ginza import ENE_ONTONOTES_MAPPING

    return _COARSE_FROM_ONTONOTES.get(ENE_ONTONOTES_MAPPING.get(ene_label, "OTHERS"), "other")


_ROLE_SUFFIX = re.compile(
    r"(?:構成員|座長代理|座長|委員長|副委員長|委員|議長|副議長|会長|部会長|主査|様|君|氏|さん|先生|知事|副知事|"
    r"大臣|副大臣|政務官|理事|参考人|説明員|オブザーバー)$"
)


_NAME_CHARS = re.compile(r"^[\u3040-\u30FF\u4E00-\u9FFF々ヶー]+$")


def _strip_person(raw: str) -> str:
    s = re.sub(r"\s+", "", _nfkc(raw))
    m = re.search(r"[（(]([^）)]+)[）)]", s)  # 知事（小池百合子君） -> 小池百合子君
    if m:
        s = m.group(1)
    while True:
        t = _ROLE_SUFFIX.sub("", s)
        if t == s:
            return s
        s = t


def known_person_names(speakers=(), others=(), nlp=None) -> list[str]:
    """Person names to pre-set as entities, longest first.

    ``speakers``: names ingest recovered (``speaker_name``: 國領, 小池百合子), trusted
    as they are. ``others``: attendee / official strings (``浦田構成員``,
    ``田邊情報通信政策課長``): role suffixes stripped, then the leading tokens Sudachi
    tags as 人名 are the name. A full name 姓+名 also adds the surname alone
    (小池百合子 -> 小池). One-character names (関) are skipped: too ambiguous.
    """
    out: set[str] = set()
    cands = [(_strip_person(x), True) for x in speakers if isinstance(x, str)]
    cands += [(_strip_person(x), False) for x in others if isinstance(x, str)]
    for s, trusted in cands:
        if not s:
            continue
        toks = list(nlp.tokenizer(s)) if nlp is not None else []
        lead = list(itertools.takewhile(lambda t: "人名" in t.tag_, toks))
        if len(lead) >= 2 and "姓" in lead[0].tag_ and len(lead[0].text) > 1:
            out.add(lead[0].text)
        if trusted and len(s) <= 8 and _NAME_CHARS.match(s):
            name = s
        elif lead:
            name = "".join(t.text for t in lead)
        elif len(s) <= 4 and _NAME_CHARS.match(s):
            name = s
        else:
            name = None
        if name and 1 < len(name) <= 12:
            out.add(name)
    return sorted(out, key=lambda x: (-len(x), x))


def _known_span_list(doc, pattern: re.Pattern | None) -> list:
    if pattern is None:
        return []
    spans = []
    for m in pattern.finditer(doc.text):
        span = doc.char_span(m.start(), m.end(), label="Person", alignment_mode="strict")
        if span is not None:
            spans.append(span)
    return spacy_filter_spans(spans) if spans else spans


def _known_spans(doc, pattern: re.Pattern | None) -> set[tuple[int, int]]:
    """Character spans of the known people in ``doc`` (token-aligned matches only)."""
    return {(s.start_char, s.end_char) for s in _known_span_list(doc, pattern)}


def _set_known_entities(doc, pattern: re.Pattern | None) -> set[tuple[int, int]]:
    """Pre-set known people as ``Person`` entities (token-aligned matches only)."""
    spans = _known_span_list(doc, pattern)
    if spans:
        doc.set_ents(spans, default="unmodified")
    return {(s.start_char, s.end_char) for s in spans}


def spacy_filter_spans(spans):
    from spacy.util import filter_spans

    return filter_spans(spans)


# --------------------------------------------------------------------------- models

KNOWN_PERSONS = "policy_topics_known_persons"


class KnownPersons:
    """Pipeline component before ``ner``: pre-sets the meeting's people as ``Person``
    entities (``pattern`` is set per meeting); GiNZA's ``ner`` keeps pre-set entities and
    predicts around them (the equivalent of an EntityRuler with one phrase per name,
    matched on characters and kept only where it aligns with token boundaries)."""

    def __init__(self, pattern: re.Pattern | None = None):
        self.pattern = pattern

    def __call__(self, doc):
        _set_known_entities(doc, self.pattern)
        return doc


STRIP = "policy_topics_strip"


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
def load_nlp(model: str = "ja_ginza", ner: bool = True):
    """GiNZA with only what the parse stage needs (tokenizer, tok2vec, ner), loaded once per process.

    The dependency parser, morphologizer, compound splitter and bunsetu recognizer
    are excluded: content terms come from the tokenizer and the noun-run rule.
    """
    import spacy

    try:
        if ner:
            _register_component()
            nlp = spacy.load(model, exclude=["parser", "morphologizer", "compound_splitter",
                                              "bunsetu_recognizer", "attribute_ruler"])
            nlp.add_pipe(KNOWN_PERSONS, before="ner")
            nlp.add_pipe(STRIP, last=True)
            return nlp
        nlp = spacy.load(model, exclude=["parser", "morphologizer", "compound_splitter",
                                          "bunsetu_recognizer", "attribute_ruler", "ner", "tok2vec"])
        return nlp
    except OSError as exc:
        raise PipelineError(None, f"cannot load spaCy model {model!r}: {exc}") from exc


@lru_cache(maxsize=4)
def _vocab_for(max_parts: int) -> TermVocab:
    return load_vocab(max_parts=max_parts)


def terms_for_texts(texts, model: str | None = None, max_bytes: int | None = None) -> list[list[str]]:
    """Content terms of arbitrary new text, exactly as the ``terms`` column is computed.

    For callers outside the stage (topics ``transform``, ``policy-topics tag``): any
    length is accepted; text over Sudachi's limit is tokenised in :func:`byte_chunks`
    pieces (terms never span a cut: cuts prefer 。 、 and line breaks).
    """
    params = resolve_params()
    nlp = load_nlp(model or params.get("model", "ja_ginza"), ner=False)
    vocab = _vocab_for(int(params.get("max_compound_parts", 6)))
    limit = int(max_bytes or params.get("max_chunk_bytes", 30000))
    out = []
    for text in texts:
        text = str(text or "")
        pieces = [text[a:b] for a, b in byte_chunks(text, limit)] if text.strip() else []
        out.append([t for doc in nlp.pipe(pieces) for t in content_terms(doc, vocab)])
    return out


def _check_bytes(texts: list[str], where: list[str], limit: int = SUDACHI_MAX_BYTES) -> None:
    """Fail clearly (instead of hanging in nlp.pipe's workers) on a text over Sudachi's limit."""
    for t, w in zip(texts, where):
        nb = len(t.encode("utf-8"))
        if nb > limit:
            raise PipelineError(w, f"text of {nb} bytes exceeds SudachiPy's limit of {limit} bytes "
                                   "(chunking failed; lower parse.max_chunk_bytes)")


# --------------------------------------------------------------------------- one meeting

SENTENCE_COLUMNS = ["sentence_id", "meeting_id", "utterance_id", "order", "utterance_order", "sentence_index",
                    "speaker", "speaker_role", "agenda_item", "start", "end", "text", "terms", "n_tokens", "kind"]
TOKEN_COLUMNS = ["sentence_id", "i", "surface", "lemma", "norm", "pos", "tag", "is_stop", "start"]
ENTITY_COLUMNS = ["sentence_id", "meeting_id", "utterance_id", "speaker", "text", "label", "coarse_label",
                  "start", "end", "source"]


def _str_or_none(v):
    return None if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA else str(v)


def split_utterances(rows: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Sentence rows (without terms) for the speech rows of ``rows``."""
    recs = []
    speech = rows[rows["kind"] == "speech"] if "kind" in rows else rows
    order_by_meeting: Counter = Counter()
    for r in speech.itertuples(index=False):
        text = r.text if isinstance(r.text, str) else ""
        spans = sentence_spans(text, split_long=bool(params.get("split_long_sentences")),
                               max_chars=int(params.get("max_sentence_chars", 200)),
                               split_on_newline=bool(params.get("split_on_newline")))
        speaker = _str_or_none(getattr(r, "speaker_name", None)) or _str_or_none(getattr(r, "speaker_raw", None))
        for k, (a, b) in enumerate(spans):
            stext = clean_sentence_text(text[a:b])
            if not _HAS_WORD.search(stext):
                continue
            mid = str(r.meeting_id)
            recs.append({
                "sentence_id": f"{r.utterance_id}:s{k:03d}", "meeting_id": mid,
                "utterance_id": str(r.utterance_id), "order": order_by_meeting[mid],
                "utterance_order": int(getattr(r, "order", 0)), "sentence_index": k,
                "speaker": speaker, "speaker_role": _str_or_none(getattr(r, "speaker_role", None)),
                "agenda_item": _str_or_none(getattr(r, "agenda_item", None)),
                "start": a, "end": b, "text": stext, "kind": "speech",
            })
            order_by_meeting[mid] += 1
    return pd.DataFrame.from_records(recs, columns=[c for c in SENTENCE_COLUMNS if c not in ("terms", "n_tokens")])


def _in_daemon() -> bool:
    return bool(multiprocessing.current_process().daemon)


def _pipe_settings(n_docs: int, params: dict) -> tuple[int, int]:
    """``(n_process, batch_size)`` for nlp.pipe: batches small enough to keep every process busy;
    one process inside daemonic workers (they cannot fork) or for a handful of docs."""
    n_process = max(1, int(params.get("n_process", 1) or 1))
    batch_size = max(1, int(params.get("batch_size", 64) or 64))
    if n_process > 1 and (_in_daemon() or n_docs < 2 * n_process):
        n_process = 1
    if n_process > 1:
        # ~8 batches per process: the last batches keep both workers busy (measured on the sample:
        # batches of ~35 sentences run ~5 % faster than ~70)
        batch_size = max(1, min(batch_size, -(-n_docs // (8 * n_process))))
    return n_process, batch_size


def parse_partition(payload: dict) -> dict[str, pd.DataFrame]:
    """Parse one meeting: ``payload = {rows, params, vocab, known_names}`` -> sentences/tokens/entities.

    Module-level and picklable (runs in pool / Dask workers); the GiNZA model loads
    lazily once per process (:func:`load_nlp`).
    """
    rows: pd.DataFrame = payload["rows"]
    params: dict = {**DEFAULT_PARAMS, **(payload.get("params") or {})}
    vocab: TermVocab = payload["vocab"]
    names: list[str] = payload.get("known_names") or []

    sents = split_utterances(rows, params)
    do_ner = bool(params.get("ner", True))
    nlp = load_nlp(params["model"], ner=do_ner)

    # chunks: (sentence row, char offset in the sentence text, chunk text)
    max_bytes = min(int(params.get("max_chunk_bytes", 30000)), SUDACHI_MAX_BYTES)
    chunk_sent, chunk_off, chunk_text, chunk_where = [], [], [], []
    for si, (sid, text) in enumerate(zip(sents["sentence_id"], sents["text"])):
        for a, b in byte_chunks(text, max_bytes):
            chunk_sent.append(si)
            chunk_off.append(a)
            chunk_text.append(text[a:b])
            chunk_where.append(sid)
    _check_bytes(chunk_text, chunk_where)

    # One pass over the docs: tokens and content terms from the tokenizer's annotations,
    # entities from tok2vec + ner. With NER, nlp.pipe tokenises in its worker processes too,
    # so nothing is tokenised twice. Texts, not Docs, go to nlp.pipe (a pickled Doc drags the
    # whole Vocab, vectors included, to the workers); _check_bytes above guarantees that no
    # text is over Sudachi's limit (which would make multi-process nlp.pipe hang).
    if do_ner:
        pattern = re.compile("|".join(map(re.escape, names))) if names else None
        nlp.get_pipe(KNOWN_PERSONS).pattern = pattern
        n_process, batch_size = _pipe_settings(len(chunk_text), params)
        docs = nlp.pipe(chunk_text, batch_size=batch_size, n_process=n_process)
    else:
        pattern = None
        docs = (nlp.make_doc(t) for t in chunk_text)  # tokenizer only (SudachiPy)

    stop = vocab.stopwords
    terms: list[list[str]] = [[] for _ in range(len(sents))]
    n_tok = [0] * len(sents)
    tok_rows = {c: [] for c in TOKEN_COLUMNS}
    sid_list = sents["sentence_id"].tolist()
    meta = sents[["meeting_id", "utterance_id", "speaker"]].to_dict("records")
    ent_recs = []
    for si, off, doc in zip(chunk_sent, chunk_off, docs):
        terms[si] += content_terms(doc, vocab)
        for t in doc:
            if t.is_space:
                continue
            lemma, norm = t.lemma_, t.norm_
            tok_rows["sentence_id"].append(sid_list[si])
            tok_rows["i"].append(n_tok[si])
            tok_rows["surface"].append(t.text)
            tok_rows["lemma"].append(lemma)
            tok_rows["norm"].append(norm)
            tok_rows["pos"].append(t.pos_)
            tok_rows["tag"].append(t.tag_)
            tok_rows["is_stop"].append(bool(t.is_stop or lemma in stop or norm in stop or t.text in stop))
            tok_rows["start"].append(off + t.idx)
            n_tok[si] += 1
        if do_ner and doc.ents:
            known = _known_spans(doc, pattern)
            m = meta[si]
            for e in doc.ents:
                ent_recs.append({
                    "sentence_id": sid_list[si], "meeting_id": m["meeting_id"], "utterance_id": m["utterance_id"],
                    "speaker": m["speaker"], "text": e.text, "label": e.label_,
                    "coarse_label": coarse_label(e.label_), "start": off + e.start_char,
                    "end": off + e.end_char,
                    "source": "known_speaker" if (e.start_char, e.end_char) in known else "ner",
                })
    sents["terms"] = terms
    sents["n_tokens"] = n_tok
    sents = sents[SENTENCE_COLUMNS]
    tokens = pd.DataFrame(tok_rows, columns=TOKEN_COLUMNS)
    entities = pd.DataFrame.from_records(ent_recs, columns=ENTITY_COLUMNS)
    return {"sentences": sents, "tokens": tokens, "entities": entities}


# --------------------------------------------------------------------------- library

@dataclass
class ParseResult:
    sentences: pd.DataFrame
    tokens: pd.DataFrame
    entities: pd.DataFrame
    report: dict = field(default_factory=dict)


def _meeting_names(meetings: pd.DataFrame | None, rows: pd.DataFrame, nlp) -> list[str]:
    speakers: list[str] = []
    if "speaker_name" in rows:
        speakers = [x for x in rows["speaker_name"].dropna().astype(str) if x]
    raw: list[str] = []
    if meetings is not None and len(meetings):
        mid = rows["meeting_id"].iloc[0]
        m = meetings[meetings["meeting_id"] == mid]
        for col in ("attendees", "officials", "absentees"):
            if col in m and len(m):
                v = m[col].iloc[0]
                if v is not None and not (isinstance(v, float) and pd.isna(v)):
                    raw += [str(x) for x in list(v)]
    return known_person_names(sorted(set(speakers)), sorted(set(raw)), nlp)


def resolve_params(params: dict | None = None) -> dict:
    """params.yaml ``parse`` validated (:class:`pipeline.settings.ParseSettings`, which declares the
    defaults), overridden by ``params`` (a ParseSettings or a dict of overrides), as a fresh dict."""
    from pipeline.settings import resolve

    return resolve(STAGE, params).to_params()


def parse_utterances(utterances: pd.DataFrame, meetings: pd.DataFrame | None = None,
                     params: dict | None = None, *, vocab: TermVocab | None = None,
                     cache: bool = True, cache_dir: str | Path | None = None,
                     executor: str | None = None, n_workers: int | None = None) -> ParseResult:
    """Utterances (ingest's table) -> :class:`ParseResult` (sentences, tokens, entities, report).

    Only ``kind == 'speech'`` rows become sentences. One partition per meeting,
    cached under ``.cache/parse/`` by the hash of that meeting's speech rows, its
    known people, the parameters, the vocabularies and this module's code.
    """
    from pipeline.partition import Partition, concat_tables, hash_bytes, hash_frame, map_partitions, resolve_executor

    params = resolve_params(params)
    vocab = vocab or load_vocab(max_parts=int(params.get("max_compound_parts", 6)))
    need = {"meeting_id", "utterance_id", "text"}
    missing = need - set(utterances.columns)
    if missing:
        raise PipelineError(None, f"utterances table lacks column(s) {sorted(missing)}")
    speech = utterances[utterances["kind"] == "speech"] if "kind" in utterances else utterances
    tok_nlp = load_nlp(params["model"], ner=bool(params.get("ner", True)))  # the same model the workers use

    vocab_key = hash_bytes(json.dumps([sorted(vocab.stopwords), list(vocab.compounds), vocab.aliases,
                                       sorted(vocab.drop_prefixes), vocab.max_parts],
                                      ensure_ascii=False).encode())[:16]
    key_params = {k: v for k, v in params.items() if k not in _SPEED_ONLY}
    parts = []
    for mid, rows in speech.groupby("meeting_id", sort=False):
        rows = rows.reset_index(drop=True)
        names = _meeting_names(meetings, rows, tok_nlp)
        digest = hash_bytes((hash_frame(rows) + "\0" + "\0".join(names)).encode())
        parts.append(Partition(name=str(mid), digest=digest,
                               payload={"rows": rows, "params": params, "vocab": vocab, "known_names": names}))
    ex_name, ex_workers, _ = resolve_executor(executor, n_workers)
    if (ex_name == "dask" or ex_workers > 1) and len(parts) > 1:
        # meetings already run in parallel worker processes: no nested NER processes
        for part in parts:
            part.payload["params"] = {**params, "n_process": 1}
    stats: dict = {}
    results = map_partitions(parse_partition, parts, stage=STAGE, params={**key_params, "vocab": vocab_key},
                             cache=cache, cache_dir=cache_dir, executor=executor, n_workers=n_workers,
                             stats=stats, libraries=(params["model"], *MODEL_PACKAGES))
    tables = concat_tables(results) if results else {}
    sentences = tables.get("sentences", pd.DataFrame(columns=SENTENCE_COLUMNS))
    tokens = tables.get("tokens", pd.DataFrame(columns=TOKEN_COLUMNS))
    entities = tables.get("entities", pd.DataFrame(columns=ENTITY_COLUMNS))
    report = build_report(utterances, sentences, tokens, entities, stats)
    return ParseResult(sentences, tokens, entities, report)


def entity_counts(entities: pd.DataFrame, by: tuple[str, ...] = ("meeting_id", "speaker")) -> pd.DataFrame:
    """How often each entity (text, coarse label) is mentioned per ``by`` group, most frequent first."""
    keys = [*by, "coarse_label", "text"]
    if entities.empty:
        return pd.DataFrame(columns=[*keys, "count"])
    return (entities.groupby(keys, dropna=False).size().rename("count").reset_index()
            .sort_values([*by, "count"], ascending=[True] * len(by) + [False], kind="stable")
            .reset_index(drop=True))


def build_report(utterances, sentences, tokens, entities, stats: dict | None = None) -> dict:
    n_speech = int((utterances["kind"] == "speech").sum()) if "kind" in utterances else len(utterances)
    lengths = sentences["text"].str.len() if len(sentences) else pd.Series(dtype=int)
    terms = Counter(t for ts in sentences.get("terms", []) for t in ts)
    per_meeting = {}
    if len(entities):
        for (mid, lab), n in entities.groupby(["meeting_id", "coarse_label"]).size().items():
            per_meeting.setdefault(str(mid), {})[str(lab)] = int(n)
    per_speaker = {}
    if len(entities):
        for (spk, lab), n in entities.groupby([entities["speaker"].fillna(""), "coarse_label"]).size().items():
            per_speaker.setdefault(str(spk), {})[str(lab)] = int(n)
    return {
        "n_utterances": int(len(utterances)),
        "n_speech_utterances": n_speech,
        "n_sentences": int(len(sentences)),
        "n_chars": int(lengths.sum()) if len(lengths) else 0,
        "sentence_chars": {"mean": round(float(lengths.mean()), 1) if len(lengths) else 0.0,
                           "max": int(lengths.max()) if len(lengths) else 0,
                           "over_200": int((lengths > 200).sum()) if len(lengths) else 0},
        "n_tokens": int(len(tokens)),
        "n_entities": int(len(entities)),
        "entities_by_coarse_label": {str(k): int(v) for k, v in entities["coarse_label"].value_counts().items()}
        if len(entities) else {},
        "entities_by_source": {str(k): int(v) for k, v in entities["source"].value_counts().items()}
        if len(entities) else {},
        "entities_per_meeting": per_meeting,
        "entities_per_speaker": per_speaker,
        "top_entities": [{"text": t, "coarse_label": c, "count": int(n)} for (t, c), n in
                         entities.groupby(["text", "coarse_label"]).size().nlargest(20).items()]
        if len(entities) else [],
        "n_distinct_terms": len(terms),
        "top_terms": [[t, n] for t, n in terms.most_common(30)],
        "partitions": {k: stats.get(k) for k in ("n_partitions", "seconds", "compute_seconds")}
        | {"computed": len(stats.get("computed", [])), "cached": len(stats.get("cached", []))} if stats else {},
    }


# --------------------------------------------------------------------------- CLI

def run_parse_cli(args: argparse.Namespace) -> int:
    from pipeline.io import stage_timer, write_json, write_parquet

    upath = Path(args.utterances)
    if not upath.exists():
        raise PipelineError(upath, "file not found (run `policy-topics ingest` first)")
    try:
        utterances = pd.read_parquet(upath)
    except Exception as exc:
        raise PipelineError(upath, f"cannot read Parquet: {exc}") from exc
    meetings = None
    if args.meetings:
        mpath = Path(args.meetings)
        if not mpath.exists():
            raise PipelineError(mpath, "file not found")
        meetings = pd.read_parquet(mpath)
    params = resolve_params()
    if args.n_process is not None:
        params["n_process"] = args.n_process
    with stage_timer(STAGE) as st:
        try:
            res = parse_utterances(utterances, meetings, params, cache=not args.no_cache)
        except PipelineError as exc:
            if exc.path is None:  # a problem of the input table: name the file
                raise PipelineError(upath, exc.problem) from exc
            raise
        write_parquet(res.sentences, args.sentences)
        write_parquet(res.tokens, args.tokens)
        write_parquet(res.entities, args.entities)
        st.update(sentences=len(res.sentences), tokens=len(res.tokens), entities=len(res.entities))
    if args.report:
        write_json({**res.report, "seconds": st.get("seconds")}, args.report)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("parse", help="utterances -> sentences, tokens, content terms, entities (GiNZA)",
                              description="Split speech utterances into sentences; tokens, content terms "
                                          "and named entities with GiNZA. Parameters: params.yaml parse:.")
    p.add_argument("utterances", help="utterances.parquet from `policy-topics ingest`")
    p.add_argument("--meetings", help="meetings.parquet (attendees -> known person entities)")
    p.add_argument("--sentences", required=True, help="output sentences.parquet")
    p.add_argument("--tokens", required=True, help="output tokens.parquet")
    p.add_argument("--entities", required=True, help="output entities.parquet")
    p.add_argument("--report", help="output metrics JSON")
    p.add_argument("--n-process", type=int, default=None, help="override params.yaml parse.n_process")
    p.add_argument("--no-cache", action="store_true", help="ignore the per-meeting parse cache")
    p.set_defaults(func=run_parse_cli)
