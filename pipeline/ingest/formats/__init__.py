"""Registry of input format readers.

A reader is a module in this package defining ``NAME``, ``sniff(src) -> float``
(0: not this format, 1: certainly this format) and ``read(src) -> Document``.
Adding a format = one module + one line in ``FORMAT_MODULES``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from pipeline.errors import PipelineError
from pipeline.ingest.model import Document, Source

#: reader modules, tried in this order by auto-detection
FORMAT_MODULES = [
    "pipeline.ingest.formats.pdf",
    "pipeline.ingest.formats.tokyo_assembly_json",
    "pipeline.ingest.formats.discussnet_ssp_json",
    "pipeline.ingest.formats.kokkai_json",
    "pipeline.ingest.formats.dbsearch_html",
    "pipeline.ingest.formats.html",
    "pipeline.ingest.formats.kensakusystem_text",
    "pipeline.ingest.formats.pdf_text",
    "pipeline.ingest.formats.shingikai_text",
    "pipeline.ingest.formats.colon_text",
]


def readers() -> dict[str, ModuleType]:
    out = {}
    for name in FORMAT_MODULES:
        mod = importlib.import_module(name)
        out[mod.NAME] = mod
    return out


def format_names() -> list[str]:
    return list(readers())


def companion_files(path) -> list:
    """Other files a reader would read with ``path`` (e.g. DiscussNet ``*_metadata.json``), for cache keys."""
    out = []
    for mod in readers().values():
        fn = getattr(mod, "companions", None)
        if fn is not None:
            out += fn(path)
    return out


def detect(src: Source) -> str:
    """Name of the reader for ``src``; PipelineError naming the file when none fits."""
    scores = [(mod.sniff(src), name) for name, mod in readers().items()]
    best = max(scores, key=lambda s: s[0])
    if best[0] > 0:
        return best[1]
    text = src.text  # raises for empty / binary / undecodable input
    if text.lstrip()[:1] in ("{", "["):
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PipelineError(src.path, f"invalid JSON (line {exc.lineno}: {exc.msg})") from None
        top = f"object with keys {sorted(data)[:5]}" if isinstance(data, dict) else f"{type(data).__name__}"
        raise PipelineError(src.path, f"JSON of unrecognised shape ({top}): expected a Tokyo Assembly list of "
                                      "meetings with 'Proceeding' or Kokkai API 'speechRecord'/'meetingRecord'")
    raise PipelineError(src.path, "no recognisable speaker turns (expected '○名前' or '名前：' lines)")


def read_source(src: Source, fmt: str = "auto") -> Document:
    table = readers()
    if fmt in (None, "", "auto"):
        fmt = detect(src)
    if fmt not in table:
        raise PipelineError(src.path, f"unknown format {fmt!r} (known: {', '.join(table)})")
    doc = table[fmt].read(src)
    doc.format = fmt
    return doc
