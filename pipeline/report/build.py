"""`build_report`: processed tables -> report.html, report.md and tables/."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.io import output_transaction, stage_timer, write_text

log = logging.getLogger("policy_topics.report")

#: the report is meant to stay a mail-able single file
SIZE_BUDGET_MB = 20


@dataclass
class ReportResult:
    html: Path
    markdown: Path
    tables: dict[str, Path] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def build_report(input_dir: str | Path, out: str | Path, *, markdown: str | Path | None = None,
                 tables_dir: str | Path | None = None, meetings: list[str] | None = None,
                 speakers: list[str] | None = None, taxonomy: str | Path | None = None,
                 settings: Any = None) -> ReportResult:
    """Build the HTML report ``out`` plus ``report.md`` and ``tables/`` beside it from a
    pipeline output directory (e.g. data/processed); optionally for a subset of meetings /
    speakers. Nothing of the pipeline is recomputed. ``settings``: a
    :class:`~pipeline.settings.ReportSettings`, a dict of overrides, or None (params.yaml ``report``)."""
    from pipeline.report.data import load_processed, subset
    from pipeline.report.exports import Workbook, write_tables
    from pipeline.report.html import render_html
    from pipeline.report.markdown import render_markdown
    from pipeline.settings import resolve

    p = resolve("report", settings).to_params()
    out = Path(out)
    md_path = Path(markdown) if markdown else out.with_suffix(".md")
    tdir = Path(tables_dir) if tables_dir else out.parent / "tables"
    with stage_timer("report") as stats:
        data = subset(load_processed(input_dir, taxonomy), meetings, speakers)
        excel = Workbook(data, p["excel_headers"])  # written beside the rendering (a forked process)
        try:
            html = render_html(data, p)
            md = render_markdown(data, p)
            with output_transaction():  # HTML, Markdown and every table appear together, or none of them
                written = write_tables(data, tdir, headers=p["headers"], excel_headers=p["excel_headers"],
                                       excel=excel)
                write_text(html, out)
                write_text(md, md_path)
        finally:
            excel.close()
        for path in [out, md_path, *written.values()]:  # reports are for sharing, whatever the umask
            os.chmod(path, 0o644)
        size_mb = out.stat().st_size / 1e6
        stats.update(meetings=len(data.meetings), sentences=len(data.sentences), html_mb=round(size_mb, 2),
                     tables=len(written))
        if size_mb > SIZE_BUDGET_MB:
            log.warning("report.html is %.1f MB (budget %d MB): lower report.hover_chars / top_speakers",
                        size_mb, SIZE_BUDGET_MB)
    return ReportResult(out, md_path, written, stats)
