"""Real minutes third parties saved from the systems assemblies and the Diet publish through
(``../shared/corpora/external/``, provenance in its SOURCES.md). Used for ingest only.

Every expected figure below was counted from the raw file with a command independent of the
reader under test; the command is written next to the figure. Turn counts are speech turns
(``kind == "speech"``); a label's count is its number of speech turns.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ingest import ingest_paths

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "external"

pytestmark = pytest.mark.skipif(not EXTERNAL.is_dir(), reason="../shared/corpora/external not present")


def _ingest(folder: str):
    return ingest_paths([EXTERNAL / folder], cache=False)


def _speech(res, source_file: str):
    u = res.utterances
    return u[(u["source_file"] == source_file) & (u["kind"] == "speech")]


def _check(sp, n_turns: int, leading: list[tuple[str, int, str | None, str | None]], first_text: str):
    """``leading``: (label as printed, its turns, speaker_name, speaker_role)."""
    assert len(sp) == n_turns
    counts = sp["speaker_raw"].value_counts()
    for label, n, name, role in leading:
        assert counts[label] == n, label
        row = sp[sp["speaker_raw"] == label].iloc[0]
        assert (row["speaker_name"], row["speaker_role"]) == (name, role), label
    assert sp["text"].iloc[0].startswith(first_text)
    # no turn carries a label mark, a clock line or a stage direction as its speech
    assert not sp["text"].str.match(r"^[○◯〇◆◎]").any()
    assert not sp["text"].str.contains(r"^\s*(?:午前|午後)\S*(?:散会|閉会)\s*$", regex=True).any()


# ------------------------------------------------------------------ 会議録検索システム text

@pytest.fixture(scope="module")
def kensaku():
    return _ingest("kensakusystem-text")


def test_kensakusystem_hirosaki(kensaku):
    # turns: grep '^○' FILE | grep -v '^○議事日程' | wc -l  -> 13 ○ lines, 1 is ○議事日程 -> 12
    # labels: grep '^○' … | sed 's/　.*//' | sort | uniq -c  -> 議長（清野一榮議員） 10, 市長（櫻田　宏） 1, 事務局長（佐藤記一） 1
    # date: first line 開催日：令和 5年 2月17日
    sp = _speech(kensaku, "hirosaki_R050217_statements.txt")
    _check(sp, 12, [("議長（清野一榮議員）", 10, "清野一榮", "議長"), ("市長（櫻田　宏）", 1, "櫻田宏", "市長"),
                    ("事務局長（佐藤記一）", 1, "佐藤記一", "事務局")],
           "これより、令和5年第1回弘前市議会定例会を開会いたします。")
    assert sp["meeting_date"].iloc[0] == "2023-02-17"
    u = kensaku.utterances
    u = u[u["source_file"] == "hirosaki_R050217_statements.txt"]
    # three <PAGE="n"> lines (grep -c '<PAGE=' FILE) are page marks, nowhere in the text
    assert not u["text"].str.contains("<PAGE").any()
    assert kensaku.report["per_file"]["hirosaki_R050217_statements.txt"]["chars_page_marker"] == 3 * len('<PAGE="2">')
    assert "午前10時31分\u3000散会" in u.loc[u["kind"] == "procedural_note", "text"].tolist()


def test_kensakusystem_katsushika(kensaku):
    # turns: grep '^○' FILE | grep -v '^○議事日程' | wc -l -> 33
    # labels (same grep | sed 's/^○\(（[^）]*）\|[^（　]*（[^）]*）\).*/\1/' | sort | uniq -c):
    #   （伊藤よしのり議長） 24, （植竹　貴副区長） 2, ２２番（筒井たかひさ議員） 2, １２番（齊藤大介議員） 2
    sp = _speech(kensaku, "katsushika_R070214_statements.txt")
    _check(sp, 33, [("（伊藤よしのり議長）", 24, "伊藤よしのり", "議長"), ("（植竹　貴副区長）", 2, "植竹貴", "副区長"),
                    ("２２番（筒井たかひさ議員）", 2, "筒井たかひさ", "議員"), ("（青木克德区長）", 1, "青木克德", "区長"),
                    ("（久保洋子教育委員）", 1, "久保洋子", "教育委員")],
           "出席議員は定足数に達しております。")
    assert sp["meeting_date"].iloc[0] == "2025-02-14"
    assert sp.loc[sp["speaker_raw"] == "２２番（筒井たかひさ議員）", "speaker_number"].iloc[0] == 22
    u = kensaku.utterances
    u = u[u["source_file"] == "katsushika_R070214_statements.txt"]
    # the ○議事日程 roster is the header; the signature block after 散会 (議　　長 … 署名議員) is not speech
    assert u["kind"].iloc[0] == "header" and "出　席　議　員" in u["text"].iloc[0]
    assert u["kind"].iloc[-1] == "header" and u["text"].iloc[-1].startswith("議\u3000\u3000長")
    assert not sp["text"].str.contains("署名議員\u3000\u3000\u3000").any()
    notes = u.loc[u["kind"] == "procedural_note", "text"].tolist()
    assert "午後1時開会・開議" in notes and "午後3時7分散会" in notes


def test_kensakusystem_meguro(kensaku):
    # turns: grep '^○' FILE | grep -v '^○議事日程' | wc -l -> 25
    # labels: おのせ康裕議長 10, 青木英二区長 6, 関根義孝教育長 4, ２２番（たぞえ麻友議員） 3
    sp = _speech(kensaku, "meguro_R070217_statements.txt")
    _check(sp, 25, [("おのせ康裕議長", 10, "おのせ康裕", "議長"), ("青木英二区長", 6, "青木英二", "区長"),
                    ("関根義孝教育長", 4, "関根義孝", "説明員"), ("２２番（たぞえ麻友議員）", 3, "たぞえ麻友", "議員")],
           "ただいまから令和7年第1回目黒区議会定例会を開会いたします。")
    assert sp.loc[sp["speaker_raw"] == "関根義孝教育長", "speaker_title"].iloc[0] == "教育長"
    assert sp["meeting_date"].iloc[0] == "2025-02-17"
    u = kensaku.utterances
    u = u[u["source_file"] == "meguro_R070217_statements.txt"]
    notes = u.loc[u["kind"] == "procedural_note", "text"].tolist()
    assert notes[0] == "〇午後1時開会" and notes[-1] == "〇午後3時51分散会"
    # ◎ item headings (grep -c '◎' FILE -> 5) are header rows, not speech
    assert (u["text"].str.startswith("◎") & (u["kind"] == "header")).sum() == 5
    assert not sp["text"].str.contains("◎").any()


def test_kensakusystem_accounting(kensaku):
    assert kensaku.report["accounting_ok"]
    assert kensaku.report["files_by_format"] == {"kensakusystem_text": 3}


# ------------------------------------------------------------------ DiscussNet SSP JSON

@pytest.fixture(scope="module")
def discussnet():
    return _ingest("discussnet-ssp-json")


# turns: python -c "import json; tm=json.load(open(F))['tenant_minutes'];
#                   print(sum(e['minute_type'] != '名簿' for e in tm))"
# labels: collections.Counter(e['title'] for e in tm if e['minute_type'] != '名簿')

def test_discussnet_hakodate(discussnet):
    sp = _speech(discussnet, "hakodate_20240222_minute.json")
    _check(sp, 20, [("議長（吉田崇仁）", 15, "吉田崇仁", "議長"), ("市長（大泉潤）", 1, "大泉潤", "市長"),
                    ("総務常任委員長（島昌之）", 1, "島昌之", "総務常任委員長")],
           "おはようございます。\nただいまから令和6年第1回函館市議会定例会を開会いたします。")
    # date: the roster's 令和６年２月２２日（木曜日）
    assert sp["meeting_date"].iloc[0] == "2024-02-22"
    assert sp["meeting_title"].iloc[0] == "令和6年第1回函館市議会定例会会議録 第1号"


def test_discussnet_yokohama(discussnet):
    sp = _speech(discussnet, "yokohama_20241129_minute.json")
    _check(sp, 50, [("議長（鈴木太郎君）", 38, "鈴木太郎", "議長"), ("副市長（大久保智子君）", 4, "大久保智子", "副市長"),
                    ("（井上さくら君）", 4, "井上さくら", "議員"), ("市長（山中竹春君）", 2, "山中竹春", "市長")],
           "現在着席議員数は82人であります。")
    assert sp["meeting_date"].iloc[0] == "2024-11-29"
    u = discussnet.utterances
    u = u[u["source_file"] == "yokohama_20241129_minute.json"]
    # the signature block after 午前11時21分散会 (市会議長 鈴木太郎 …) is a header row, not speech
    assert u["kind"].iloc[-1] == "header" and u["text"].iloc[-1].startswith("市会議長")
    assert not sp["text"].str.contains("－－－").any()


def test_discussnet_sumida(discussnet):
    sp = _speech(discussnet, "sumida_20241227_minute.json")
    _check(sp, 23, [("議長（佐藤篤）", 19, "佐藤篤", "議長"), ("副区長（岸川紀子）", 2, "岸川紀子", "副区長"),
                    ("区長（山本亨）", 2, "山本亨", "区長")],
           "ただいまから令和6年度墨田区議会定例会12月緊急議会を開会いたします。")
    assert sp["meeting_date"].iloc[0] == "2024-12-27"
    # the body says 墨田区議会 (metadata.tenantSlug says kahoku: SOURCES.md says trust the body)
    assert "墨田区議会" in sp["meeting_title"].iloc[0]


def test_discussnet_metadata_companions_never_fail_a_run(discussnet):
    rep = discussnet.report
    assert rep["files"] == 6 and rep["meetings"] == 3 and rep["accounting_ok"]
    for name in ("hakodate_20240222_metadata.json", "yokohama_20241129_metadata.json", "sumida_20241227_metadata.json"):
        assert rep["per_file"][name]["n_meetings"] == 0
        assert rep["per_file"][name]["chars_other"] == rep["per_file"][name]["chars_in"]
