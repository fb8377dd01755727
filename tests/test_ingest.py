"""Ingest on the real sample (PDF-extracted minutes text): counts, structure, cleaning, accounting."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.ingest import ingest_paths
from pipeline.ingest.clean import normalize_width
from pipeline.ingest.speakers import parse_speaker
from pipeline.ingest.structure import parse_date, parse_number, parse_session

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "raw" / "mic-chiiki-ict-06_2024-04-24.txt"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return ingest_paths([SAMPLE], cache=False)


@pytest.fixture(scope="module")
def speech(sample):
    u = sample.utterances
    return u[u["kind"] == "speech"]


def test_contract_columns(sample):
    required = ["meeting_id", "meeting_title", "meeting_date", "session", "source_file", "utterance_id", "order",
                "kind", "speaker_raw", "speaker_name", "speaker_role", "speaker_affiliation", "speaker_title",
                "agenda_item", "text", "page_start", "page_end"]
    u = sample.utterances
    assert [c for c in required if c not in u.columns] == []
    assert u["order"].tolist() == list(range(len(u)))
    assert u["utterance_id"].is_unique
    assert u["utterance_id"].iloc[1] == "mic-chiiki-ict-06_2024-04-24:u0001"
    assert str(u["session"].dtype) == "Int64" and str(u["page_start"].dtype) == "Int64"
    m = sample.meetings
    for col in ["meeting_id", "meeting_title", "meeting_date", "session", "venue", "source_file", "attendees",
                "absentees", "agenda", "n_utterances"]:
        assert col in m.columns


def test_sample_turns_and_speakers(sample, speech):
    assert len(speech) == 57
    assert speech["speaker_raw"].nunique() == 18
    counts = speech["speaker_raw"].value_counts()
    assert counts["國領座長"] == 24
    assert counts["事務局（佐々木課長）"] == 8
    assert sample.report["speech_turns"] == 57 and sample.report["distinct_speakers"] == 18
    # procedural header kept as a non-speech row, not mixed into speech
    header = sample.utterances[sample.utterances["kind"] == "header"]
    assert len(header) == 1 and "出席構成員" in header["text"].iloc[0]
    assert not speech["text"].str.contains("出席構成員（敬称略）").any()


def test_sample_meeting_structure(sample):
    m = sample.meetings.iloc[0]
    assert m["meeting_date"] == "2024-04-24"
    assert m["session"] == 6
    assert m["meeting_title"] == "活力ある地域社会の実現に向けた情報通信基盤と利活用の在り方に関する懇談会（第6回）"
    assert m["venue"] == "オンライン"
    assert len(m["agenda"]) == 4
    assert m["agenda"][1] == "（2）ICTサイバーセキュリティ政策分科会からの報告"
    assert m["agenda"][3] == "（4）意見交換"
    assert "國領座長" in list(m["attendees"]) and len(m["attendees"]) == 10
    assert "金子情報通信政策課統括補佐" in list(m["officials"])
    assert list(m["absentees"]) == ["大谷構成員", "砂田構成員", "中尾構成員", "森川構成員"]


def test_sample_agenda_assignment(speech):
    items = speech["agenda_item"].tolist()
    # opening by the secretariat precedes any agenda item
    assert items[0] is None
    # the chair announces (1), the secretariat presents it
    assert items[1].startswith("（1）") and items[2].startswith("（1）")
    # the order of items never goes back, and every item is used
    seen = [i for i in items if i is not None]
    nums = [int(re.match(r"（(\d)）", i).group(1)) for i in seen]
    assert nums == sorted(nums) and set(nums) == {1, 2, 3, 4}
    # 佐々木課長 presents the outline (3); the open discussion (4) follows
    first_sasaki = speech.index[speech["speaker_raw"] == "事務局（佐々木課長）"][0]
    assert speech.loc[first_sasaki, "agenda_item"] == "（3）取りまとめ骨子（案）"
    assert items[-1] == "（4）意見交換"


def test_sample_speaker_fields(speech):
    by = speech.drop_duplicates("speaker_raw").set_index("speaker_raw")
    assert tuple(by.loc["事務局（佐々木課長）", ["speaker_name", "speaker_affiliation", "speaker_title"]]) == (
        "佐々木", "事務局", "課長")
    assert by.loc["事務局（佐々木課長）", "speaker_title_full"] == "地域通信振興課長"
    assert tuple(by.loc["國領座長", ["speaker_name", "speaker_role"]]) == ("國領", "座長")
    assert tuple(by.loc["関構成員", ["speaker_name", "speaker_role"]]) == ("関", "構成員")
    assert tuple(by.loc["園田様", ["speaker_name", "speaker_role"]]) == ("園田", "presenter")
    kaneko = by.loc["金子統括補佐"]
    assert (kaneko["speaker_name"], kaneko["speaker_affiliation"], kaneko["speaker_title_full"]) == (
        "金子", "総務省", "情報通信政策課統括補佐")
    uchida = by.loc["事務局（内田）"]
    assert (uchida["speaker_name"], uchida["speaker_title"]) == ("内田", "デジタル経済推進室長")
    inoue = by.loc["総務省（井上参事官補佐）"]
    assert (inoue["speaker_name"], inoue["speaker_affiliation"], inoue["speaker_title"]) == ("井上", "総務省", "参事官補佐")


def test_sample_cleaning(speech):
    texts = speech["text"]
    # no page markers, no spaces, no empty paragraphs, no labels left in any utterance
    assert not texts.str.contains(r"-\s*\d+\s*-").any()
    assert not texts.str.contains(r"[ \u3000]").any()
    assert not texts.str.contains("\n\n").any()
    assert not texts.str.contains("[○〇◯]").any()
    assert not texts.str.contains("── 了 ──").any()
    # width: ASCII letters/digits normalised, Japanese punctuation kept
    joined = "".join(texts)
    assert not re.search(r"[０-９Ａ-Ｚａ-ｚ]", joined)
    assert "CYDER" in joined and "Webex" in joined and "、" in joined and "「" in joined
    # line-break artefacts: every paragraph break follows a sentence end, words broken
    # across lines in the PDF text are whole again
    breaks = re.findall(r"(.)\n", joined + "\n".join(texts))
    assert {b for b in breaks} <= set("。？！」）す") | {"す"}
    assert "ワーキンググループ" in texts.iloc[2] and "利用環境整備" in texts.iloc[2]
    assert "懇談会第6回会合を開催させていただきます。" in texts.iloc[0]
    # words the PDF text broke across lines ('プレＣＹ' / 'ＤＥＲ', '２０４' / '０年', 'Ｓｏｃｉｅｔｙ' / '５.０')
    for word in ("プレCYDERは", "CISOを", "2040年までには", "Society5.0の", "AIなどの", "CSIRT同士"):
        assert word in joined, word
    # a sentence running over the '-18-' page break is one paragraph-joined utterance
    assert "ございます。\nまた、2点目として、4ページ目にございますが、利用者端末までを含むエンド・エンドでの通信環境" in joined
    # paragraphs are kept as '\n' (downstream splits sentences on 。？！, not on line breaks)
    assert texts.iloc[0].count("\n") == 6


def test_sample_accounting_adds_up(sample, speech):
    rep = sample.report["per_file"][SAMPLE.name]
    text = SAMPLE.read_text(encoding="utf-8")
    assert rep["chars_in"] == len(text)
    buckets = [k for k in rep if k.startswith("chars_") and k != "chars_in"]
    assert sum(rep[k] for k in buckets) == rep["chars_in"]
    # the speech bucket is exactly the text that downstream stages receive
    assert rep["chars_speech"] == speech["text"].str.len().sum()
    header = sample.utterances.loc[sample.utterances["kind"] == "header", "text"]
    assert rep["chars_header"] == header.str.len().sum()
    assert rep["chars_page_marker"] == len("-18-") + len("-38-")
    assert rep["chars_speaker_label"] == sum(1 + len(s) for s in speech["speaker_raw"])
    assert rep["chars_other"] == len("── 了 ──")
    assert sample.report["accounting_ok"] is True


def test_sample_pages(speech):
    # page ends: single newlines in the double-spaced text + printed -18- / -38-, calibrated
    # on the printed numbers (both agree), so spans are the document's own page numbers
    assert (speech["page_start"].iloc[0], speech["page_end"].iloc[0]) == (2, 3)
    sasaki = speech[speech["speaker_raw"] == "事務局（佐々木課長）"].iloc[0]
    assert (sasaki["page_start"], sasaki["page_end"]) == (18, 27)   # runs over the '-18-' page end
    assert (speech["page_end"] >= speech["page_start"]).all()
    assert speech["page_start"].is_monotonic_increasing
    assert speech["page_end"].iloc[-1] == 41


def test_cli_writes_outputs(tmp_path):
    from pipeline.cli import main

    out, meet, rep = tmp_path / "u.parquet", tmp_path / "m.parquet", tmp_path / "r.json"
    rc = main(["-q", "ingest", str(SAMPLE.parent), "-o", str(out), "--meetings", str(meet), "--report", str(rep),
               "--no-cache"])
    assert rc == 0
    u = pd.read_parquet(out)
    assert (u["kind"] == "speech").sum() == 57
    assert u["source_file"].iloc[0] == SAMPLE.name
    assert pd.read_parquet(meet)["session"].iloc[0] == 6
    import json

    assert json.loads(rep.read_text())["totals"]["chars_in"] == 45545


VARIANT = """第十二回　地域情報化検討会　議事録

