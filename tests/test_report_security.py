"""Untrusted text stays text: HTML/JS injection and spreadsheet formula injection.

The real pipeline outputs of the sample are poisoned in every text field the report
shows (meeting title, agenda, attendees, speakers, sentences, agenda items, topic
labels/terms/quotes, entities, source URL), then the report is built and inspected:
statically, and (when Chromium is available) in the browser after scripts ran.
"""
from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

from tests.report_fixtures import need_chromium, processed_dir, run_chromium, sample_outputs

SCRIPT = "<script>alert(1)</script>"
IMG = "</div><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
CLOSE = "</script><script>document.body.setAttribute('data-pwned','2')</script>"
FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+2", "-3+cmd|' /C calc'!A0", "@SUM(A1:A9)", "＝1+1"]


def _poison(src, dst):
    shutil.copytree(src, dst)
    s = pd.read_parquet(dst / "sentences.parquet")
    u = pd.read_parquet(dst / "utterances.parquet")
    m = pd.read_parquet(dst / "meetings.parquet")
    # the most-quoted theme's best sentence carries payloads (so it is quoted in HTML and Markdown)
    speaker = s["speaker"].value_counts().index[0]
    evil_speaker = f"{speaker}{IMG}"
    s.loc[s["speaker"] == speaker, "speaker"] = evil_speaker
    u.loc[u["speaker_name"] == speaker, "speaker_name"] = evil_speaker
    themed = s.index[s["themes"].map(lambda ts: any(t != "procedural" for t in ts))]
    for i, idx in enumerate(themed):  # every substantive sentence is poisoned: whatever is quoted is hostile
        payload = [SCRIPT, IMG, CLOSE][i % 3]
        s.at[idx, "text"] = f"{payload}{s.at[idx, 'text']}"
    for i, f in enumerate(FORMULAS):
        s.at[themed[i], "text"] = f + s.at[themed[i], "text"]
    s["agenda_item"] = s["agenda_item"].map(lambda a: f"{a}{SCRIPT}" if isinstance(a, str) else a)
    m["meeting_title"] = m["meeting_title"] + SCRIPT
    m["agenda"] = m["agenda"].map(lambda a: [f"{x}{IMG}" for x in a])
    m["attendees"] = m["attendees"].map(lambda a: [*a, CLOSE])
    m["url"] = "javascript:document.body.setAttribute('data-pwned','3')"
    for df, name in ((s, "sentences"), (u, "utterances"), (m, "meetings")):
        shutil.rmtree(dst / f"{name}.parquet", ignore_errors=True)  # classify writes dataset directories
        df.to_parquet(dst / f"{name}.parquet")
    if (dst / "topic_info.parquet").exists():
        ti = pd.read_parquet(dst / "topic_info.parquet")
        ti["label"] = ti["label"].astype(str) + IMG
        ti["terms"] = ti["terms"].map(lambda t: [SCRIPT, *list(t)])
        ti["representative"] = ti["representative"].map(
            lambda reps: [json.dumps({**json.loads(r), "speaker": CLOSE}, ensure_ascii=False) for r in reps])
        ti.to_parquet(dst / "topic_info.parquet")
    if (dst / "entities.parquet").exists():
        e = pd.read_parquet(dst / "entities.parquet")
        e.loc[e.index[: len(e) // 2], "text"] = f"総務省{IMG}"
        e.loc[e.index[: len(e) // 2], "coarse_label"] = "organisation"
        shutil.rmtree(dst / "entities.parquet", ignore_errors=True)  # the parse stage writes a dataset directory
        e.to_parquet(dst / "entities.parquet")
    return dst, evil_speaker


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    from pipeline.report import build_report

    base = sample_outputs(tmp_path_factory.getbasetemp())
    work = tmp_path_factory.mktemp("poisoned")
    src, evil_speaker = _poison(processed_dir(base), work / "processed")
    out = work / "report.html"
    build_report(src, out)
    return out, evil_speaker


def test_html_escapes_every_injected_string(poisoned):
    out, _ = poisoned
    html = out.read_text(encoding="utf-8")
    assert SCRIPT not in html and "alert(1)</script>" not in html
    assert "<img" not in html and "onerror=\"document" not in html
    assert "javascript:" not in html.split("<script")[0]  # the unsafe URL is dropped, not linked
    assert html.count("<script") == 3 and html.count("</script>") == 3  # only our own blocks
    # shown literally (escaped) in the page text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;/div&gt;&lt;img src=x onerror=" in html
    # the JSON data block cannot be closed early and still parses
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    assert "<" not in data and json.loads(data)["figures"]


def test_markdown_escapes_markup(poisoned):
    out, evil_speaker = poisoned
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    body = re.sub(r"^> ", "", md, flags=re.M)  # our own blockquote markers
    assert not re.search(r"(?<!\\)[<>]", body)  # every angle bracket from the input is backslash-escaped
    assert r"\<script\>alert(1)\</script\>" in md


def test_browser_shows_payloads_as_text_and_runs_none(poisoned):
    need_chromium()
    out, _ = poisoned
    dom, console = run_chromium(out, out.parent, dump_dom=True)
    assert console == [], console
    assert "data-pwned" not in re.search(r"<body[^>]*>", dom).group(0)
    assert "<img" not in dom  # no element created from the payloads (charts included)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # rendered literally
    assert int(re.search(r'data-charts-drawn="(\d+)"', dom).group(1)) >= 8


def test_csv_and_excel_cells_cannot_start_formulas(poisoned):
    import openpyxl

    out, _ = poisoned
    tables = out.parent / "tables"
    s = pd.read_csv(tables / "sentences.csv", encoding="utf-8-sig", keep_default_na=False)
    texts = s["text"].astype(str)
    for f in FORMULAS:
        hit = texts[texts.str.contains(re.escape(f), regex=True)]
        assert len(hit) >= 1 and all(t.startswith("'" + f) for t in hit), f
    bad = ("=", "+", "-", "@", "＝", "＋", "－", "＠")
    for path in tables.glob("*.csv"):
        df = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
        for col in df.columns:
            assert not str(col).startswith(bad)
            numeric = df[col].str.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")  # numbers are data (-1 topic)
            assert not (df[col].str.startswith(bad) & ~numeric).any(), (path.name, col)
    wb = openpyxl.load_workbook(tables / "report.xlsx")
    n_text = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):  # numbers are stored as numbers
                    n_text += 1
                    assert not cell.value.startswith(bad), (ws.title, cell.coordinate)
    assert n_text > 1000


def test_neutralise_cell_unit():
    from pipeline.report.sanitize import neutralise_cell, safe_frame

    assert neutralise_cell("=1+1") == "'=1+1"
    assert neutralise_cell("@x") == "'@x" and neutralise_cell("\t=1") == "'\t=1"
    assert neutralise_cell("総務省") == "総務省" and neutralise_cell(-3) == -3
    df = safe_frame(pd.DataFrame({"a": [["=x", "y"], "-1"], "=b": [1, 2]}))
    assert df["a"].tolist() == ["'=x; y", "'-1"] and list(df.columns) == ["a", "'=b"]


def test_script_json_cannot_break_out():
    from pipeline.report.sanitize import script_json

    s = script_json({"x": "</script><script>alert(1)</script>", "y": "<!--", "z": "\u2028"})
    assert "<" not in s and ">" not in s and json.loads(s)["x"].startswith("</script>")
