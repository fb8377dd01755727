"""PDF minutes (text layer) via pdfplumber -> the same parser as PDF-extracted text.

Each page's text lines are rebuilt with the layout signals the text parser uses:
a line whose first glyph starts right of the page's left margin gets a leading
full-width space (paragraph indent), and a line ending well before the right
margin gets a trailing space (paragraph end). Pages are separated by form feeds,
so page_start / page_end are exact PDF page numbers. A PDF without a text layer
(scanned / image-only) is an error: OCR it first.
"""
from __future__ import annotations

import re
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


#: limits that keep a small hostile PDF from costing minutes and gigabytes (issue #13); real
#: minutes are far below them (a dense A4 page holds ~2,000 glyphs, its content stream ~50 KB)
MAX_PDF_PAGES = 2000
MAX_PDF_GLYPHS = 250_000          # ~5x the sample minutes; pdfminer lays out only ~5-10k glyphs/s
MAX_PDF_INFLATED = 128 * 1024 * 1024   # all Flate streams together, inflated
_STREAM = re.compile(rb"stream\r?\n")


def check_pdf_bombs(src: Source) -> None:
    """Reject a PDF whose streams inflate past :data:`MAX_PDF_INFLATED`, that is encrypted, or
    whose pages hold more than :data:`MAX_PDF_PAGES` / :data:`MAX_PDF_GLYPHS` — measured
    cheaply (streaming inflate with a bounded buffer; PDFium opens the file and counts pages;
    :func:`count_glyphs` counts glyphs) before pdfminer lays out a single page."""
    import zlib

    data, total = src.data, 0
    for m in _STREAM.finditer(data):
        if b"FlateDecode" not in data[max(0, m.start() - 400):m.start()]:
            continue
        end = data.find(b"endstream", m.end())
        d = zlib.decompressobj()
        chunk = data[m.end():end if end > 0 else len(data)]
        try:
            out = d.decompress(chunk, 1 << 20)
            while True:
                total += len(out)
                if total > MAX_PDF_INFLATED:
                    raise PipelineError(src.path, f"PDF streams inflate to more than {MAX_PDF_INFLATED >> 20} MB "
                                                  "(a decompression bomb?)")
                if not d.unconsumed_tail:
                    break
                out = d.decompress(d.unconsumed_tail, 1 << 20)
        except zlib.error:
            continue
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise PipelineError(src.path, "PDF is encrypted (password protected): decrypt it first") from None
        raise PipelineError(src.path, f"cannot open PDF ({exc})") from None
    try:
        if len(doc) > MAX_PDF_PAGES:
            raise PipelineError(src.path, f"PDF has {len(doc):,} pages (limit {MAX_PDF_PAGES:,}): split it")
        n_pages = len(doc)
    finally:
        doc.close()
    page = count_glyphs(data, MAX_PDF_GLYPHS)
    if page is not None:
        raise PipelineError(src.path, f"PDF has more than {MAX_PDF_GLYPHS:,} glyphs by page {page} of "
                                      f"{n_pages}: split it")


def count_glyphs(data: bytes, limit: int) -> int | None:
    """The 1-based page by which the PDF has drawn more than ``limit`` glyphs, else None.

    Glyphs are counted as pdfminer's interpreter draws them (a form XObject each time it is
    drawn), from the string operands and the fonts' CMaps, without building characters or
    laying anything out (the costly part of pdfminer). Not PDFium's text page: it drops the
    glyphs of a non-embedded CJK font when the machine has no CJK font (seen with Debian
    without fonts-noto-cjk: 98 of 6,060 glyphs per page counted), so the limit would depend on
    the fonts installed. A file pdfminer cannot interpret here is left to the extraction,
    which reports it."""
    import io

    from pdfminer.pdfdevice import PDFDevice
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage

    class _Limit(Exception):
        pass

    class _Counter(PDFDevice):
        glyphs = 0

        def render_string(self, textstate, seq, ncs, graphicstate) -> None:
            font = textstate.font
            for obj in seq:
                if isinstance(obj, (bytes, str)):
                    raw = obj.encode("latin-1", "replace") if isinstance(obj, str) else obj
                    self.glyphs += sum(1 for _ in font.decode(raw)) if font is not None else len(raw)
            if self.glyphs > limit:
                raise _Limit

    rsrc = PDFResourceManager(caching=True)
    device = _Counter(rsrc)
    interpreter = PDFPageInterpreter(rsrc, device)
    try:
        for i, page in enumerate(PDFPage.get_pages(io.BytesIO(data)), start=1):
            try:
                interpreter.process_page(page)
            except _Limit:
                return i
    except Exception:  # noqa: BLE001 -- broken files are the extraction's to report, with its message
        return None
    return None


def extract_pdf_text(src: Source) -> str:
    """Text of every page (layout signals restored), pages separated by form feeds.

    Bounded: :func:`check_pdf_bombs` first; then page by page, each page's parsed objects
    released (``page.close()``) before the next (500 glyph-heavy pages kept 2.2 GB alive)."""
    import io

    import pdfplumber
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect

    check_pdf_bombs(src)
    try:
        pdf = pdfplumber.open(io.BytesIO(src.data))
    except (PDFPasswordIncorrect, PDFEncryptionError):
        raise PipelineError(src.path, "PDF is encrypted (password protected): decrypt it first") from None
    except Exception as exc:  # pdfminer raises many types for broken files
        if "password" in str(exc).lower() or "encrypt" in type(exc).__name__.lower():
            raise PipelineError(src.path, "PDF is encrypted (password protected): decrypt it first") from None
        raise PipelineError(src.path, f"cannot open PDF ({type(exc).__name__})") from None
    page_spans: list[list] = []
    with pdf:
        try:
            for page in pdf.pages:
                page_spans.append(_page_spans(page))
                page.close()
        except PipelineError:
            raise
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
