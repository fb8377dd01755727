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


# ------------------------------------------------------------------ 国会会議録 API

def test_kokkai_old_v1_meeting_result():
    # python -c "import json; d=json.load(open(F)); [print(m['recordData']['meetingRecord']['date'],
    #   sum(s['speechOrder'] != '0' for s in m['recordData']['meetingRecord']['speechRecord']))
    #   for m in d['data']['records']['record']]"  -> 2018-05-30 36, 2016-12-07 57
    # labels: Counter(s['speech'].split('\u3000')[0] for s in speechRecord if speechOrder != '0')
    res = _ingest("ndl-api-v1-kimihito")
    m = res.meetings.set_index("meeting_id")
    assert m.loc["meeting_result#0", ["meeting_date", "n_speech"]].tolist() == ["2018-05-30", 36]
    assert m.loc["meeting_result#1", ["meeting_date", "n_speech"]].tolist() == ["2016-12-07", 57]
    assert m.loc["meeting_result#0", "session"] == 196
    u = res.utterances
    sp0 = u[(u["meeting_id"] == "meeting_result#0") & (u["kind"] == "speech")]
    _check(sp0, 36, [("会長（佐藤勉君）", 10, "佐藤勉", "会長"), ("内閣総理大臣（安倍晋三君）", 10, "安倍晋三", "内閣総理大臣"),
                     ("片山虎之助君", 5, "片山虎之助", "議員"), ("玉木雄一郎君", 4, "玉木雄一郎", "議員")],
           "これより国家基本政策委員会合同審査会を開会いたします。")
    sp1 = u[(u["meeting_id"] == "meeting_result#1") & (u["kind"] == "speech")]
    _check(sp1, 57, [("内閣総理大臣（安倍晋三君）", 20, "安倍晋三", "内閣総理大臣"), ("会長（柳田稔君）", 17, "柳田稔", "会長"),
                     ("蓮舫君", 10, "蓮舫", "議員")],
           "ただいまから国家基本政策委員会合同審査会を開会いたします。")
    # speechOrder "0" (speaker null, attendance lists) is the header of each meeting
    assert (u[u["kind"] == "header"].groupby("meeting_id").size() == 1).all()
    # old 発言単位 response: 5 speeches of 4 meetings (house/meeting/issue/date), no issueID
    sr = m[m["source_file"] == "speech_result.json"]
    assert len(sr) == 4 and sr["n_speech"].sum() == 5
    assert sorted(sr["meeting_date"]) == ["2018-03-30", "2018-04-09", "2018-04-27", "2018-05-22"]
    assert res.report["accounting_ok"]


def test_kokkai_current_speech_page():
    # 30 records, speechOrder 0 in 5 of them, 15 distinct issueIDs (SOURCES.md; json + Counter)
    res = _ingest("ndl-api-v2-speech-jinlog")
    u, m = res.utterances, res.meetings
    assert len(m) == 15 and (u["kind"] == "speech").sum() == 25 and (u["kind"] == "header").sum() == 5
    first = u[(u["meeting_id"] == "122104601X01120260526") & (u["kind"] == "speech")].iloc[0]
    assert (first["speaker_raw"], first["speaker_name"], first["meeting_date"]) == ("松下委員", "松下英樹", "2026-05-26")
    assert first["text"].startswith("ありがとうございます。\n是非とも、大臣始め総務省の皆様におかれましても")
    # the same minister under two labels is one speaker name
    kika = u[u["speaker_raw"].isin(["黄川田国務大臣", "国務大臣（黄川田仁志君）"])]
    assert len(kika) == 5 and set(kika["speaker_name"]) == {"黄川田仁志"}
    assert u.loc[u["speaker_raw"] == "菅原参考人", "speaker_role"].iloc[0] == "参考人"
    assert res.report["accounting_ok"]


def test_kokkai_meeting_list_gives_speakers_never_text():
    # meetings.json: 2 meetingRecords, speechRecords with speaker and no 'speech' (orders 1-3 and 1-8)
    res = _ingest("ndl-api-v2-samples-fujitashuichi")
    u, m = res.utterances, res.meetings
    listed = u[u["source_file"] == "meetings.json"]
    assert set(listed["kind"]) == {"speech_no_text"} and (listed["text"] == "").all()
    assert listed.groupby("meeting_id").size().to_dict() == {"meetings#122004024X00120260123": 8,
                                                              "meetings#122005254X00120260123": 3}
    assert listed["speaker_name"].value_counts().to_dict() == {"浜田靖一": 7, "額賀福志郎": 3, "築山信彦": 1}
    # speeches.json: one 議長 speech (the dissolution) and one header record
    sp = u[(u["source_file"] == "speeches.json") & (u["kind"] == "speech")]
    assert len(sp) == 1 and sp["speaker_name"].iloc[0] == "額賀福志郎" and sp["speaker_role"].iloc[0] == "議長"
    assert sp["text"].iloc[0].startswith("ただいま内閣総理大臣から、詔書が発せられた旨伝えられましたから、朗読いたします。")
    assert "日本国憲法第七条により、衆議院を解散する。" in sp["text"].iloc[0]
    assert set(m["meeting_date"]) == {"2026-01-23"} and res.report["accounting_ok"]


