"""Content terms of tokenised text (GiNZA's tokenizer = SudachiPy, split mode C).

Runs of nouns (common/proper nouns, noun suffixes, a non-honorific prefix in front, ・
between katakana words, a 形状詞 glued to a following noun) become one compound term;
entries of the compound list (``configs/compounds.yaml``) match first and are kept
whole. Verbs (動詞-一般) and adjectives (形容詞-一般, 形状詞) give their lemma.
Numbers, counters after numbers, list markers and stop words are dropped.

:class:`ContentTerms` is the extractor (one per vocabulary; the state of one pass over
a doc lives in a :class:`_Scan`); :func:`terms_for_texts` is the public function for
text outside the stage (topics ``transform``, classify, ``policy-topics tag``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from pipeline.parse.vocab import TermVocab, match_key, nfkc

_KATAKANA = re.compile(r"^[\u30A0-\u30FFー]+$")
_LATIN = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"\d")
_KANJI = re.compile(r"[\u4E00-\u9FFF々]")
_SINGLE_KANA_OR_LATIN = re.compile(r"^[\u3040-\u30FFA-Za-zー]$")
_DOTS = {"・", "･"}
#: what may follow a (non-honorific) prefix for it to join a noun run
_PREFIX_NEXT = ("noun", "counter_noun", "prefix", "adjnoun")

#: Sudachi tag prefix -> coarse category, first match wins (after space / dot / number)
_TAG_CATEGORIES = (
    ("接頭辞", "prefix"),
    ("名詞-普通名詞-副詞可能", "advnoun"),
    ("名詞-普通名詞-助数詞可能", "counter_noun"),
    (("名詞-普通名詞", "名詞-固有名詞"), "noun"),
    (("接尾辞-名詞的-一般", "接尾辞-名詞的-サ変可能"), "suffix"),
    ("接尾辞-名詞的-助数詞", "counter"),
    ("形状詞-一般", "adjnoun"),
    ("動詞-一般", "verb"),
    ("形容詞-一般", "adj"),
)


def token_category(tok) -> str:
    """Coarse role of a token for term extraction (from its Sudachi tag)."""
    tag = tok.tag_
    text = tok.text
    if tok.is_space or not text.strip():
        return "space"
    if text in _DOTS:
        return "dot"
    if tok.pos_ == "NUM" or tag.startswith("名詞-数詞") or _DIGIT.search(text):
        return "num"
    for prefix, cat in _TAG_CATEGORIES:
        if tag.startswith(prefix):
            return cat
    return "other"


def _normalised(tok, base: str) -> str:
    """Sudachi's normalised form when it only unifies spelling (コミュニティ -> コミュニティー,
    取組 -> 取り組み, 感じる for 感ずる), else ``base``: never a form that brings in kanji the
    speaker did not use (ところ -> 所, やり方 -> 遣り方, する -> 為る)."""
    norm = tok.norm_
    if not norm or _LATIN.search(norm) or _LATIN.search(tok.text):
        return base
    if set(_KANJI.findall(norm)) <= set(_KANJI.findall(tok.text)):
        return nfkc(norm)
    return base


def noun_form(tok) -> str:
    """Term form of a noun-ish token (Latin words as written: Sudachi lower-cases ICT -> ict;
    an honorific 御 fused into the token dropped: 御承知 -> 承知, 御都合 -> 都合)."""
    text = nfkc(tok.text)
    if _LATIN.search(text):
        return text
    form = _normalised(tok, nfkc(tok.lemma_ or text))
    if form.startswith("御") and len(form) >= 3:
        form = form[1:]
    return form


def lemma_form(tok) -> str:
    """Term form of a verb/adjective: its dictionary form (lemma_: する, not norm_'s 為る)."""
    return _normalised(tok, nfkc(tok.lemma_ or tok.text))


def compound_matches(surfaces: list[str], table: dict[str, str]) -> dict[int, tuple[int, str]]:
    """Longest matches of ``table`` keys over token-aligned ``surfaces``, left to right.

    Returns ``{start token: (end token, canonical term)}``; matches never overlap.
    """
    fixed: dict[int, tuple[int, str]] = {}
    if not table:
        return fixed
    maxlen = max(map(len, table))
    n = len(surfaces)
    i = 0
    while i < n:
        best = None
        acc = ""
        for j in range(i, n):
            acc += surfaces[j]
            if len(acc) > maxlen:
                break
            if acc in table:
                best = (j + 1, table[acc])
        if best:
            fixed[i] = best
            i = best[0]
        else:
            i += 1
    return fixed


@dataclass
class _Scan:
    """One left-to-right pass over a doc's tokens: the open noun run and the terms so far."""

    vocab: TermVocab
    toks: list
    cats: list[str]
    terms: list[str] = field(default_factory=list)
    run: list[int] = field(default_factory=list)

    def emit(self, term: str, listed: bool = False) -> None:
        term = term.strip()
        if not term or term in self.vocab.stopwords:
            return
        if not listed and (_DIGIT.search(term) or _SINGLE_KANA_OR_LATIN.match(term)):
            return
        self.terms.append(self.vocab.aliases.get(term, term))

    def step(self, i: int) -> None:
        """Token ``i`` (not inside a compound-list match): extend the run, or close it and emit."""
        if self._extends_run(i):
            self.run.append(i)
            return
        self.close_run()
        c = self.cats[i]
        if c == "advnoun":
            self.emit(noun_form(self.toks[i]))
        elif c in ("verb", "adj", "adjnoun"):
            self.emit(lemma_form(self.toks[i]))

    def _extends_run(self, i: int) -> bool:
        cats, run = self.cats, self.run
        c = cats[i]
        nxt = cats[i + 1] if i + 1 < len(cats) else "end"
        if c == "noun" or (c == "counter_noun" and (cats[i - 1] if i > 0 else "start") != "num"):
            return True
        text = nfkc(self.toks[i].text)
        if c == "suffix":
            return bool(run) and text not in self.vocab.break_suffixes
        if c == "prefix":
            return nxt in _PREFIX_NEXT and text not in self.vocab.drop_prefixes
        if c == "adjnoun":
            return nxt in ("noun", "counter_noun")
        if c == "dot":
            return (bool(run) and cats[run[-1]] == "noun" and nxt == "noun"
                    and bool(_KATAKANA.match(self.toks[run[-1]].text)) and bool(_KATAKANA.match(self.toks[i + 1].text)))
        return False

    def close_run(self) -> None:
        """Emit the open run as one compound term (or its nouns one by one if it is a list)."""
        run, self.run = self.run, []
        if not run:
            return
        run, forms = self._trim(run)
        if not run:
            return
        if sum(self.cats[k] != "dot" for k in run) > self.vocab.max_parts:
            # a run this long is a list of nouns, not a term
            for k in run:
                if self.cats[k] == "noun":
                    self.emit(noun_form(self.toks[k]))
            return
        self.emit("".join(forms))

    def _trim(self, run: list[int]) -> tuple[list[int], list[str]]:
        """Strip leading suffixes/dots and trailing prefixes/dots/形状詞, then stop words at the edges."""
        cats, toks, stop = self.cats, self.toks, self.vocab.stopwords
        while run and cats[run[0]] in ("suffix", "dot"):
            run = run[1:]
        # a one-character noun glued to a number is part of the numeric expression (2020年比)
        if run and run[0] > 0 and cats[run[0] - 1] in ("num", "counter") and len(toks[run[0]].text) == 1:
            run = run[1:]
        while run and cats[run[-1]] in ("prefix", "dot", "adjnoun"):
            run = run[:-1]
        forms = [noun_form(toks[k]) if cats[k] != "dot" else "・" for k in run]
        while forms and (forms[0] in stop or nfkc(toks[run[0]].text) in stop) and cats[run[0]] != "dot":
            run, forms = run[1:], forms[1:]
        while forms and (forms[-1] in stop or nfkc(toks[run[-1]].text) in stop):
            run, forms = run[:-1], forms[:-1]
        return run, forms


class ContentTerms:
    """Content-term extractor for one vocabulary: ``ContentTerms(vocab)(doc)`` -> terms in text order.

    ``doc`` is any sequence of tokens with spaCy's ``text``, ``tag_`` (Sudachi's POS),
    ``pos_``, ``lemma_``, ``norm_`` and ``is_space``.
    """

    def __init__(self, vocab: TermVocab):
        self.vocab = vocab
        self.table = vocab.match_table

    def __call__(self, doc) -> list[str]:
        toks = list(doc)
        scan = _Scan(self.vocab, toks, [token_category(t) for t in toks])
        fixed = compound_matches([match_key(t.text) for t in toks], self.table)
        i = 0
        while i < len(toks):
            if i in fixed:
                scan.close_run()
                end, term = fixed[i]
                scan.emit(term, listed=True)
                i = end
            else:
                scan.step(i)
                i += 1
        scan.close_run()
        return scan.terms


@lru_cache(maxsize=16)
def extractor(vocab: TermVocab) -> ContentTerms:
    """The (cached) :class:`ContentTerms` of ``vocab``."""
    return ContentTerms(vocab)


def content_terms(doc, vocab: TermVocab) -> list[str]:
    """Content terms of a tokenised (GiNZA tokenizer) doc, in text order (see :class:`ContentTerms`)."""
    return extractor(vocab)(doc)


@lru_cache(maxsize=4)
def _vocab_for(max_parts: int) -> TermVocab:
    from pipeline.parse.vocab import load_vocab

    return load_vocab(max_parts=max_parts)


def terms_for_texts(texts, model: str | None = None, max_bytes: int | None = None) -> list[list[str]]:
    """Content terms of arbitrary new text, exactly as the ``terms`` column is computed.

    For callers outside the stage (topics ``transform``, ``policy-topics tag``): any
    length is accepted; text over Sudachi's limit is tokenised in
    :func:`~pipeline.parse.sentences.byte_chunks` pieces (terms never span a cut: cuts
    prefer 。 、 and line breaks).
    """
    from pipeline.parse.models import load_nlp
    from pipeline.parse.sentences import byte_chunks
    from pipeline.parse.settings import resolve_params

    params = resolve_params()
    nlp = load_nlp(model or params["model"], ner=False)
    vocab = _vocab_for(int(params["max_compound_parts"]))
    limit = int(max_bytes or params["max_chunk_bytes"])
    out = []
    for text in texts:
        text = str(text or "")
        pieces = [text[a:b] for a, b in byte_chunks(text, limit)] if text.strip() else []
        out.append([t for doc in nlp.pipe(pieces) for t in content_terms(doc, vocab)])
    return out
