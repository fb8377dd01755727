"""CSV tables and one Excel workbook next to the report (``reports/tables/``).

Every text cell goes through :func:`~pipeline.report.sanitize.safe_frame`: cells starting
with ``= + - @`` (or tab/CR, or their full-width forms) get a leading apostrophe so
spreadsheets show them as text instead of evaluating them. CSVs are UTF-8 with BOM
(Excel opens Japanese correctly); headers are English by default or Japanese
(``headers: ja``); the workbook carries a ``columns`` sheet mapping both.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.io import atomic_path, on_commit
from pipeline.report import analysis as A
from pipeline.report.data import ReportData
from pipeline.report.sanitize import safe_frame
from pipeline.settings import default

#: English -> Japanese column headers
JA = {
    "meeting_id": "会議ID", "meeting_title": "会議名", "meeting_date": "開催日", "session": "回",
    "venue": "場所", "source_file": "元ファイル", "attendees": "出席者", "absentees": "欠席者", "agenda": "議事",
    "n_utterances": "発言数", "utterance_id": "発言ID", "order": "順序", "kind": "種別",
    "speaker_raw": "発言者（表記）", "speaker_name": "発言者名", "speaker_role": "役割", "speaker": "発言者",
    "speaker_affiliation": "所属", "speaker_title": "職名", "agenda_item": "議事項目", "text": "本文",
    "page_start": "開始頁", "page_end": "終了頁", "themes": "テーマID", "theme_names": "テーマ名",
    "theme_shares": "テーマ割合", "sentence_id": "文ID", "start": "開始位置", "end": "終了位置",
    "topic_id": "トピックID", "topic_label": "トピック名", "topic_prob": "トピック確率",
    "theme_scores": "テーマスコア", "label": "ラベル", "size": "文数", "terms": "上位語",
    "representative": "代表的な文", "role": "役割", "sentences": "文数", "substantive": "政策的な文数",
    "theme_id": "テーマID", "theme_ja": "テーマ名", "theme_en": "テーマ名（英）", "share": "割合",
    "speakers": "発言者数", "coarse_label": "種類", "mentions": "言及回数",
}


def _cols(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    return df[[c for c in cols if c in df.columns]].copy()


def tables(data: ReportData) -> dict[str, pd.DataFrame]:
    """The exported tables (English column names; theme columns named by theme ID)."""
    names = {t.id: t.ja for t in data.themes}
    s = data.sentences.sort_values(["meeting_id", "order"], kind="stable")
    sentences = _cols(s, ["sentence_id", "meeting_id", "utterance_id", "order", "speaker", "speaker_role",
                          "agenda_item", "text", "themes", "topic_id", "topic_label", "topic_prob"])
    sentences.insert(sentences.columns.get_loc("themes") + 1, "theme_names",
                     s["themes"].map(lambda ts: [names.get(x, x) for x in ts]))
    u = data.utterances
    utterances = _cols(u, ["utterance_id", "meeting_id", "meeting_title", "meeting_date", "order", "kind",
                           "speaker_raw", "speaker_name", "speaker_role", "speaker_affiliation", "speaker_title",
                           "agenda_item", "themes", "text", "page_start", "page_end"])
    out = {"utterances": utterances, "sentences": sentences}
    ti = data.topic_info
    if ti is not None:
        t = _cols(ti, ["topic_id", "label", "size", "terms", "representative"]).sort_values("topic_id")
        if "representative" in t.columns:
            t["representative"] = t["representative"].map(
                lambda reps: [f"{r.get('speaker', '')}: {r.get('text', '')}" for r in reps if isinstance(r, dict)])
        out["topic_info"] = t
    role = s.groupby("speaker")["speaker_role"].agg(lambda x: x.mode().iat[0] if len(x.mode()) else "")
    by_spk = A.theme_by(data, "speaker")
    tbs = by_spk.reset_index()
    tbs.insert(1, "role", tbs["speaker"].map(role))
    tbs.insert(2, "substantive", tbs["speaker"].map(data.substantive().groupby("speaker").size()).fillna(0).astype(int))
    out["theme_by_speaker"] = tbs
    by_role = A.theme_by(data, "speaker_role").reset_index().rename(columns={"speaker_role": "role"})
    out["theme_by_role"] = by_role
    out["theme_coverage"] = A.coverage(data)
    out["meetings"] = _cols(data.meetings, ["meeting_id", "meeting_title", "meeting_date", "session", "venue",
                                            "source_file", "n_utterances", "attendees", "absentees", "agenda"])
    ents = A.entity_top(data, 50)
    if ents is not None:
        out["entities_top"] = ents
    return out


def ja_headers(df: pd.DataFrame, theme_names: dict[str, str]) -> pd.DataFrame:
    return df.rename(columns=lambda c: JA.get(c) or theme_names.get(c) or c)


#: sheets of the workbook, in order
SHEETS = ["utterances", "sentences", "topic_info", "theme_by_speaker", "theme_by_role", "theme_coverage",
          "meetings", "entities_top"]


class Workbook:
    """The Excel workbook of the tables, written by a forked process while the report renders
    (openpyxl is pure Python: ~3-4 s for the 450k cells of full Tokyo, now beside the HTML on the
    second core), or in this process where ``fork`` is unavailable or ``background`` is False.
    The cells are made safe (:func:`safe_frame`) here, before the fork: the child only writes."""

    def __init__(self, data: ReportData, excel_headers: str = default("report.excel_headers"),
                 background: bool = True):
        import multiprocessing
        import tempfile

        self.tabs = tables(data)
        theme_names = {t.id: t.ja for t in data.themes}
        sheets = []
        for name in SHEETS:
            if name not in self.tabs:
                continue
            df = self.tabs[name]
            df = ja_headers(df, theme_names) if excel_headers == "ja" else df
            widths = [60 if str(col) in ("text", "本文", "representative", "代表的な文") else 16 for col in df.columns]
            sheets.append((name, safe_frame(df, excel=True), widths))
        cols = sorted({c for df in self.tabs.values() for c in df.columns})
        mapping = pd.DataFrame({"column": cols, "列名": [JA.get(c) or theme_names.get(c) or c for c in cols]})
        sheets.append(("columns", safe_frame(mapping, excel=True), None))
        fd, name = tempfile.mkstemp(prefix="policy-topics-", suffix=".xlsx")
        os.close(fd)
        self.tmp = Path(name)
        self.proc = None
        if background and "fork" in multiprocessing.get_all_start_methods():
            self.proc = multiprocessing.get_context("fork").Process(target=_save_workbook, args=(sheets, self.tmp),
                                                                    daemon=True)
            self.proc.start()
        else:
            _save_workbook(sheets, self.tmp)

    def install(self, path: Path) -> None:
        """Wait for the workbook and move it to ``path`` (an atomic_path temp file)."""
        if self.proc is not None:
            self.proc.join()
            if self.proc.exitcode != 0:
                raise PipelineError(path, f"writing the Excel workbook failed (exit code {self.proc.exitcode})")
        shutil.move(self.tmp, path)
        _reproducible_xlsx(path)

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.tmp.unlink(missing_ok=True)


def _save_workbook(sheets: list, path: Path) -> None:
    from openpyxl import Workbook as XLWorkbook

    # write-only workbook, rows streamed: pandas' to_excel builds every cell object first
    # (~6 of report's 14 CPU-s on full Tokyo); same cells and layout
    wb = XLWorkbook(write_only=True)
    for name, df, widths in sheets:
        _write_sheet(wb, name, df, widths)
    wb.save(path)


def write_tables(data: ReportData, out_dir: str | Path, headers: str = default("report.headers"),
                 excel_headers: str = default("report.excel_headers"), workbook: str = "report.xlsx",
                 excel: Workbook | None = None) -> dict[str, Any]:
    """Write ``<name>.csv`` per table and one workbook; returns {name: path}. ``excel``: the
    workbook started earlier (:class:`Workbook`, e.g. in the background), else written here."""
    out_dir = Path(out_dir)
    theme_names = {t.id: t.ja for t in data.themes}
    own = excel is None
    excel = Workbook(data, excel_headers, background=False) if own else excel
    tabs = excel.tabs
    written: dict[str, Any] = {}
    try:
        for name, df in tabs.items():
            df = ja_headers(df, theme_names) if headers == "ja" else df
            path = out_dir / f"{name}.csv"
            with atomic_path(path) as tmp:
                safe_frame(df).to_csv(tmp, index=False, encoding="utf-8-sig")
            written[name] = path
        path = out_dir / workbook
        with atomic_path(path) as tmp:
            excel.install(tmp)
        written["workbook"] = path
    finally:
        if own:
            excel.close()

    def drop_stale():  # a table absent from this run (e.g. no entities) must not survive from an older one
        for name in SHEETS:
            stale = out_dir / f"{name}.csv"
            if name not in written and stale.exists():
                stale.unlink()

    on_commit(drop_stale)
    return written


def _excel_column(values: pd.Series) -> list:
    """Cell values as pandas' ``to_excel`` writes them: missing -> empty, numpy scalars -> Python
    numbers, +-inf -> "inf" / "-inf", dates and times as they are, anything else as text."""
    import datetime

    import numpy as np

    out = []
    for v in values.astype(object).tolist():
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v):
            out.append(None)
        elif isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
        elif isinstance(v, (int, np.integer)):
            out.append(int(v))
        elif isinstance(v, (float, np.floating)):
            out.append("inf" if v == np.inf else "-inf" if v == -np.inf else float(v))
        elif isinstance(v, str):
            out.append(v or None)
        elif isinstance(v, (datetime.datetime, datetime.date)):
            out.append(v)
        else:
            out.append(str(v))
    return out


def _write_sheet(wb, name: str, df: pd.DataFrame, widths: list[int] | None) -> None:
    """One sheet of a write-only workbook, as ``to_excel`` wrote it (plain header row); with
    ``widths`` the header row is frozen and the columns get those widths."""
    ws = wb.create_sheet(name)
    if widths is not None:
        ws.freeze_panes = "A2"
        for i, width in enumerate(widths, start=1):
            ws.column_dimensions[_col_letter(i)].width = width
    ws.append([str(c) for c in df.columns])
    for row in zip(*(_excel_column(df[c]) for c in df.columns)):
        ws.append(row)


#: the one timestamp written into the workbook (openpyxl stamps "now" into docProps/core.xml and
#: every zip entry, so two runs on the same data gave different bytes)
FIXED_TIME = (2000, 1, 1, 0, 0, 0)


def _reproducible_xlsx(real: Path) -> None:
    """Rewrite a written workbook with fixed timestamps (same data -> same bytes)."""
    import re
    import zipfile

    with zipfile.ZipFile(real) as zin:
        entries = [(info, zin.read(info.filename)) for info in zin.infolist()]
    stamp = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*FIXED_TIME)
    with zipfile.ZipFile(real, "w", zipfile.ZIP_DEFLATED) as zout:
        for info, data in entries:
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                              lambda m: m.group(1) + stamp.encode() + m.group(2), data)
            zi = zipfile.ZipInfo(info.filename, date_time=FIXED_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = info.external_attr
            zout.writestr(zi, data)


def _col_letter(i: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(i)