# ------------------------------------------------------------------ DB-Search HTML

@pytest.fixture(scope="module")
def dbsearch():
    return _ingest("dbsearch-html")


def test_dbsearch_sendai_role_only_officials(dbsearch):
    # turns: grep -c 'class="voice__title"' FILE -> 50 (page says 文書中の発言: 50)
    # labels: grep -o 'voice__title">[^<]*' FILE | sort | uniq -c -> デジタル戦略推進部長 10, 福田ようすけ委員 7,
    #   ＢＰＲ推進課長 6, 高橋たくみ委員 6, 委員長 6
    sp = _speech(dbsearch, "sendai_dx_20241226_detail.html")
    _check(sp, 50, [("デジタル戦略推進部長", 10, None, "説明員"), ("福田ようすけ委員", 7, "福田ようすけ", "委員"),
                    ("ＢＰＲ推進課長", 6, None, "説明員"), ("委員長", 6, None, "委員長")],
           "ただいまからDX推進調査特別委員会を開会いたします。")
    # a role-only official keeps the role as printed and gets no (invented) name
    assert sp.loc[sp["speaker_raw"] == "デジタル戦略推進部長", "speaker_title"].iloc[0] == "デジタル戦略推進部長"
    assert sp.loc[sp["speaker_raw"] == "デジタル戦略推進部長", "speaker_name"].isna().all()
    # date from the page's 開催日 field; no chrome (検索語, block numbers) in any speech
    assert sp["meeting_date"].iloc[0] == "2024-12-26"
    assert not sp["text"].str.contains("検索語|^\\d+:", regex=True).any()


def test_dbsearch_otofuke_speaker_index_not_read(dbsearch):
    # turns: grep -c 'class="voice-block' FILE -> 198 (the speaker index holds 198 more labels: not speech)
    # labels: grep -o 'data-voice-title="[^"]*' FILE | sort | uniq -c -> ◯議長（高瀬博文） 148, ◯５番（神長基子） 7,
    #   ◯総務部長（吉田浩人） 6, ◯保健福祉部長（堀田　昇） 6
    sp = _speech(dbsearch, "otofuke_20241217_detail.html")
    _check(sp, 198, [("議長（高瀬博文）", 148, "高瀬博文", "議長"), ("５番（神長基子）", 7, "神長基子", "議員"),
                     ("総務部長（吉田浩人）", 6, "吉田浩人", "説明員"), ("保健福祉部長（堀田　昇）", 6, "堀田昇", "説明員")],
           "報告します。\n伊藤萌里議員、佐藤和也議員")
    assert sp["meeting_date"].iloc[0] == "2024-12-17"
    # the same person under two labels is one speaker name
    kami = sp[sp["speaker_raw"].isin(["５番（神長基子）", "議会運営委員長（神長基子）"])]
    assert len(kami) == 8 and set(kami["speaker_name"]) == {"神長基子"}
    assert sp.loc[sp["speaker_raw"] == "５番（神長基子）", "speaker_number"].iloc[0] == 5
    assert not sp["text"].str.contains("選択").any()
    u = dbsearch.utterances
    notes = u.loc[(u["source_file"] == "otofuke_20241217_detail.html") & (u["kind"] == "procedural_note"), "text"]
    assert (notes.iloc[0], notes.iloc[-1]) == ("開会（午前10時00分）", "閉会（午後\u30003時25分）")


def test_dbsearch_aomori_no_invented_date(dbsearch):
    # turns: grep -c 'class="page-text__voice"' FILE -> 122
    # labels: grep -o '◯[^　]*' FILE | sort | uniq -c -> 議長（奈良岡隆君） 100, ９番（赤平勇人君） 5, 市長（西秀記君） 4
    sp = _speech(dbsearch, "aomori_page.html")
    _check(sp, 122, [("議長（奈良岡隆君）", 100, "奈良岡隆", "議長"), ("９番（赤平勇人君）", 5, "赤平勇人", "議員"),
                     ("市長（西秀記君）", 4, "西秀記", "市長"), ("企画部長（金谷浩光君）", 3, "金谷浩光", "説明員")],
           "これより本日の会議を開きます。")
    # the page has no date field and no date in its text: null, never guessed
    assert sp["meeting_date"].isna().all()
    u = dbsearch.utterances
    u = u[u["source_file"] == "aomori_page.html"]
    # voice 1 opens with 午前10時開議 before its ◯議長 label; the printed 日程 headings are not speech
    assert u.loc[u["kind"] == "procedural_note", "text"].iloc[0] == "午前10時開議"
    assert not sp["text"].str.contains("日程第1\u3000議案第146号").any()
    assert u.loc[u["kind"] == "procedural_note", "text"].iloc[-1] == "午前10時58分閉会"
    assert dbsearch.report["accounting_ok"]


