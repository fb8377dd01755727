"""Hostile and unusual inputs (issue #13): every case ends in a one-line ``FILE: problem`` error
with exit 2 and no partial outputs, or in correct output. Never a traceback, never a silent loss.

Inputs are built in ``tmp_path`` (no binary fixtures in the repo). Cases that need a trained
model (``tag``) or pipeline outputs (``report``) use the shared session fixtures of conftest.py.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "raw" / "mic-chiiki-ict-06_2024-04-24.txt"
ERR = "policy-topics: error: "


# ------------------------------------------------------------------ helpers
def cli(argv, capsys) -> tuple[int, list[str], str]:
    """Run the CLI in-process -> (exit code, stderr error lines, stdout)."""
    capsys.readouterr()
    code = main(["-q", *map(str, argv)])
    cap = capsys.readouterr()
    errors = [ln for ln in cap.err.splitlines() if ln.startswith(ERR)]
    assert "Traceback" not in cap.err
    return code, errors, cap.out


def assert_one_line_error(code, errors, path, problem: str):
    """The contract: exit 2 and exactly one line ``policy-topics: error: FILE: problem``."""
    assert code == 2, errors
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{ERR}{path}: "), errors
    assert re.search(problem, errors[0]), errors


def ingest_cli(tmp_path, capsys, *inputs, extra=()):
    out = tmp_path / "out" / "utterances.parquet"
    code, errors, _ = cli(["ingest", *inputs, "-o", out, "--meetings", tmp_path / "out" / "meetings.parquet",
                           "--report", tmp_path / "out" / "ingest.json", "--no-cache", *extra], capsys)
    return code, errors, out


def ingest_ok(path) -> IngestResult:  # noqa: F821
    from pipeline.ingest import ingest_paths

    res = ingest_paths([path], cache=False)
    assert res.report["accounting_ok"], res.report["totals"]
    assert all(v >= 0 for v in res.report["totals"].values()), res.report["totals"]
    return res


def speech(res) -> list[tuple[str, str]]:
    u = res.utterances[res.utterances["kind"] == "speech"]
    return list(zip(u["speaker_raw"], u["text"]))


def tokyo_json(rows, **meeting) -> str:
    m = {"Date": "2020/2/19", "Prefecture": "東京都", "ProceedingTitle": "令和２年総務委員会", "URL": "https://example.org",
         "Proceeding": [{"Speaker": "null", "Utterance": "第一委員会室\n出席委員　三名"}, *rows]}
    m.update(meeting)
    return json.dumps([m], ensure_ascii=False)


def kokkai_json(records) -> str:
    base = {"issueID": "121104024X00120240410", "session": 213, "nameOfHouse": "衆議院", "nameOfMeeting": "総務委員会",
            "issue": "第12号", "date": "2024-04-10"}
    return json.dumps({"numberOfRecords": len(records), "speechRecord": [{**base, **r} for r in records]},
                      ensure_ascii=False)


COLON = "議事録\n山田座長：開会します。\n田中委員：私は反対です。\n"
OTEXT = "第１回　検討会\n○山田座長　開会します。\n○田中委員　私は反対です。\n"


# ------------------------------------------------------------------ line breaks: one rule everywhere
@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85", "\x0b", "\x1c", "\r", "\r\n"])
def test_every_line_break_separates_turns(tmp_path, sep):
    p = tmp_path / "minutes.txt"
    p.write_text(f"○山田座長　開会します。{sep}○田中委員　私は反対です。{sep}○鈴木委員　賛成です。{sep}",
                 encoding="utf-8", newline="")
    res = ingest_ok(p)
    assert speech(res) == [("山田座長", "開会します。"), ("田中委員", "私は反対です。"), ("鈴木委員", "賛成です。")]


def test_lone_cr_in_json_text_never_reaches_the_tables(tmp_path):
    p = tmp_path / "tokyo.json"
    evil = "光ファイバの整備を\r=1+2+cmd|' /C calc'!A0進めます。\r\n@SUM(A1)"
    p.write_text(tokyo_json([{"Speaker": "委員長（山田太郎君）", "Utterance": evil}]), encoding="utf-8")
    res = ingest_ok(p)
    texts = res.utterances["text"].tolist()
    assert not any("\r" in t for t in texts)
    assert any("光ファイバの整備を" in t and "進めます。" in t for t in texts)


# ------------------------------------------------------------------ CSV / Excel formula injection
FORMULA = re.compile(r"^[=+\-@\t＝＋－＠]")


def spreadsheet_rows(csv_text: str) -> list[list[str]]:
    """How LibreOffice's default CSV import splits a file: quoted fields keep their line breaks,
    an unquoted CR, LF or CRLF ends the row."""
    rows, row, field, quoted, i = [], [], [], False, 0
    while i < len(csv_text):
        ch = csv_text[i]
        if quoted:
            if ch == '"' and csv_text[i + 1:i + 2] == '"':
                field.append('"')
                i += 1
            elif ch == '"':
                quoted = False
            else:
                field.append(ch)
        elif ch == '"' and not field:
            quoted = True
        elif ch == ",":
            row.append("".join(field))
            field = []
        elif ch in "\r\n":
            row.append("".join(field))
            rows.append(row)
            row, field = [], []
            if ch == "\r" and csv_text[i + 1:i + 2] == "\n":
                i += 1
        else:
            field.append(ch)
        i += 1
    if field or row:
        row.append("".join(field))
        rows.append(row)
    return rows


EVIL_CELLS = ["=1+2", "光ファイバの整備を\r=1+2+cmd|' /C calc'!A0進めます。", "a\n-2+3", "b\r\n@SUM(A1)",
              "c\u2028+1", "\t=x", "＝１＋１", "ok\r\r=HYPERLINK(\"http://x\")", "-3 は負の数"]


def test_no_csv_cell_or_cell_line_starts_a_formula():
    from pipeline.report.sanitize import safe_frame

    df = pd.DataFrame({"text": EVIL_CELLS, "n": range(len(EVIL_CELLS))})
    out = safe_frame(df).to_csv(index=False)
    rows = spreadsheet_rows(out)
    assert len(rows) == len(EVIL_CELLS) + 1  # no cell was split into extra rows
    for row in rows:
        for cell in row:
            for line in cell.split("\n"):
                assert not FORMULA.match(line), (cell, line)
    # the text survives (an apostrophe in front of formula-like lines, line breaks as \n)
    back = list(csv.reader(io.StringIO(out)))
    assert back[2][0] == "光ファイバの整備を\n'=1+2+cmd|' /C calc'!A0進めます。"
    assert back[-1][0] == "'-3 は負の数" and back[1][1] == "0"


def test_xlsx_cells_are_text_not_formulas(tmp_path):
    import openpyxl

    from pipeline.report.sanitize import safe_frame

    p = tmp_path / "x.xlsx"
    safe_frame(pd.DataFrame({"text": EVIL_CELLS}), excel=True).to_excel(p, index=False)
    ws = openpyxl.load_workbook(p).active
    for (cell,) in ws.iter_rows(min_row=2):
        assert cell.data_type == "s", cell.value
        assert not any(FORMULA.match(line) for line in str(cell.value).split("\n")), cell.value


# ------------------------------------------------------------------ nothing lost after a closing mark
def test_closing_mark_ends_a_meeting_not_the_file(tmp_path):
    one = ingest_ok(SAMPLE)
    n = len(speech(one))
    twice = tmp_path / "two-meetings.txt"
    body = SAMPLE.read_text(encoding="utf-8")
    assert "了" in body
    twice.write_text(body + body, encoding="utf-8")
    res = ingest_ok(twice)
    assert len(speech(res)) == 2 * n  # 57 of 114 before: the second copy was booked as 'other'
    assert res.utterances["meeting_id"].nunique() == 2 and len(res.meetings) == 2
    assert speech(res)[n:] == speech(one)
    assert res.report["totals"]["chars_other"] == 2 * one.report["totals"]["chars_other"]


def test_trailing_text_after_the_closing_mark_is_accounted(tmp_path):
    p = tmp_path / "m.txt"
    p.write_text(OTEXT + "── 了 ──\n（配布資料一覧）\n", encoding="utf-8")
    res = ingest_ok(p)
    assert speech(res) == [("山田座長", "開会します。"), ("田中委員", "私は反対です。")]
    assert res.report["totals"]["chars_other"] == len("── 了 ──") + len("（配布資料一覧）")


# ------------------------------------------------------------------ accounting cannot pass negative
def test_html_without_markup_accounts_exactly(tmp_path):
    p = tmp_path / "plain.html"
    p.write_text("○山田座長　開会します。\n" * 500, encoding="utf-8")
    res = ingest_ok(p)  # chars_other was -1000 with accounting_ok true
    assert len(speech(res)) == 500
    assert res.report["totals"]["chars_other"] == 0


def test_negative_bucket_fails_the_accounting_check():
    from pipeline.ingest.clean import Accounting
    from pipeline.ingest.core import check_accounting

    acct = Accounting(chars_in=10)
    acct.add("speech", 12)
    acct.add("other", -2)
    with pytest.raises(PipelineError, match="x.html: internal accounting error: chars_other is -2"):
        check_accounting(acct, "x.html")
