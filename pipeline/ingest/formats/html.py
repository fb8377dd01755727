"""Minutes published as web pages (HTML), in either turn style:
'○山田座長　…' paragraphs or '山田座長：…' lines.

Text is extracted with the standard library's HTMLParser (script/style dropped,
entities decoded, one line per block element — p, div, li, tr, br, h1-6 …, every
block a paragraph), then read by the ``pdf_text`` parser when turns open with ○,
else by the ``colon_text`` parser. Accounting: the extracted text is accounted
as for those formats; markup (tags, attributes, entity spelling, net of the line
breaks blocks produce) is ``other``.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

from pipeline.errors import PipelineError
from pipeline.ingest.clean import normalize_width
from pipeline.ingest.model import Document, Source
from pipeline.ingest.structure import parse_session
from pipeline.textio import lines_of

NAME = "html"

_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "dt", "dd", "table", "section",
          "article", "blockquote", "pre", "hr", "ul", "ol", "dl", "title", "caption", "th", "td"}
_SKIP = {"script", "style", "noscript", "template", "head"}


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.in_title = False

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self.skip += 1
        if tag == "title":
            self.in_title = True
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _SKIP and self.skip:
            self.skip -= 1
        if tag == "title":
            self.in_title = False
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


#: the largest page read (characters); minutes pages are well under 1 MB
MAX_HTML_CHARS = 20_000_000


def defuse_markup(html: str) -> str:
    """Escape every '<' that opens markup but never closes it ('<a <a <a ...').

    The standard library's HTMLParser re-scans such input from every '<' (quadratic: 200 KB took
    50 s); a browser shows these characters as text, and so do we. A complete comment may hold
    '<' ('<!-- <p>old</p> -->'). Linear: each search result is reused until passed.
    """
    out: list[str] = []
    i, n = 0, len(html)
    next_gt = next_comment_end = -2          # cached positions (-1: none left)
    while True:
        j = html.find("<", i)
        if j < 0:
            break
        closed = True
        if html.startswith("<!--", j):
            if next_comment_end != -1 and next_comment_end < j + 4:
                next_comment_end = html.find("-->", j + 4)
            if next_comment_end >= 0:
                out.append(html[i:next_comment_end + 3])
                i = next_comment_end + 3
                continue
            closed = False
        elif j + 1 < n and (html[j + 1].isalpha() or html[j + 1] in "/!?"):
            if next_gt != -1 and next_gt < j:
                next_gt = html.find(">", j)
            nxt_lt = html.find("<", j + 1)
            closed = next_gt >= 0 and (nxt_lt < 0 or next_gt < nxt_lt)
        out.append(html[i:j])
        out.append("<" if closed else "&lt;")
        i = j + 1
    out.append(html[i:])
    return "".join(out)


def html_to_text(html: str, path=None) -> str:
    """Visible text, one line per block; each block marked as its own paragraph (trailing space)."""
    if len(html) > MAX_HTML_CHARS:
        raise PipelineError(path, f"HTML page too large ({len(html):,} characters; limit {MAX_HTML_CHARS:,})")
    p = _Text()
    p.feed(defuse_markup(html))
    p.close()
    lines = []
    for line in lines_of("".join(p.parts)):
        line = re.sub(r"[ \t]+", " ", line).strip(" ")
        if line:
            lines.append(line + " ")      # trailing space: the block ends a paragraph
    return "\n".join(lines) + "\n"


def _first_element_text(html: str, tag: str) -> str | None:
    """Inner HTML of the first ``<tag ...>...</tag>`` (linear scans, no backtracking regex)."""
    low = html.lower()
    i = low.find(f"<{tag}")
    while i >= 0 and low[i + len(tag) + 1:i + len(tag) + 2] not in (">", " ", "\t", "\n", "\r", "/"):
        i = low.find(f"<{tag}", i + 1)
    if i < 0:
        return None
    j = low.find(">", i)
    k = low.find(f"</{tag}", j) if j >= 0 else -1
    return html[j + 1:k] if k >= 0 else None


def sniff(src: Source) -> float:
    if src.suffix in (".html", ".htm", ".xhtml"):
        return 0.95
    head = src.data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return 0.95 if head.startswith((b"<!doctype html", b"<html", b"<?xml")) and b"<html" in head else 0.0


def read(src: Source) -> Document:
    from pipeline.ingest.formats.colon_text import parse_colon_text
    from pipeline.ingest.formats.pdf_text import _is_turn, parse_minutes_meetings

    html = src.text
    text = html_to_text(html, src.path)
    if not text.strip():
        raise PipelineError(src.path, "HTML page has no visible text")
    if any(_is_turn(line) for line in lines_of(text)):
        meetings, acct = parse_minutes_meetings(text, src.path)
    else:
        meeting, acct = parse_colon_text(text, src.path)
        meetings = [meeting]
    # the page's <h1> (else <title>) names the meeting; breadcrumbs above it are not the title
    for tag in ("h1", "title"):
        inner = _first_element_text(html, tag)
        title = html_to_text(inner).strip() if inner else ""
        if title:
            for meeting in meetings:
                meeting.title = normalize_width(re.sub(r"\s+", " ", title))
                meeting.session = parse_session(meeting.title) or meeting.session
            break
    # html_to_text adds one space per line (the paragraph mark): not input, so not whitespace of it;
    # the rest of the page that is not in the text is markup
    synthetic = text.count("\n")
    acct.add("whitespace", -synthetic)
    acct.add("other", len(html) - (len(text) - synthetic))
    acct.chars_in = len(html)
    return Document(meetings, acct, NAME, src.encoding)