@pytest.mark.parametrize("folder", ["kensakusystem-text", "discussnet-ssp-json", "dbsearch-html", "ndl-api-v1-kimihito",
                                    "ndl-api-v2-speech-jinlog", "ndl-api-v2-samples-fujitashuichi"])
def test_directory_run_over_each_folder_exits_0(tmp_path, folder):
    from pipeline.cli import main

    out = tmp_path / "out"
    rc = main(["-q", "ingest", str(EXTERNAL / folder), "-o", str(out / "u.parquet"), "--meetings", str(out / "m.parquet"),
               "--report", str(out / "r.json"), "--no-cache"])
    assert rc == 0
    import json

    rep = json.loads((out / "r.json").read_text(encoding="utf-8"))
    assert rep["accounting_ok"]
    for name, f in rep["per_file"].items():   # every character of every file accounted
        assert f["chars_in"] == sum(v for k, v in f.items() if k.startswith("chars_") and k != "chars_in"), name


def test_kensakusystem_crlf_copy_reads_the_same(tmp_path, kensaku):
    """The same download saved with Windows line ends: same turns, title and date, no CR in any text."""
    src = EXTERNAL / "kensakusystem-text" / "meguro_R070217_statements.txt"
    (tmp_path / src.name).write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    got = ingest_paths([tmp_path], cache=False)
    want = _speech(kensaku, src.name)
    sp = got.utterances[got.utterances["kind"] == "speech"]
    assert sp["speaker_raw"].tolist() == want["speaker_raw"].tolist()
    assert sp["text"].tolist() == want["text"].tolist()
    assert (sp["meeting_title"].iloc[0], sp["meeting_date"].iloc[0]) == (want["meeting_title"].iloc[0], "2025-02-17")
    assert got.report["accounting_ok"]


def test_assembly_agenda_from_the_roster_and_the_chair(kensaku, discussnet):
    # 議事日程 lines of the header (grep -n '^日程第' meguro…txt -> 日程第１ 会期の決定, 日程第２ 代表質問)
    m = kensaku.meetings.set_index("source_file")
    assert list(m.loc["meguro_R070217_statements.txt", "agenda"]) == ["日程第1 会期の決定", "日程第2 代表質問"]
    # katsushika prints 47 numbered items, letter-spaced ('　第　２　　議　　案　　第　１号 …')
    kat = list(m.loc["katsushika_R070214_statements.txt", "agenda"])
    assert len(kat) == 47 and kat[1] == "日程第2 議案第1号 令和7年度葛飾区一般会計予算"
    # 函館 prints the number and the item on two lines (日程第１ / 　会議録署名議員の指名)
    h = discussnet.meetings.set_index("source_file").loc["hakodate_20240222_minute.json", "agenda"]
    assert list(h)[:2] == ["日程第1 会議録署名議員の指名", "日程第2 会期の決定について"] and len(h) == 7
    # turns follow the chair's 日程第N announcements: 目黒's 代表質問 runs from 日程第２ to the end
    sp = _speech(kensaku, "meguro_R070217_statements.txt")
    assert sp["agenda_item"].iloc[0] is None
    assert (sp["agenda_item"] == "日程第2 代表質問").sum() == 19 and sp["agenda_item"].iloc[-1] == "日程第2 代表質問"


def test_assembly_attendance_from_the_roster(kensaku, discussnet):
    # the roster prints its own totals: 出席議員（３８名）/ 欠席議員（１名）… — the lists must have that many names
    m = {**kensaku.meetings.set_index("source_file")[["attendees", "absentees"]].to_dict("index"),
         **discussnet.meetings.set_index("source_file")[["attendees", "absentees"]].to_dict("index")}
    want = {"hirosaki_R050217_statements.txt": (25, 3), "katsushika_R070214_statements.txt": (38, 1),
            "meguro_R070217_statements.txt": (34, 1), "hakodate_20240222_minute.json": (26, 1),
            "yokohama_20241129_minute.json": (82, 4), "sumida_20241227_minute.json": (32, 0)}
    for f, (n_in, n_out) in want.items():
        assert (len(m[f]["attendees"]), len(m[f]["absentees"])) == (n_in, n_out), f
    assert list(m["katsushika_R070214_statements.txt"]["absentees"]) == ["大森ゆきこ"]
    assert "吉田崇仁" in list(m["hakodate_20240222_minute.json"]["attendees"])
