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
from pipeline.ingest.clean import lines_of, normalize_width
from pipeline.ingest.model import Document, Source
from pipeline.ingest.structure import parse_session

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


def html_to_text(html: str) -> str:
    """Visible text, one line per block; each block marked as its own paragraph (trailing space)."""
    p = _Text()
    p.feed(html)
    p.close()
    lines = []
    for line in lines_of("".join(p.parts)):
        line = re.sub(r"[ \t\r]+", " ", line).strip(" ")
        if line:
            lines.append(line + " ")      # trailing space: the block ends a paragraph
    return "\n".join(lines) + "\n"


def sniff(src: Source) -> float:
    if src.suffix in (".html", ".htm", ".xhtml"):
        return 0.95
    head = src.data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return 0.95 if head.startswith((b"<!doctype html", b"<html", b"<?xml")) and b"<html" in head else 0.0


def read(src: Source) -> Document:
    from pipeline.ingest.formats.colon_text import parse_colon_text
    from pipeline.ingest.formats.pdf_text import _is_turn, parse_minutes_text

    html = src.text
    text = html_to_text(html)
    if not text.strip():
        raise PipelineError(src.path, "HTML page has no visible text")
    if any(_is_turn(line) for line in lines_of(text)):
        meeting, acct = parse_minutes_text(text, src.path)
    else:
        meeting, acct = parse_colon_text(text, src.path)
    # the page's <h1> (else <title>) names the meeting; breadcrumbs above it are not the title
    for tag in ("h1", "title"):
        m = re.search(rf"<{tag}[^>]*>(.*?)</{tag}>", html, re.S | re.I)
        if m:
            title = html_to_text(m.group(1)).strip()
            if title:
                meeting.title = normalize_width(re.sub(r"\s+", " ", title))
                meeting.session = parse_session(meeting.title) or meeting.session
                break
    acct.add("other", len(html) - len(text))
    acct.chars_in = len(html)
    return Document([meeting], acct, NAME, src.encoding)
