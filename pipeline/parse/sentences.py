"""Sentences and chunks: rule-based, deterministic, no model.

* :func:`sentence_spans` cuts one utterance after 。？！ (plus closing brackets) and at
  the turn end; optionally long sentences again at clause boundaries.
* :func:`byte_chunks` cuts a sentence longer than ``max_chunk_bytes`` of UTF-8 (below
  SudachiPy's hard limit) into pieces that concatenate back to it exactly.
* :func:`split_utterances` turns a meeting's speech rows into sentence rows.
"""
from __future__ import annotations

import bisect
import itertools
import re
from collections import Counter

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.settings import default

#: SudachiPy refuses inputs longer than this many UTF-8 bytes
SUDACHI_MAX_BYTES = 49149

SENTENCE_COLUMNS = ["sentence_id", "meeting_id", "utterance_id", "order", "utterance_order", "sentence_index",
                    "speaker", "speaker_role", "agenda_item", "start", "end", "text", "terms", "n_tokens", "kind"]

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


def sentence_spans(text: str, *, split_long: bool = default("parse.split_long_sentences"),
                   max_chars: int = default("parse.max_sentence_chars"),
                   split_on_newline: bool = default("parse.split_on_newline")) -> list[tuple[int, int]]:
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


def byte_chunks(text: str, max_bytes: int = default("parse.max_chunk_bytes")) -> list[tuple[int, int]]:
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


def check_bytes(texts: list[str], where: list[str], limit: int = SUDACHI_MAX_BYTES) -> None:
    """Fail clearly (instead of hanging in nlp.pipe's workers) on a text over Sudachi's limit."""
    for t, w in zip(texts, where):
        nb = len(t.encode("utf-8"))
        if nb > limit:
            raise PipelineError(w, f"text of {nb} bytes exceeds SudachiPy's limit of {limit} bytes "
                                   "(chunking failed; lower parse.max_chunk_bytes)")


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
                               max_chars=int(params["max_sentence_chars"]),
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
