"""DB-Search (dbsr.jp) 会議録検索 pages saved from the browser (UTF-8 HTML), in the layouts the
system serves: ``detail`` (仙台: ``<p class="js-textwrap-container">`` per speech), ``template-view``
(音更: ``<p class="voice__text">`` inside ``<li class="voice-block">``) and ``doc-one-frame`` page text
(青森: ``<p class="page-text__text">`` inside ``<div class="page-text__voice">``).

Only the speech blocks are read: the page's speaker index (音更 lists all 198 speakers before the
speeches), the block titles (``<span class="voice__title">``), block numbers (``1:``), search widgets
(``検索語: なし``, ``選択``) and navigation are page chrome (``other`` in the accounting). Inside the
blocks, ``<br>`` ends a line and the lines are read by :mod:`pipeline.ingest.assembly`: ``◯label``
opens a turn (the label may stand alone on its line, the speech below), ``午前10時開議`` /
``開会（午前１０時００分）`` are procedural notes, text before the first turn (``※会議の概要``,
``会議の経過``) is the header, and an unindented line inside a turn (``諸般の報告``, ``日程第１…``) is a
printed item heading (``header``), not speech.

Title and date come from the page's fields (``view__title`` / ``command__docname``, ``<time>`` /
``command__date``); a page without a date field (青森 ``page.html``) gets a date only from 和暦
text in its header, else none.
"""
from __future__ import annotations

import html
import re

from pipeline.errors import PipelineError
from pipeline.ingest.assembly import read_turns
from pipeline.ingest.clean import Accounting, normalize_width
from pipeline.ingest.model import Document, Meeting, Source
from pipeline.ingest.structure import parse_date, parse_session

NAME = "dbsearch_html"

#: start tag of a speech block; a block ends at its </p>, or at the next block if the page is cut short
_BLOCK_START = re.compile(r'<p\s+class="(?:page-text__text\b[^"]*|js-textwrap-container|voice__text)"[^>]*>', re.I)
_CHROME_SPAN = re.compile(r'<span\s+class="(?:page-text__number\b[^"]*|visible-print-block)"[^>]*>[^<]*</span>', re.I)
_TITLE = re.compile(r'<(?:p|span)\s+class="(?:view__title|command__docname)"[^>]*>', re.I)
_DATE = re.compile(r'<(?:p|span)\s+class="(?:view__date|command__date)"[^>]*>', re.I)


def sniff(src: Source) -> float:
    if b"<" not in src.data[:2048] or not re.search(rb"voice__text|js-textwrap-container|page-text__voice", src.data):
        return 0.0
    try:
        text = src.text
    except PipelineError:
        return 0.0
    return 0.99 if _BLOCK_START.search(text) else 0.0


def _blocks(page: str) -> list[str]:
    """Inner HTML of every speech block, in one linear pass (no regex backtracking over a page
    whose blocks never close)."""
    starts = list(_BLOCK_START.finditer(page))
    out = []
    for i, m in enumerate(starts):
        limit = starts[i + 1].start() if i + 1 < len(starts) else len(page)
        end = page.find("</p>", m.end(), limit)
        out.append(page[m.end(): end if end >= 0 else limit])
    return out


def _drop_comments(t: str) -> str:
    """``<!-- … -->`` removed in one pass (an unterminated comment runs to the end of the block)."""
    out, i = [], 0
    while (j := t.find("<!--", i)) >= 0:
        out.append(t[i:j])
        k = t.find("-->", j + 4)
        i = len(t) if k < 0 else k + 3
    out.append(t[i:])
    return "".join(out)


def _block_text(inner: str) -> str:
    """One speech block's HTML -> its lines (template indentation around the block dropped)."""
    t = _CHROME_SPAN.sub("", inner)
    t = _drop_comments(t)
    t = re.sub(r"[ \t\r]*\n[ \t\r]*", "", t)                 # template line breaks: markup, not text
    t = re.sub(r"<br\s*/?>", "\n", t, flags=re.I)
    t = html.unescape(re.sub(r"<[^<>]*>", "", t))      # [^<>]: linear even where a tag never closes
    return t.strip(" \t\r\n")


def _field(rx: re.Pattern, page: str) -> str | None:
    m = rx.search(page)
    if not m:
        return None
    end = page.find("</", m.end(), m.end() + 2000)      # 開催日: <time>2024-12-26</time>: up to </time>
    v = html.unescape(re.sub(r"<[^<>]*>", "", page[m.end(): end if end >= 0 else m.end()]))
    return re.sub(r"[\s\u3000]+", " ", v).strip() or None


def read(src: Source) -> Document:
    page = src.text
    blocks = [_block_text(b) for b in _blocks(page)]
    if not blocks:
        raise PipelineError(src.path, "DB-Search page without speech blocks")
    text = "\n".join(b for b in blocks if b)
    acct = Accounting(chars_in=len(page))
    rows, header_text, _ = read_turns(text, acct, heading_after_rule=True, unindented_heading=True)
    acct.add("other", len(page) - len(text))
    if not any(r["kind"] == "speech" for r in rows):
        raise PipelineError(src.path, "no speaker turns found in the DB-Search speech blocks (expected ◯label)")
    title = _field(_TITLE, page)
    title = normalize_width(title) if title else None
    date = parse_date(_field(_DATE, page)) or parse_date(header_text)
    meeting = Meeting(title=title, date=date, session=parse_session(title))
    meeting.rows = ([{"kind": "header", "speaker_raw": None, "text": header_text}] if header_text else []) + rows
    return Document([meeting], acct, NAME, src.encoding)
