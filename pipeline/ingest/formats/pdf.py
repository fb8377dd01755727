"""PDF minutes (text layer) via pdfplumber -> the same parser as PDF-extracted text.

Each page's text lines are rebuilt with the layout signals the text parser uses:
a line whose first glyph starts right of the page's left margin gets a leading
full-width space (paragraph indent), and a line ending well before the right
margin gets a trailing space (paragraph end). Pages are separated by form feeds,
so page_start / page_end are exact PDF page numbers. A PDF without a text layer
(scanned / image-only) is an error: OCR it first.
"""
from __future__ import annotations

import statistics

from pipeline.errors import PipelineError
from pipeline.ingest.formats.pdf_text import parse_minutes_meetings
from pipeline.ingest.model import Document, Source

NAME = "pdf"


def sniff(src: Source) -> float:
    return 1.0 if src.data[:1024].lstrip().startswith(b"%PDF") or src.suffix == ".pdf" else 0.0


#: glyphs that CID fonts (Adobe-Japan1) extract as the JIS code point while Japanese
#: government text (CP932 heritage, like the text route) uses the full-width form:
#: MINUS SIGN -> FULLWIDTH HYPHEN-MINUS, WAVE DASH -> FULLWIDTH TILDE
_PDF_FIXES = str.maketrans({"\u2212": "\uff0d", "\u301c": "\uff5e"})


def _page_spans(page) -> list[tuple[str, float, float, float]]:
    """(text with blank chars kept, x0 and x1 of the first/last glyph, median glyph width) per line."""
    spans = []
    for ln in page.extract_text_lines(keep_blank_chars=True, return_chars=True, strip=False):
        chars = [c for c in ln["chars"] if c["text"].strip()]
        if chars:
            spans.append((ln["text"].translate(_PDF_FIXES), chars[0]["x0"], chars[-1]["x1"],
                          statistics.median(c["x1"] - c["x0"] for c in chars)))
    return spans


def _page_lines(spans, mark_indent: bool, mark_end: bool) -> list[str]:
    """Restore the layout signals the text parser needs where the text layer lacks them.

    ``mark_indent``: prefix a full-width space to lines starting right of the left margin;
    ``mark_end``: suffix a space to lines ending well before the right margin. Used only
    when no line of the document carries the signal itself (spaces in the text layer).
    """
    if not spans:
        return []
    left = min(s[1] for s in spans)
    right = max(s[2] for s in spans)
    out = []
    for text, x0, x1, w in spans:
        if mark_indent and x0 > left + 0.6 * w:
            text = "\u3000" + text
        if mark_end and x1 < right - 1.5 * w:
            text = text + " "
        out.append(text)
    return out


def extract_pdf_text(src: Source) -> str:
    """Text of every page (layout signals restored), pages separated by form feeds."""
    import io

    import pdfplumber

    try:
        pdf = pdfplumber.open(io.BytesIO(src.data))
    except Exception as exc:  # pdfminer raises many types for broken files
        raise PipelineError(src.path, f"cannot open PDF ({type(exc).__name__})") from None
    page_spans: list[list] = []
    with pdf:
        try:
            for page in pdf.pages:
                page_spans.append(_page_spans(page))
        except Exception as exc:
            raise PipelineError(src.path, f"cannot read PDF page {len(page_spans) + 1} ({type(exc).__name__})") from None
    all_text = [s[0] for spans in page_spans for s in spans]
    mark_indent = not any(t[:1].isspace() for t in all_text)
    mark_end = not any(t[-1:].isspace() for t in all_text)
    pages = ["\n".join(_page_lines(spans, mark_indent, mark_end)) + "\n" for spans in page_spans]
    if not pages:
        raise PipelineError(src.path, "PDF has no pages")
    if not any(p.strip() for p in pages):
        raise PipelineError(src.path, f"PDF has no text layer ({len(pages)} image-only page(s)); OCR it first")
    return "\f".join(pages)


def read(src: Source) -> Document:
    text = extract_pdf_text(src)
    meetings, acct = parse_minutes_meetings(text, src.path)
    return Document(meetings, acct, NAME, "pdf")
