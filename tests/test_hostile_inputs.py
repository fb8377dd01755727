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
from pipeline.errors import MultiFileError, PipelineError

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


# ------------------------------------------------------------------ wrong-typed JSON fields: one line, exit 2
TOKYO_BAD = {
    "title_number": (tokyo_json([{"Speaker": "委員長（山田太郎君）", "Utterance": "開会します。"}], ProceedingTitle=12),
                     r"meeting 0: 'ProceedingTitle' must be a string or null, not 12"),
    "date_number": (tokyo_json([{"Speaker": "委員長（山田太郎君）", "Utterance": "開会します。"}], Date=20200219),
                    r"meeting 0: 'Date' must be a string or null, not 20200219"),
    "speaker_number": (tokyo_json([{"Speaker": 7, "Utterance": "開会します。"}]),
                       r"meeting 0 row 1: 'Speaker' must be a string or null, not 7"),
    "utterance_list": (tokyo_json([{"Speaker": "委員長（山田太郎君）", "Utterance": ["開会"]}]),
                       r"meeting 0 row 1: 'Utterance' must be a string or null"),
    "proceeding_object": (json.dumps([{"Date": "2020/2/19", "Proceeding": {"a": 1}}]), r"Proceeding"),
    "all_null_speech": (tokyo_json([{"Speaker": "委員長（山田太郎君）", "Utterance": None},
                                    {"Speaker": "山田委員", "Utterance": "  "}]),
                        r"meeting 0: no speech \(the Utterance of every speaker row is null or empty\)"),
}
KOKKAI_BAD = {
    "speech_order_abc": (kokkai_json([{"speechOrder": "abc", "speech": "○山田委員長　開会します。"}]),
                         r"speechRecord 0 of 121104024X00120240410: 'speechOrder' must be a whole number, not 'abc'"),
    "speech_order_null": (kokkai_json([{"speechOrder": 0, "speech": "会議録情報"},
                                       {"speechOrder": None, "speech": "○山田委員長　開会します。"}]),
                          r"speechRecord 1 of .*: 'speechOrder' must be a whole number, not null"),
    "speech_number": (kokkai_json([{"speechOrder": 1, "speech": 42}]),
                      r"'speech' must be a string or null, not 42"),
    "speaker_object": (kokkai_json([{"speechOrder": 1, "speech": "○山田委員長　開会します。", "speaker": {"x": 1}}]),
                       r"'speaker' must be a string or null"),
    "records_not_objects": ('{"meetingRecord": [{"issueID": "X", "speechRecord": [1, 2]}]}',
                            r"'speechRecord' must be a list of objects"),
}


@pytest.mark.parametrize("case", sorted(TOKYO_BAD) + sorted(KOKKAI_BAD))
def test_wrong_typed_json_fields_are_one_line_errors(tmp_path, capsys, case):
    text, problem = {**TOKYO_BAD, **KOKKAI_BAD}[case]
    p = tmp_path / f"{case}.json"
    p.write_text(text, encoding="utf-8")
    code, errors, out = ingest_cli(tmp_path, capsys, p)
    assert_one_line_error(code, errors, f"{case}.json", problem)
    assert not out.parent.exists()


