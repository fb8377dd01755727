"""Entities: GiNZA label -> coarse label, the meeting's known people (rule-based ``Person``).

The meeting's own people (speakers, attendees, officials, absentees recovered by
ingest) are matched by rule and pre-set as ``Person`` entities (``source =
known_speaker``) before GiNZA's ``ner``, which keeps pre-set entities and predicts
around them.
"""
from __future__ import annotations

import itertools
import re

from pipeline.parse.vocab import nfkc
from pipeline.vocab import person_suffixes

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

ENTITY_COLUMNS = ["sentence_id", "meeting_id", "utterance_id", "speaker", "text", "label", "coarse_label",
                  "start", "end", "source"]


def coarse_label(ene_label: str) -> str:
    """Coarse label of a GiNZA Extended Named Entity label (person, organisation, place, date, ...)."""
    if ene_label in _COARSE_OVERRIDES:
        return _COARSE_OVERRIDES[ene_label]
    from ginza import ENE_ONTONOTES_MAPPING

    return _COARSE_FROM_ONTONOTES.get(ENE_ONTONOTES_MAPPING.get(ene_label, "OTHERS"), "other")


#: any word that follows a name (configs/roles.yaml: roles, official titles, honorifics), longest first
_ROLE_SUFFIX = re.compile("(?:" + "|".join(map(re.escape, person_suffixes())) + ")$")
_NAME_CHARS = re.compile(r"^[\u3040-\u30FF\u4E00-\u9FFF々ヶー]+$")


def _strip_person(raw: str) -> str:
    s = re.sub(r"\s+", "", nfkc(raw))
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


def names_pattern(names: list[str]) -> re.Pattern | None:
    """One regex matching any of ``names`` (longest first, as :func:`known_person_names` sorts them)."""
    return re.compile("|".join(map(re.escape, names))) if names else None


def known_span_list(doc, pattern: re.Pattern | None) -> list:
    """``Person`` spans of the known people in ``doc`` (token-aligned matches only, no overlaps)."""
    if pattern is None:
        return []
    spans = []
    for m in pattern.finditer(doc.text):
        span = doc.char_span(m.start(), m.end(), label="Person", alignment_mode="strict")
        if span is not None:
            spans.append(span)
    return spacy_filter_spans(spans) if spans else spans


def known_spans(doc, pattern: re.Pattern | None) -> set[tuple[int, int]]:
    """Character spans of the known people in ``doc`` (token-aligned matches only)."""
    return {(s.start_char, s.end_char) for s in known_span_list(doc, pattern)}


def set_known_entities(doc, pattern: re.Pattern | None) -> set[tuple[int, int]]:
    """Pre-set known people as ``Person`` entities (token-aligned matches only)."""
    spans = known_span_list(doc, pattern)
    if spans:
        doc.set_ents(spans, default="unmodified")
    return {(s.start_char, s.end_char) for s in spans}


def spacy_filter_spans(spans):
    from spacy.util import filter_spans

    return filter_spans(spans)


class KnownPersons:
    """Pipeline component before ``ner``: pre-sets the meeting's people as ``Person``
    entities (``pattern`` is set per meeting); GiNZA's ``ner`` keeps pre-set entities and
    predicts around them (the equivalent of an EntityRuler with one phrase per name,
    matched on characters and kept only where it aligns with token boundaries)."""

    def __init__(self, pattern: re.Pattern | None = None):
        self.pattern = pattern

    def __call__(self, doc):
        set_known_entities(doc, self.pattern)
        return doc
