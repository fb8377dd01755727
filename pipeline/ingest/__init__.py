"""Ingest stage: minutes in any supported shape -> one clean utterance table.

Library: :func:`ingest_paths`. CLI: ``policy-topics ingest FILE_OR_DIR... -o utterances.parquet
[--meetings meetings.parquet] [--report ingest.json] [--format auto|pdf_text|pdf|...]``.

Formats live in :mod:`pipeline.ingest.formats` (one module each, auto-detected);
cleaning in :mod:`pipeline.ingest.clean`; speaker labels in :mod:`pipeline.ingest.speakers`;
dates, header and agenda parsing in :mod:`pipeline.ingest.structure`; reading and decoding
files in the stage-free :mod:`pipeline.textio`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import MultiFileError, PipelineError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("policy_topics.ingest")

STAGE = "ingest"


@dataclass
class IngestResult:
    utterances: pd.DataFrame
    meetings: pd.DataFrame
    report: dict


def collect_inputs(paths, skipped: list[dict] | None = None) -> list[tuple[Path, str]]:
    """Expand files/directories into (path, source_file) pairs; source_file is relative to the
    directory given (or the file name for a file given directly). Hidden files and *.dvc are skipped.

    Symlinked directories are followed once (a link back to a directory already walked is not
    walked again); dangling links and special files (FIFOs, devices) inside a directory are
    appended to ``skipped`` as ``{"path", "reason"}`` and logged, never dropped without a word.
    A path given directly must be a regular file or a directory.
    """
    import os
    import stat

    out: list[tuple[Path, str]] = []
    skipped = skipped if skipped is not None else []

    def skip(rel: str, reason: str) -> None:
        skipped.append({"path": rel, "reason": reason})
        log.warning("skipped %s: %s", rel, reason)

    for p in map(Path, paths):
        if p.is_dir():
            seen: set[tuple[int, int]] = set()
            found: list[tuple[Path, str]] = []
            for root, dirs, files in os.walk(p, followlinks=True):
                st = os.stat(root)
                rel_root = Path(root).relative_to(p)
                if (st.st_dev, st.st_ino) in seen:
                    skip(rel_root.as_posix(), "symlink to a directory already read (loop)")
                    dirs[:] = []
                    continue
                seen.add((st.st_dev, st.st_ino))
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):  # (dangling links are among the files)
                    rel = (rel_root / name).as_posix()
                    f = Path(root) / name
                    if name.startswith(".") or f.suffix == ".dvc":
                        continue
                    try:
                        mode = f.stat().st_mode
                    except OSError:
                        skip(rel, "dangling symlink" if f.is_symlink() else "cannot stat")
                        continue
                    if stat.S_ISREG(mode):
                        found.append((f, rel))
                    else:
                        skip(rel, "not a regular file (FIFO, device or socket)")
            out += sorted(found, key=lambda x: Path(x[1]).parts)
        elif p.is_file():
            out.append((p, p.name))
        elif p.exists():
            raise PipelineError(p, "not a regular file or directory (a device, FIFO or socket)")
        elif p.is_symlink():
            raise PipelineError(p, "dangling symlink (its target does not exist)")
        else:
            raise PipelineError(p, "no such file or directory")
    return out


def ingest_paths(paths, fmt: str | None = None, *, cache: bool | None = None, cache_dir=None,
                 settings=None) -> IngestResult:
    """Read every file (directories recursively) -> :class:`IngestResult`.

    ``settings``: :class:`~pipeline.settings.IngestSettings`, a dict of overrides or None
    (params.yaml ``ingest``); ``fmt`` / ``cache`` override its ``format`` / ``cache``.

    Raises :class:`MultiFileError` listing every bad file (nothing is returned then).
    """
    import pandas as pd

    from pipeline.ingest.core import INT_COLUMNS, REPORT_COLUMNS, empty_tables, ingest_file
    from pipeline.ingest.formats import format_names
    from pipeline.partition import Partition, hash_file, map_partitions

    if isinstance(paths, (str, Path)):
        paths = [paths]
    from pipeline.settings import resolve

    settings = resolve(STAGE, settings)
    fmt = fmt or settings.format
    cache = settings.cache if cache is None else cache
    if fmt not in ("auto", *format_names()):
        raise PipelineError(None, f"unknown format {fmt!r} (known: auto, {', '.join(format_names())})")
    skipped: list[dict] = []
    inputs = collect_inputs(paths, skipped)
    if not inputs:
        raise PipelineError(", ".join(map(str, paths)), "no input files")
    from pipeline.ingest.formats import companion_files

    # a companion file read along with an input (DiscussNet *_metadata.json) is part of its cache key
    parts = [Partition(name=rel, payload=(str(p), rel, fmt),
                       digest=":".join([hash_file(p), rel, *(hash_file(c) for c in companion_files(p))]))
             for p, rel in inputs]
    try:
        results = map_partitions(ingest_file, parts, stage=STAGE, cache=cache, cache_dir=cache_dir,
                                 params={"fmt": fmt})
    except MultiFileError:
        raise
    except PipelineError as exc:  # one bad file: same shape as several
        raise MultiFileError([exc]) from None
    tables = empty_tables()
    good = [r for r in results if "utterances" in r]
    utts = pd.concat([tables["utterances"], *[r["utterances"] for r in good]], ignore_index=True)
    meets = pd.concat([tables["meetings"], *[r["meetings"] for r in good]], ignore_index=True)
    rep = pd.concat([r["report"] for r in good], ignore_index=True)
    ids = meets["meeting_id"]
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        files = meets.loc[ids == dup, "source_file"].astype(str).tolist()
        raise PipelineError(files[-1], f"duplicate meeting_id {dup!r}: also read from {files[0]}"
                                       + (" (two input files with the same stem?)" if files[0] != files[-1] else ""))
    for col in INT_COLUMNS:
        utts[col] = utts[col].astype("Int64")
    meets["session"] = meets["session"].astype("Int64")
    numeric = [c for c in REPORT_COLUMNS if c.startswith(("n_", "chars_"))]
    totals = {c: int(rep[c].sum()) for c in numeric}
    report = {"files": len(rep), "meetings": len(meets), "utterances": len(utts),
              "speech_turns": int((utts["kind"] == "speech").sum()),
              "distinct_speakers": int(utts.loc[utts["kind"] == "speech", "speaker_raw"].nunique()),
              "rows_by_kind": {str(k): int(v) for k, v in utts["kind"].value_counts().items()},
              "files_by_format": {str(k): int(v) for k, v in rep["format"].value_counts().items()},
              "totals": totals,
              "accounting_ok": bool(totals["chars_in"] == sum(v for k, v in totals.items() if k.startswith("chars_")
                                                              and k != "chars_in")
                                    and all(v >= 0 for v in totals.values())
                                    and bool((rep[numeric] >= 0).all().all())),
              "skipped": skipped,
              "per_file": {r["source_file"]: {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()
                                              if k != "source_file"}
                           for r in rep.to_dict("records")}}
    return IngestResult(utts, meets, report)


def run_ingest_cli(args) -> int:
    """``policy-topics ingest``: params.yaml ``ingest`` with the command-line overrides."""
    from pipeline.io import output_transaction, stage_timer, write_json, write_parquet
    from pipeline.settings import load_settings

    settings = load_settings().ingest
    if args.format:
        settings.format = args.format
    if args.no_cache:
        settings.cache = False
    with stage_timer(STAGE) as stats:
        res = ingest_paths(args.inputs, settings=settings)
        with output_transaction():  # the tables and the report appear together, or none of them
            write_parquet(res.utterances, args.output)
            if args.meetings:
                write_parquet(res.meetings, args.meetings)
            if args.report:
                write_json(res.report, args.report)
        stats.update(files=res.report["files"], meetings=res.report["meetings"],
                     speech_turns=res.report["speech_turns"], utterances=res.report["utterances"])
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("ingest", help="minutes files/directories -> utterances.parquet",
                              description="Read minutes (PDF, PDF-extracted text, Tokyo Assembly / Kokkai API / "
                                          "DiscussNet JSON, 会議録検索システム text, DB-Search and other HTML pages, "
                                          "審議会 and '名前：発言' text) into one utterance table.")
    p.add_argument("inputs", nargs="+", metavar="FILE", help="input files or directories (recursed)")
    p.add_argument("-o", "--output", required=True, help="utterances parquet to write")
    p.add_argument("--meetings", help="meetings parquet to write")
    p.add_argument("--report", help="cleaning/accounting report JSON to write")
    p.add_argument("--format", default=None,
                   help="auto (default: params.yaml ingest.format) or one of: pdf, pdf_text, tokyo_assembly_json, "
                        "discussnet_ssp_json, kokkai_json, dbsearch_html, html, kensakusystem_text, shingikai_text, "
                        "colon_text")
    p.add_argument("--no-cache", action="store_true", help="recompute every file (ignore .cache/ingest)")
    p.set_defaults(func=run_ingest_cli)