def test_directory_run_reports_every_bad_file(tmp_path, capsys):
    d = tmp_path / "raw"
    d.mkdir()
    for case in ("title_number", "speaker_number"):
        (d / f"{case}.json").write_text(TOKYO_BAD[case][0], encoding="utf-8")
    (d / "speech_order_abc.json").write_text(KOKKAI_BAD["speech_order_abc"][0], encoding="utf-8")
    (d / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    (d / "good.txt").write_text(OTEXT, encoding="utf-8")
    code, errors, out = ingest_cli(tmp_path, capsys, d)
    assert code == 2 and len(errors) == 4, errors  # one bad file no longer hides the others
    assert {e.split(": ")[2] for e in errors} == {"deep.json", "title_number.json", "speaker_number.json",
                                                  "speech_order_abc.json"}
    assert not out.parent.exists()


def test_deeply_nested_json_is_a_one_line_error(tmp_path, capsys):
    p = tmp_path / "deep.json"
    p.write_text('{"speechRecord": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    code, errors, _ = ingest_cli(tmp_path, capsys, p)
    assert_one_line_error(code, errors, "deep.json", "nested too deeply")


def test_kokkai_null_speech_order_is_not_read_as_the_header(tmp_path):
    from pipeline.ingest import ingest_paths

    p = tmp_path / "k.json"
    p.write_text(KOKKAI_BAD["speech_order_null"][0], encoding="utf-8")
    with pytest.raises(MultiFileError) as err:
        ingest_paths([p], cache=False)
    assert err.value.lines() == ["k.json: speechRecord 1 of 121104024X00120240410: 'speechOrder' must be a whole "
                                 "number, not null"]


def test_null_utterances_among_speech_make_no_empty_rows(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(tokyo_json([{"Speaker": "委員長（山田太郎君）", "Utterance": "開会します。"},
                             {"Speaker": "山田委員", "Utterance": None}]), encoding="utf-8")
    res = ingest_ok(p)
    assert speech(res) == [("委員長（山田太郎君）", "開会します。")]
    assert (res.utterances["text"].str.len() > 0).all()


# ------------------------------------------------------------------ junk bytes, encodings, odd files
def test_nul_bytes_after_the_first_4kb_are_not_speech(tmp_path, capsys):
    p = tmp_path / "nul.txt"
    p.write_bytes((OTEXT * 200).encode("utf-8") + b"\x00\x00\x01\x02" + "○鈴木委員　賛成です。\n".encode())
    assert p.read_bytes().index(b"\x00") > 4096
    code, errors, _ = ingest_cli(tmp_path, capsys, p)
    assert_one_line_error(code, errors, "nul.txt", r"NUL byte at character [0-9,]+: binary data")


def test_nul_escape_inside_json_text_is_rejected(tmp_path, capsys):
    p = tmp_path / "t.json"
    p.write_text(tokyo_json([{"Speaker": "委員長（山田太郎君）", "Utterance": "開会\u0000します。"}]), encoding="utf-8")
    code, errors, _ = ingest_cli(tmp_path, capsys, p)
    assert_one_line_error(code, errors, "t.json", "NUL character in text")


@pytest.mark.parametrize("enc", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_read(tmp_path, enc):
    p = tmp_path / "m.txt"
    p.write_bytes(OTEXT.encode(enc))
    res = ingest_ok(p)
    assert speech(res) == [("山田座長", "開会します。"), ("田中委員", "私は反対です。")]
    assert res.report["per_file"]["m.txt"]["encoding"] == enc


def test_dev_zero_is_not_a_regular_file(tmp_path, capsys):
    code, errors, _ = ingest_cli(tmp_path, capsys, "/dev/zero")
    assert_one_line_error(code, errors, "/dev/zero", "not a regular file or directory")


def test_fifo_inside_a_directory_is_listed_as_skipped(tmp_path, capsys):
    import os

    d = tmp_path / "raw"
    d.mkdir()
    (d / "a.txt").write_text(OTEXT, encoding="utf-8")
    os.mkfifo(d / "pipe.txt")
    code, errors, out = ingest_cli(tmp_path, capsys, d)
    assert code == 0, errors
    rep = json.loads((out.parent / "ingest.json").read_text(encoding="utf-8"))
    assert rep["skipped"] == [{"path": "pipe.txt", "reason": "not a regular file (FIFO, device or socket)"}]


def test_symlinked_directories_followed_once_and_dangling_links_listed(tmp_path, capsys):
    d = tmp_path / "raw"
    (d / "real").mkdir(parents=True)
    (d / "real" / "a.txt").write_text(OTEXT, encoding="utf-8")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "b.txt").write_text(OTEXT.replace("山田", "川口"), encoding="utf-8")
    (d / "linked").symlink_to(other, target_is_directory=True)
    (d / "loop").symlink_to(d, target_is_directory=True)
    (d / "gone.txt").symlink_to(tmp_path / "missing.txt")
    code, errors, out = ingest_cli(tmp_path, capsys, d)
    assert code == 0, errors
    rep = json.loads((out.parent / "ingest.json").read_text(encoding="utf-8"))
    assert sorted(rep["per_file"]) == ["linked/b.txt", "real/a.txt"]
    assert {s["path"]: s["reason"] for s in rep["skipped"]} == {
        "gone.txt": "dangling symlink", "loop": "symlink to a directory already read (loop)"}


def test_dangling_link_given_directly(tmp_path, capsys):
    (tmp_path / "gone.txt").symlink_to(tmp_path / "missing.txt")
    code, errors, _ = ingest_cli(tmp_path, capsys, tmp_path / "gone.txt")
    assert_one_line_error(code, errors, tmp_path / "gone.txt", "dangling symlink")


def test_duplicate_meeting_id_names_both_files(tmp_path, capsys):
    for sub in ("a", "b"):
        (tmp_path / "raw" / sub).mkdir(parents=True)
        (tmp_path / "raw" / sub / "m.txt").write_text(OTEXT, encoding="utf-8")
    code, errors, _ = ingest_cli(tmp_path, capsys, tmp_path / "raw")
    assert_one_line_error(code, errors, "b/m.txt", r"duplicate meeting_id 'm': also read from a/m.txt")


def test_file_name_with_a_newline_stays_one_line(tmp_path, capsys):
    p = tmp_path / "bad\nname\x1b[31m.txt"
    p.write_bytes(b"")
    code, errors, _ = ingest_cli(tmp_path, capsys, p)
    assert_one_line_error(code, errors, "bad\\nname\\x1b[31m.txt", "empty file")


# ------------------------------------------------------------------ tag: decoding, records, odd inputs
CYBER = "自治体のCSIRTの体制強化とインシデント対応の訓練を進めます。"
DATA = "データ連携基盤を広域で共同利用する。"


def tag_cli(capsys, monkeypatch, model_path, file=None, stdin: bytes | None = None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code, errors, out = cli(["tag", file if file is not None else "-", "--model", model_path], capsys)
    return code, errors, [json.loads(x) for x in out.splitlines()]


@pytest.mark.parametrize("enc", ["cp932", "utf-16", "utf-16-le", "euc_jp", "utf-8-sig"])
def test_tag_decodes_input_as_ingest_does(tmp_path, capsys, monkeypatch, theme_model_path, enc):
    p = tmp_path / "in.txt"
    p.write_bytes(f"{CYBER}\n{DATA}\n".encode(enc))
    code, errors, out = tag_cli(capsys, monkeypatch, theme_model_path, p)
    assert code == 0, errors
    assert [o["text"] for o in out] == [CYBER, DATA]  # not mojibake
    assert "cybersecurity" in out[0]["themes"]


def test_tag_lone_cr_does_not_split_a_record(tmp_path, capsys, monkeypatch, theme_model_path):
    code, errors, out = tag_cli(capsys, monkeypatch, theme_model_path,
                                stdin=f"{CYBER}\r{DATA}\r\n{DATA}\n".encode())
    assert code == 0, errors
    assert [o["text"] for o in out] == [f"{CYBER}\r{DATA}", DATA]


def test_tag_undecodable_input_is_an_error_not_mojibake(tmp_path, capsys, monkeypatch, theme_model_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"\xff\xfe\x80\x81 abc \xff\x90\n" * 3 + b"\x81")
    code, errors, out = tag_cli(capsys, monkeypatch, theme_model_path, p)
    assert_one_line_error(code, errors, p, "cannot decode|ambiguous encoding|not valid UTF-16")
    assert out == []


@pytest.mark.parametrize("case", ["directory", "dev_zero", "missing"])
def test_tag_on_a_non_file(tmp_path, capsys, monkeypatch, theme_model_path, case):
    target, problem = {"directory": (tmp_path, "is a directory"), "dev_zero": ("/dev/zero", "not a regular file"),
                       "missing": (tmp_path / "none.txt", "file not found")}[case]
    code, errors, out = tag_cli(capsys, monkeypatch, theme_model_path, target)
    assert_one_line_error(code, errors, target, problem)
    assert out == []


def test_tag_empty_input_writes_nothing(capsys, monkeypatch, theme_model_path):
    code, errors, out = tag_cli(capsys, monkeypatch, theme_model_path, stdin=b"")
    assert (code, errors, out) == (0, [], [])


def test_tag_a_very_long_line_in_pieces(tmp_path, capsys, monkeypatch, theme_model_path):
    from pipeline.classify.tagging import MAX_TAG_BYTES, tag_texts

    long = (DATA + "次に、") * 4000 + CYBER  # ~130 KB on one line
    assert len(long.encode("utf-8")) > 30 * MAX_TAG_BYTES
    code, errors, out = tag_cli(capsys, monkeypatch, theme_model_path, stdin=(long + "\n" + DATA + "\n").encode())
    assert code == 0, errors
    assert len(out) == 2 and out[0]["text"] == long
    # themes of the pieces: the data-sharing text and the cyber sentence at the very end
    assert {"data_sharing", "cybersecurity"} <= set(out[0]["themes"])
    assert out[1] == tag_texts([DATA], model_path=theme_model_path)[0]  # short lines: exactly as before


def test_tag_into_a_closed_pipe_stops_quietly(tmp_path, theme_model_path):
    import subprocess
    import sys

    p = tmp_path / "in.txt"
    p.write_text((DATA + "\n") * 3000, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "-q", "tag", str(p), "--model", str(theme_model_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    first = proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert json.loads(first)["text"] == DATA
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""


# ------------------------------------------------------------------ outputs: all or nothing, one-line errors
@pytest.mark.parametrize("case", ["report_is_dir", "report_parent_is_file", "report_name_too_long"])
def test_ingest_output_problem_leaves_previous_outputs_untouched(tmp_path, capsys, case):
    src = tmp_path / "m.txt"
    src.write_text(OTEXT, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "utterances.parquet").write_bytes(b"previous run")
    (out / "file").write_text("x")
    (out / "dir").mkdir()
    report = {"report_is_dir": out / "dir", "report_parent_is_file": out / "file" / "ingest.json",
              "report_name_too_long": out / ("r" * 300 + ".json")}[case]
    code, errors, _ = cli(["ingest", src, "-o", out / "utterances.parquet", "--meetings", out / "meetings.parquet",
                           "--report", report, "--no-cache"], capsys)
    assert_one_line_error(code, errors, report, "output path is a directory|a parent path is not a directory|"
                                                "file name too long")
    assert (out / "utterances.parquet").read_bytes() == b"previous run"  # was replaced before the report failed
    assert sorted(p.name for p in out.iterdir()) == ["dir", "file", "utterances.parquet"]


# ------------------------------------------------------------------ PDF: bombs and encryption (figures: benchmarks/hostile_inputs.py)
def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hostile_bench", ROOT / "benchmarks" / "hostile_inputs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pdf_deflate_bomb_is_refused_before_inflating(tmp_path, capsys, monkeypatch):
    from pipeline.ingest.formats import pdf

    monkeypatch.setattr(pdf, "MAX_PDF_INFLATED", 4 * 1024 * 1024)  # the real limit is 128 MB; same code path
    p = tmp_path / "bomb.pdf"
    _bench().pdf_deflate(p, inflated_mb=6)
    assert p.stat().st_size < 100_000
    code, errors, _ = ingest_cli(tmp_path, capsys, p)
    assert_one_line_error(code, errors, "bomb.pdf", r"PDF streams inflate to more than 4 MB \(a decompression bomb\?\)")


def test_pdf_glyph_bomb_is_refused_with_the_page_reached(tmp_path, capsys, monkeypatch):
    from pipeline.ingest.formats import pdf

    monkeypatch.setattr(pdf, "MAX_PDF_GLYPHS", 15_000)  # the real limit is 400,000; same code path
    p = tmp_path / "glyphs.pdf"
    _bench().pdf_glyphs(p, pages=6)
    code, errors, _ = ingest_cli(tmp_path, capsys, p)
    assert_one_line_error(code, errors, "glyphs.pdf", r"PDF has more than 15,000 glyphs by page 3 of 6: split it")


def test_pdf_glyphs_are_counted_whatever_cjk_fonts_the_machine_has(tmp_path):
    """Every glyph of a non-embedded CJK font counts, a form XObject each time it is drawn
    (12 + 72 x 84 = 6,060 per page). PDFium's text page counted 98 per page on a machine
    without CJK fonts, so the limit depended on the fonts installed."""
    from pipeline.ingest.formats.pdf import count_glyphs

    p = tmp_path / "two.pdf"
    _bench().pdf_glyphs(p, pages=2)
    data = p.read_bytes()
    assert [count_glyphs(data, n) for n in (6_059, 6_060, 12_119, 12_120)] == [1, 2, 2, None]


def test_encrypted_pdf_says_so(tmp_path, capsys):
    from reportlab.pdfgen import canvas

    p = tmp_path / "locked.pdf"
    c = canvas.Canvas(str(p), encrypt="secret")
    c.drawString(72, 720, "minutes")
    c.showPage()
    c.save()
    code, errors, _ = ingest_cli(tmp_path, capsys, p)
    assert_one_line_error(code, errors, "locked.pdf", r"PDF is encrypted \(password protected\): decrypt it first")


def test_html_tag_bomb_keeps_the_turns_and_shows_the_junk_as_text(tmp_path):
    """Timing is measured in benchmarks/hostile_inputs.py (200 KB: was 40-53 s, quadratic)."""
    from pipeline.ingest.formats.html import defuse_markup, html_to_text

    assert html_to_text("<p>" + "<a " * 2_000 + "</p>").count("<a") == 2_000  # as a browser shows them
    assert defuse_markup("<p>a <!-- <p>old</p> --> <b>x</b> <a <i>y") == \
        "<p>a <!-- <p>old</p> --> <b>x</b> &lt;a <i>y"
    p = tmp_path / "bomb.html"
    _bench().html_tags(p, size=30_000)
    res = ingest_ok(p)
    assert [s for s, _ in speech(res)] == ["山田座長", "田中委員"]


# ------------------------------------------------------------------ byte-level determinism
def test_workbook_carries_no_wall_clock_time(tmp_path):
    import zipfile

    from pipeline.report.exports import FIXED_TIME, _reproducible_xlsx

    p = tmp_path / "x.xlsx"
    pd.DataFrame({"text": ["國領座長", "=1+1"]}).to_excel(p, index=False)
    _reproducible_xlsx(p)
    first = p.read_bytes()
    with zipfile.ZipFile(p) as z:
        assert {i.date_time for i in z.infolist()} == {FIXED_TIME}
        core = z.read("docProps/core.xml").decode()
    assert "2000-01-01T00:00:00Z" in core and core.count("2000-01-01T00:00:00Z") == 2
    pd.DataFrame({"text": ["國領座長", "=1+1"]}).to_excel(p, index=False)  # again, later
    _reproducible_xlsx(p)
    assert p.read_bytes() == first


def test_run_facts_stay_out_of_tracked_metrics(tmp_path):
    from pipeline.io import timings_path, write_metrics

    m = {"n_topics": 12, "fit_seconds": 3.2, "nmi": {"test": 0.5, "seconds": 1.0},
         "partitions": {"computed": 1, "cached": 2, "seconds": 4.0}}
    write_metrics(m, tmp_path / "metrics" / "topics.json")
    assert json.loads((tmp_path / "metrics" / "topics.json").read_text()) == {"n_topics": 12, "nmi": {"test": 0.5}}
    assert timings_path(tmp_path / "metrics" / "topics.json") == tmp_path / "metrics" / "timings" / "topics.json"
    assert json.loads((tmp_path / "metrics" / "timings" / "topics.json").read_text()) == {
        "fit_seconds": 3.2, "nmi": {"seconds": 1.0}, "partitions": {"computed": 1, "cached": 2, "seconds": 4.0}}


# ------------------------------------------------------------------ report: all or nothing, same bytes twice
@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    from tests.report_fixtures import processed_dir, sample_outputs

    return processed_dir(sample_outputs(tmp_path_factory.getbasetemp()))


@pytest.mark.parametrize("case", ["html_parent_is_file", "html_is_dir", "md_name_too_long"])
def test_report_output_problem_writes_no_table(processed, tmp_path, capsys, case):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "file").write_text("x")
    (out / "report.html").mkdir() if case == "html_is_dir" else None
    html = {"html_parent_is_file": out / "file" / "report.html", "html_is_dir": out / "report.html",
            "md_name_too_long": out / "r.html"}[case]
    md = out / ("m" * 300 + ".md") if case == "md_name_too_long" else out / "r.md"
    bad = md if case == "md_name_too_long" else html
    code, errors, _ = cli(["report", "--input", processed, "--out", html, "--md", md, "--tables", out / "tables"],
                          capsys)
    assert_one_line_error(code, errors, bad, "output path is a directory|a parent path is not a directory|"
                                             "file name too long")
    assert not (out / "tables").exists()  # 9 tables were written before the HTML failed
    assert sorted(p.name for p in out.iterdir()) == sorted(["file"] + (["report.html"] if case == "html_is_dir" else []))


def test_report_is_byte_identical_on_a_rerun(processed, tmp_path):
    from pipeline.report import build_report

    runs = []
    for k in ("a", "b"):
        res = build_report(processed, tmp_path / k / "report.html")
        runs.append({p.relative_to(tmp_path / k): p.read_bytes() for p in (tmp_path / k).rglob("*") if p.is_file()})
    assert runs[0].keys() == runs[1].keys() and len(runs[0]) >= 10
    assert [str(p) for p in runs[0] if runs[0][p] != runs[1][p]] == []
    assert res.tables["workbook"].suffix == ".xlsx"


def test_label_queue_csv_is_formula_safe_and_reads_back_verbatim(tmp_path):
    from pipeline.labels import load_labels
    from pipeline.report.sanitize import neutralise_frame

    texts = ["=1+2+cmd|' /C calc'!A0 を整備します。", "光ファイバの整備を\n@SUM(A1)進めます。", "普通の文です。"]
    q = pd.DataFrame({"text": texts, "labels": ["dx_talent", "data_sharing", "-"], "predicted": [["a"], [], []]})
    csv_text = neutralise_frame(q).to_csv(index=False)
    for row in spreadsheet_rows(csv_text)[1:]:
        assert not any(FORMULA.match(line) for cell in row for line in cell.split("\n")), row
    d = tmp_path / "labels"
    d.mkdir()
    (d / "queue_done.csv").write_text(csv_text, encoding="utf-8")
    ls = load_labels(d, ["dx_talent", "data_sharing", "procedural"])
    assert sorted(r["text"] for r in ls.records.values()) == sorted(texts)  # "-": read as no theme