１　日時　令和二年二月十九日（水）　１０：００～１２：００
２　場所　総務省第１会議室
３　議事
（１）事務局説明
（２）意見交換

○座長　それでは開会します。資料
１について、ＩＣＴ政策の説明をお願いします。
○事務局（佐々木課長）事務局の佐々木です。
　最初の段落です。途中で改
行された文です。
－ ２ －
\f
　次の段落です。
○ 地域の課題（箇条書きの丸印は発言ではない）
○座長　意見交換に移ります。
"""


def test_pdf_text_layout_variants(tmp_path):
    f = tmp_path / "variant.txt"
    f.write_text(VARIANT, encoding="utf-8")
    res = ingest_paths([f], cache=False)
    m = res.meetings.iloc[0]
    assert (m["session"], m["meeting_date"], m["venue"]) == (12, "2020-02-19", "総務省第1会議室")
    assert list(m["agenda"]) == ["（1）事務局説明", "（2）意見交換"]
    sp = res.utterances[res.utterances["kind"] == "speech"]
    assert sp["speaker_raw"].tolist() == ["座長", "事務局（佐々木課長）", "座長"]
    assert sp["text"].iloc[0] == "それでは開会します。資料1について、ICT政策の説明をお願いします。"
    assert sp["text"].iloc[1] == ("事務局の佐々木です。\n最初の段落です。途中で改行された文です。\n次の段落です。"
                                  "\n○ 地域の課題（箇条書きの丸印は発言ではない）")
    # the form feed gives exact pages; the printed '－ ２ －' is dropped
    assert (sp["page_start"].tolist(), sp["page_end"].tolist()) == ([1, 1, 2], [1, 2, 2])
    assert sp["speaker_role"].tolist() == ["座長", "事務局", "座長"]
    assert sp["agenda_item"].iloc[-1] == "（2）意見交換"
    rep = res.report["per_file"]["variant.txt"]
    assert rep["chars_page_marker"] == len("－ ２ －") + 1
    assert sum(v for k, v in rep.items() if k.startswith("chars_") and k != "chars_in") == rep["chars_in"] == len(VARIANT)


def test_page_number_glued_to_a_line(tmp_path):
    text = ("○座長  最初の発言です。途中で改\n\n行されます。 -3-\n 続きの段落で\n\nす。 \n\n"
            "○委員  資料６－１について。 \n")
    f = tmp_path / "glued.txt"
    f.write_text(text, encoding="utf-8")
    res = ingest_paths([f], cache=False)
    sp = res.utterances[res.utterances["kind"] == "speech"]
    # the page end hides whether a paragraph ended: joined, the sentence boundary (。) stays
    assert sp["text"].tolist() == ["最初の発言です。途中で改行されます。続きの段落です。", "資料6－1について。"]
    rep = res.report["per_file"]["glued.txt"]
    assert rep["chars_page_marker"] == 3 and rep["chars_in"] == len(text)
    assert sum(v for k, v in rep.items() if k.startswith("chars_") and k != "chars_in") == len(text)


# ------------------------------------------------------------------ structure unit tests

@pytest.mark.parametrize("text,iso", [
    ("令和６年４月２４日 水曜日", "2024-04-24"),
    ("令和二年二月十九日", "2020-02-19"),
    ("令和元年五月一日", "2019-05-01"),
    ("平成23年12月15日", "2011-12-15"),
    ("昭和六十四年一月七日", "1989-01-07"),
    ("2020/2/19", "2020-02-19"),
    ("2024-03-15", "2024-03-15"),
    ("２０２３年１１月２日（木）", "2023-11-02"),
    ("令和六年十三月一日", None),
    ("日付なし", None),
])
def test_parse_date(text, iso):
    assert parse_date(text) == iso


def test_numbers_and_sessions():
    assert parse_number("十二") == 12 and parse_number("百二十四") == 124 and parse_number("二〇二四") == 2024
    assert parse_session("懇談会（第６回）") == 6
    assert parse_session("第十二回会合") == 12
    assert parse_session("防災対策特別委員会速記録第一号") == 1
    assert parse_session("議事録") is None


def test_parse_speaker_tokyo_and_others():
    s = parse_speaker("議長（石川良一君）")
    assert (s.name, s.role, s.title) == ("石川良一", "議長", "議長")
    s = parse_speaker("福祉保健局長（内藤淳君）")
    assert (s.name, s.role, s.affiliation, s.title) == ("内藤淳", "説明員", "福祉保健局", "福祉保健局長")
    s = parse_speaker("知事（小池百合子君）")
    assert (s.name, s.role) == ("小池百合子", "知事")
    assert (parse_speaker("中村議長").name, parse_speaker("中村議長").role) == ("中村", "議長")
    assert parse_speaker("服部座長").role == "座長"
    s = parse_speaker("笠井総務局長")
    assert (s.name, s.role, s.affiliation, s.title) == ("笠井", "説明員", "総務局", "総務局長")
    assert parse_speaker("百八番（東村邦浩君）").role == "議員"
    assert parse_speaker("たぞえ委員").name == "たぞえ"
    # three-character surnames come from the 出席説明員 roster
    s = parse_speaker("比留間教育長", ["教育長比留間英人", "港湾局長多羅尾光睦"])
    assert (s.name, s.title) == ("比留間", "教育長")
    assert parse_speaker("多羅尾港湾局長", ["教育長比留間英人", "港湾局長多羅尾光睦"]).affiliation == "港湾局"


def test_normalize_width_keeps_japanese_punctuation():
    assert normalize_width("ＣＹＤＥＲ、１４（案）「資料６－１」") == "CYDER、14（案）「資料6－1」"


@pytest.mark.parametrize("label, roster, want", [
    # (name, role, title, member number)
    ("（伊藤よしのり議長）", None, ("伊藤よしのり", "議長", "議長", None)),
    ("（植竹　貴副区長）", None, ("植竹貴", "副区長", "副区長", None)),
    ("（白井正子君）", None, ("白井正子", "議員", None, None)),
    ("２２番（筒井たかひさ議員）", None, ("筒井たかひさ", "議員", None, 22)),
    ("議長（清野一榮議員）", None, ("清野一榮", "議長", "議長", None)),
    ("市長（櫻田　宏）", None, ("櫻田宏", "市長", "市長", None)),
    ("おのせ康裕議長", None, ("おのせ康裕", "議長", "議長", None)),
    ("関根義孝教育長", ["区長青木英二教育長関根義孝教育次長樫本達司"], ("関根義孝", "説明員", "教育長", None)),
    ("◯デジタル戦略推進部長", None, (None, "説明員", "デジタル戦略推進部長", None)),
    ("ＢＰＲ推進課長", None, (None, "説明員", "BPR推進課長", None)),
    ("委員長", None, (None, "委員長", "委員長", None)),
    ("５番（神長基子）", None, ("神長基子", "議員", None, 5)),
    ("議会運営委員長（神長基子）", None, ("神長基子", "議会運営委員長", "議会運営委員長", None)),
    ("枝野幸男君", None, ("枝野幸男", "議員", None, None)),
])
def test_parse_speaker_assembly_labels(label, roster, want):
    s = parse_speaker(label, roster)
    assert (s.name, s.role, s.title, s.number) == want


def test_speaker_body_labels_and_plain_rule_order():
    """BODY（PERSON TITLE） is read against the roster; among plain-label rules the roster reading of
    'NAME + 事務局長…' wins over the member-role suffix, and a label no rule takes is a name."""
    from pipeline.ingest.speakers import _PLAIN_RULES

    roster = ["佐々木地域通信振興課長", "金子情報通信政策課統括補佐", "佐藤事務局長補佐"]
    s = parse_speaker("事務局（佐々木課長）", roster)
    assert (s.name, s.role, s.affiliation, s.title, s.title_full) == ("佐々木", "事務局", "事務局", "課長",
                                                                      "地域通信振興課長")
    s = parse_speaker("総務省（金子統括補佐）", roster)
    assert (s.name, s.role, s.affiliation, s.title_full) == ("金子", "説明員", "総務省", "情報通信政策課統括補佐")
    s = parse_speaker("金子統括補佐", roster, secretariat="総務省")
    assert (s.name, s.role, s.affiliation, s.title) == ("金子", "事務局", "総務省", "統括補佐")
    assert parse_speaker("佐藤事務局長", roster, "総務省").title_full == "補佐"     # roster rule
    s = parse_speaker("佐藤事務局長")                                                # member-role rule
    assert (s.name, s.role, s.affiliation, s.title) == ("佐藤", "事務局", "事務局", "事務局長")
    assert [r.__name__ for r in _PLAIN_RULES] == ["_bare_role", "_name_and_member_role", "_name_and_roster_title",
                                                  "_office_only", "_name_and_office"]
    s = parse_speaker("園田様")
    assert (s.name, s.role, s.title) == ("園田", "presenter", None)


def test_assembly_turn_reader_routes_every_line_kind():
    """One small minutes text through the assembly turn reader: header before the first turn,
    a glued stage direction, an item heading inside a turn, a page mark, a rule, the closing
    clock line and the signature block after it; every character accounted."""
    from pipeline.ingest.assembly import read_turns
    from pipeline.ingest.clean import Accounting

    text = ("第1回定例会会議録\n○出席議員\n１番　山田太郎\n"
            "○議長（山田太郎君）〔登壇〕　ただいまから会議を開きます。\n　本日の日程に入ります。\n"
            "〔「異議なし」と呼ぶ者あり〕\n──────\n　◎会議録署名議員の指名\n　署名議員を指名します。\n"
            "○市長（鈴木一郎）　お答えします。\n<PAGE=\"2\">\n　以上です。\n"
            "午後３時５１分散会\n議長　山田太郎\n")
    acct = Accounting(chars_in=len(text))
    rows, header, header_lines = read_turns(text, acct)
    assert [(r["kind"], r["speaker_raw"], r["text"]) for r in rows] == [
        ("speech", "議長（山田太郎君）", "ただいまから会議を開きます。\n本日の日程に入ります。"),
        ("header", None, "◎会議録署名議員の指名\n署名議員を指名します。"),
        ("procedural_note", None, "〔登壇〕"),
        ("procedural_note", None, "〔「異議なし」と呼ぶ者あり〕"),
        ("speech", "市長（鈴木一郎）", "お答えします。\n以上です。"),
        ("procedural_note", None, "午後3時51分散会"),
        ("header", None, "議長\u3000山田太郎"),
    ]
    assert header == "第1回定例会会議録\n○出席議員\n1番\u3000山田太郎" and len(header_lines) == 3
    assert acct.total == len(text) and acct.counts["page_marker"] == len('<PAGE="2">')
    assert acct.counts["other"] == len("──────")
