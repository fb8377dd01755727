"""Report stage on the real pipeline outputs of the sample: sections, Markdown, tables, subsets, CLI."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.report_fixtures import processed_dir, sample_outputs

SECTIONS = ["overview", "coverage", "who", "flow", "topics", "entities"]


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> Path:
    return processed_dir(sample_outputs(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="module")
def built(processed, tmp_path_factory):
    from pipeline.report import build_report

    out = tmp_path_factory.mktemp("report") / "report.html"
    res = build_report(processed, out)
    return res, out.read_text(encoding="utf-8")


def _payload(html: str) -> dict:
    import json

    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert m, "data block missing"
    return json.loads(m.group(1))


def test_outputs_written_beside_the_html(built):
    res, _ = built
    out = res.html
    assert out.exists() and res.markdown == out.with_suffix(".md") and res.markdown.exists()
    tables = out.parent / "tables"
    for name in ["utterances", "sentences", "topic_info", "theme_by_speaker", "theme_by_role", "theme_coverage"]:
        assert (tables / f"{name}.csv").exists(), name
    assert (tables / "report.xlsx").exists()
    assert res.stats["html_mb"] < 20


def test_html_is_self_contained_and_has_every_section(built, processed):
    import html as _html

    _, html = built
    for sec in SECTIONS:
        assert f'<section id="{sec}">' in html, sec
    # offline: no external script/style/font/image; plotly.js inlined exactly once
    assert not re.search(r'<(script|img|link|iframe)[^>]+(src|href)=["\']?(https?:)?//', html, re.I)
    assert "@import" not in html and "url(http" not in html
    assert html.count("<script") == 3  # data, plotly.js, our code
    assert html.count("plotly.js v") <= 2 and "Plotly" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    script_src = next(d for d in _html.unescape(csp).split(";") if d.strip().startswith("script-src"))
    assert "unsafe-inline" not in script_src and script_src.count("'sha256-") == 2  # only our two scripts run

    sentences = pd.read_parquet(processed / "sentences.parquet")
    meetings = pd.read_parquet(processed / "meetings.parquet")
    # overview populated from the real meeting table
    title = meetings["meeting_title"].iloc[0]
    assert title in html and "2024-04-24" in html
    for person in list(meetings["attendees"].iloc[0])[:3]:
        assert person in html
    for item in list(meetings["agenda"].iloc[0]):
        assert item in html
    data = _payload(html)
    figs = data["figures"]
    for fig in ["fig-coverage", "fig-role", "fig-speaker", "fig-topicmap", "fig-topicsizes", "fig-entities"]:
        assert fig in figs and figs[fig]["data"], fig
    # theme coverage: one bar per policy theme, shares of substantive sentences
    bar = figs["fig-coverage"]["data"][0]
    assert len(bar["y"]) == 11 and max(bar["x"]) > 0
    # roles 構成員 / 事務局 / presenter all on the role heatmap
    roles = figs["fig-role"]["data"][0]["y"]
    assert {"構成員", "事務局"} <= set(roles)
    # discussion flow: every sentence position of the meeting, agenda items marked
    flow = data["flow"]
    assert len(flow) == 1 and flow[0]["n"] == len(sentences)
    assert flow[0]["points"] and flow[0]["agenda"]
    # topic table: every non-outlier topic with label, terms, size and quotes with speakers
    topic_info = pd.read_parquet(processed / "topic_info.parquet")
    n_topics = int((topic_info["topic_id"] >= 0).sum())
    assert n_topics >= 2
    assert html.count('<tr id="topic-') == len(topic_info[topic_info["topic_id"].isin(sentences["topic_id"])])
    # entities: organisations section filled from entities.parquet
    assert "組織 Organisations" in html


def test_every_quote_links_to_meeting_speaker_and_position(built, processed):
    _, html = built
    sentences = pd.read_parquet(processed / "sentences.parquet").set_index("sentence_id")
    quotes = re.findall(r'<figure class="quote" id="q-[^"]+" data-sentence-id="([^"]+)"><blockquote>(.*?)</blockquote>'
                        r'(.*?)</figure>', html, re.S)
    assert len(quotes) >= 10
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids"
    anchors = set(ids)
    import html as _html

    for sid, text, cite in quotes:
        sid = _html.unescape(sid)
        assert sid in sentences.index, sid  # a real sentence
        assert _html.unescape(text) == sentences.loc[sid, "text"]
        links = re.findall(r'href="#([^"]+)"', cite)
        assert any(a.startswith("m") and a in anchors for a in links), cite  # meeting
        assert any(a.startswith("sp") and a in anchors for a in links), cite  # speaker
        assert _html.escape(str(sentences.loc[sid, "speaker"]), quote=False) in cite
        assert "発言 #" in cite and "文 " in cite  # position


def test_markdown_has_headline_per_theme_and_quotes(built, processed):
    res, _ = built
    md = res.markdown.read_text(encoding="utf-8")
    s = pd.read_parquet(processed / "sentences.parquet")
    present = {t for ts in s["themes"] for t in ts if t != "procedural"}
    assert present
    for tid in present:
        assert "### " in md and f"({tid})" in md, tid  # a headline per theme present in the outputs
    heads = md.split("\n### ")[1:]
    for block in heads:
        n_quotes = block.count("\n> 「")
        assert 1 <= n_quotes <= 3
        assert re.search(r"> — .+（.+）", block)  # speaker (role)
    assert "## トピック Topics" in md


def test_tables_csv_and_excel(built, processed):
    import openpyxl

    res, _ = built
    tables = res.html.parent / "tables"
    s = pd.read_csv(tables / "sentences.csv", encoding="utf-8-sig")
    assert len(s) == len(pd.read_parquet(processed / "sentences.parquet"))
    assert {"sentence_id", "speaker", "text", "themes", "theme_names", "topic_id", "topic_label"} <= set(s.columns)
    wb = openpyxl.load_workbook(tables / "report.xlsx", read_only=True)
    assert wb.sheetnames[:4] == ["utterances", "sentences", "topic_info", "theme_by_speaker"]
    header = [c.value for c in next(wb["sentences"].iter_rows(max_row=1))]
    assert "本文" in header and "発言者" in header and "トピックID" in header  # Japanese headers
    tbs = [c.value for c in next(wb["theme_by_speaker"].iter_rows(max_row=1))]
    assert "サイバーセキュリティ" in tbs
    cols = {r[0]: r[1] for r in wb["columns"].iter_rows(min_row=2, values_only=True)}
    assert cols["text"] == "本文"


def test_japanese_headers_option(processed, tmp_path):
    from pipeline.report import build_report

    build_report(processed, tmp_path / "r.html", settings={"headers": "ja"})
    head = (tmp_path / "tables/sentences.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert head.startswith("文ID,会議ID")


def test_cli_subset_by_speaker_and_meeting(processed, tmp_path):
    import argparse

    from pipeline.report import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    s = pd.read_parquet(processed / "sentences.parquet")
    member = s[s["speaker_role"] == "構成員"]["speaker"].value_counts().index[0]
    args = parser.parse_args(["report", "--input", str(processed), "--out", str(tmp_path / "one.html"),
                              "--speaker", member])
    assert args.func(args) == 0
    html = (tmp_path / "one.html").read_text(encoding="utf-8")
    assert "対象 subset" in html and member in html
    sub = pd.read_csv(tmp_path / "tables/sentences.csv", encoding="utf-8-sig")
    assert set(sub["speaker"]) == {member} and len(sub) == int((s["speaker"] == member).sum())
    flow = _payload(html)["flow"]
    assert flow[0]["n"] == len(sub)

    mid = s["meeting_id"].iloc[0]
    args = parser.parse_args(["report", "--input", str(processed), "--out", str(tmp_path / "m/r.html"),
                              "--meeting", mid])
    assert args.func(args) == 0
    assert (tmp_path / "m/r.md").exists() and (tmp_path / "m/tables/report.xlsx").exists()


def test_bad_input_is_a_one_line_error(processed, tmp_path):
    from pipeline.cli import main

    assert main(["report", "--input", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")]) == 2
    assert main(["report", "--input", str(processed), "--out", str(tmp_path / "r.html"),
                 "--meeting", "no-such-meeting"]) == 2
    assert not (tmp_path / "r.html").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "sentences.parquet").write_text("not parquet")
    from pipeline.errors import PipelineError
    from pipeline.report.data import load_processed

    with pytest.raises(PipelineError, match="sentences.parquet: cannot read"):
        load_processed(broken)


def test_optional_tables_may_be_missing(processed, tmp_path):
    """Any output directory works: without topics/entities tables the report says so."""
    import shutil

    from pipeline.report import build_report

    d = tmp_path / "partial"
    d.mkdir()
    for name in ["sentences", "utterances", "meetings"]:  # a file, or a dataset folder (one file per meeting)
        src = processed / f"{name}.parquet"
        shutil.copytree(src, d / src.name) if src.is_dir() else shutil.copy(src, d)
    build_report(d, tmp_path / "out/r.html")
    html = (tmp_path / "out/r.html").read_text(encoding="utf-8")
    assert "topic_info.parquet absent" in html and "entities.parquet absent" in html


def test_multi_meeting_corpus_has_time_sections_and_meeting_subset(processed, tmp_path):
    """Two meetings (the sample and a re-dated copy of it) -> themes and topics over time;
    --meeting selects one of them."""
    from pipeline.report import build_report

    d = tmp_path / "two"
    d.mkdir()
    new_id, new_date = "mic-chiiki-ict-07_copy", "2024-05-17"

    def dup(name, cols):
        df = pd.read_parquet(processed / f"{name}.parquet")
        old_id = df["meeting_id"].iloc[0]
        copy = df.copy()
        for c in cols:
            if c in copy.columns:
                copy[c] = copy[c].astype(str).str.replace(old_id, new_id, regex=False)
        if "meeting_date" in copy.columns:
            copy["meeting_date"] = new_date
        pd.concat([df, copy], ignore_index=True).to_parquet(d / f"{name}.parquet")

    dup("sentences", ["meeting_id", "utterance_id", "sentence_id"])
    dup("utterances", ["meeting_id", "utterance_id"])
    dup("meetings", ["meeting_id"])
    dup("entities", ["meeting_id", "utterance_id", "sentence_id"])
    import shutil

    shutil.copy(processed / "topic_info.parquet", d)
    res = build_report(d, tmp_path / "out/report.html")
    html = res.html.read_text(encoding="utf-8")
    figs = _payload(html)["figures"]
    assert '<section id="time">' in html and "fig-time-themes" in figs and "fig-time-topics" in figs
    assert figs["fig-time-themes"]["data"][0]["x"] == ["2024-04-24", new_date]
    assert len(_payload(html)["flow"]) == 2
    md = res.markdown.read_text(encoding="utf-8")
    assert "## テーマの推移 Themes over time" in md

    one = build_report(d, tmp_path / "one/report.html", meetings=[new_id])
    assert one.stats["meetings"] == 1
    sub = pd.read_csv(tmp_path / "one/tables/sentences.csv", encoding="utf-8-sig")
    assert set(sub["meeting_id"]) == {new_id}
    assert '<section id="time">' not in one.html.read_text(encoding="utf-8")
