"""Report stage: processed tables -> self-contained HTML report, Markdown briefing, CSV/Excel.

Library entry point :func:`build_report` (notebooks/tests); CLI ``policy-topics report``.
Heavy imports (plotly, jinja2, openpyxl) happen inside the functions.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def build_report(input_dir, out, **kwargs: Any):
    """See :func:`pipeline.report.build.build_report`."""
    from pipeline.report.build import build_report as _build

    return _build(input_dir, out, **kwargs)


def load_processed(input_dir, taxonomy=None):
    """See :func:`pipeline.report.data.load_processed` (used by the notebooks)."""
    from pipeline.report.data import load_processed as _load

    return _load(input_dir, taxonomy)


def run_report_cli(args: argparse.Namespace) -> int:
    """``policy-topics report``: params.yaml ``report`` with the command-line overrides."""
    from pipeline.settings import load_settings

    settings = load_settings().report
    if args.headers:
        settings.headers = settings.excel_headers = args.headers
    res = build_report(args.input, args.out, markdown=args.md, tables_dir=args.tables, meetings=args.meeting,
                       speakers=args.speaker, taxonomy=args.taxonomy, settings=settings)
    print(f"wrote {res.html} ({res.stats.get('html_mb')} MB), {res.markdown}, "
          f"{len(res.tables)} tables in {Path(next(iter(res.tables.values()))).parent}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="build the HTML/Markdown report and CSV/Excel tables from pipeline outputs",
        description="Build reports/report.html (self-contained, offline), report.md and tables/ "
                    "from a pipeline output directory, optionally for one meeting or speaker.")
    p.add_argument("--input", required=True, type=Path, help="pipeline output directory (data/processed)")
    p.add_argument("--out", required=True, type=Path, help="HTML report path, e.g. reports/report.html")
    p.add_argument("--md", type=Path, default=None, help="Markdown path (default: OUT with .md)")
    p.add_argument("--tables", type=Path, default=None, help="tables directory (default: tables/ beside OUT)")
    p.add_argument("--meeting", action="append", metavar="ID", help="only this meeting_id (repeatable)")
    p.add_argument("--speaker", action="append", metavar="NAME",
                   help="only this speaker (name as shown, raw label or name; repeatable)")
    p.add_argument("--taxonomy", type=Path, default=None, help="taxonomy YAML (default configs/taxonomy.yaml)")
    p.add_argument("--headers", choices=["en", "ja"], default=None,
                   help="column headers of CSV and Excel exports (default: params report.headers / excel_headers)")
    p.set_defaults(func=run_report_cli)
