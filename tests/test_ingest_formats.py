"""Every input format: Tokyo Assembly JSON (real), Kokkai API JSON, '名前：発言' text,
encodings (UTF-8 BOM, CP932) and PDF built from the sample — same utterances as the text route."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.ingest import ingest_paths
from pipeline.ingest.formats import detect
from pipeline.ingest.model import Source

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
TOKYO = SHARED / "corpora" / "tokyo-assembly"
SAMPLE = ROOT / "data" / "raw" / "mic-chiiki-ict-06_2024-04-24.txt"
FIX = Path(__file__).resolve().parent / "fixtures" / "ingest"


def _key(u):
    u = u[u["kind"] != "header"]
    return list(zip(u["kind"], u["speaker_raw"], u["text"]))


@pytest.fixture(scope="module")
def sample_text_result():
    return ingest_paths([SAMPLE], cache=False)


# ------------------------------------------------------------------ Tokyo Assembly

@pytest.mark.skipif(not TOKYO.is_dir(), reason="../shared/corpora/tokyo-assembly not present")
def test_tokyo_assembly_every_speech_row_kept():
    files = sorted(TOKYO.glob("*.json"))
    assert len(files) == 3
    res = ingest_paths([TOKYO], cache=False)
    u, m = res.utterances, res.meetings
    raw = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    n_meetings = sum(len(d) for d in raw)
    n_speech = sum(1 for d in raw for mt in d for p in mt["Proceeding"] if p["Speaker"] != "null")
    assert len(m) == n_meetings == 66
    assert (u["kind"] == "speech").sum() == n_speech == 3659     # published figure: must not move
    assert m["meeting_date"].notna().all() and u["meeting_date"].notna().all()
    assert m["meeting_id"].iloc[0] == "committee-disaster-prevention#0"
    first = m.set_index("meeting_id").loc["committee-disaster-prevention#0"]
    assert first["meeting_date"] == "2011-12-15" and first["session"] == 1
    assert first["venue"] == "第十二委員会室"
    assert "馬場裕子" in list(first["attendees"])
    plenary = m[m["source_file"] == "plenary-2020.json"].iloc[0]
    assert plenary["meeting_date"] == "2020-02-19"
    # speech order within each meeting follows the Proceeding list
    for d, f in zip(raw, files):
        mt = d[0]
        labels = [p["Speaker"] for p in mt["Proceeding"] if p["Speaker"] != "null"]
        got = u[(u["meeting_id"] == f"{f.stem}#0") & (u["kind"] == "speech")]["speaker_raw"].tolist()
        assert got == labels
    # headers (attendance lists) and stage directions are not speech
    sp = u[u["kind"] == "speech"]
    assert not sp["text"].str.contains("出席委員\u3000十七名").any()
    assert not sp["text"].str.contains("〔「異議なし」と呼ぶ者あり〕").any()
    assert (u["kind"] == "procedural_note").sum() > 100
    chair = sp[sp["speaker_raw"] == "議長（石川良一君）"].iloc[0]
    assert (chair["speaker_name"], chair["speaker_role"]) == ("石川良一", "議長")
    assert res.report["accounting_ok"]
    assert sp["speaker_role"].notna().mean() > 0.99
    # agenda from the header's 本日の会議に付した事件; turns follow the chair's announcements
    dp3 = sp[sp["meeting_id"] == "committee-disaster-prevention#3"]
    agenda = list(m.set_index("meeting_id").loc["committee-disaster-prevention#3", "agenda"])
    assert agenda[0] == "委員長の互選"
    assert agenda[2].startswith("参考人からの意見聴取：東日本大震災")
    assert dp3["agenda_item"].iloc[0] is None
    assert (dp3["agenda_item"] == "委員長の互選").sum() >= 5
    assert dp3["agenda_item"].iloc[-5:].eq(agenda[2]).any()


# ------------------------------------------------------------------ Kokkai API

@pytest.mark.parametrize("fixture", ["kokkai_speech.json", "kokkai_meeting.json"])
def test_kokkai_api_json(fixture):
    res = ingest_paths([FIX / fixture], cache=False)
    u, m = res.utterances, res.meetings
    assert m["meeting_id"].tolist() == ["121304601X00320240315"]
    mt = m.iloc[0]
    assert (mt["meeting_date"], mt["meeting_title"], mt["session"]) == ("2024-03-15", "衆議院総務委員会第3号", 213)
    assert "地方税法等の一部を改正する法律案（内閣提出第一号）" in list(mt["agenda"])
    assert u["kind"].iloc[0] == "header"
    sp = u[u["kind"] == "speech"]
    assert sp["speaker_raw"].tolist() == ["浮島委員長", "奥野委員", "松本国務大臣", "小笠原政府参考人", "浮島委員長"]
    first = sp.iloc[0]
    assert (first["speaker_name"], first["speaker_role"], first["speaker_affiliation"], first["speaker_title"]) == (
        "浮島智子", "委員長", "公明党", "総務委員長")
    assert sp.iloc[3]["speaker_role"] == "政府参考人"
    assert first["text"].startswith("これより会議を開きます。\n")
    assert not sp["text"].str.contains("[○〔]").any()
    assert "DX" in sp.iloc[1]["text"]
    notes = u[u["kind"] == "procedural_note"]["text"].tolist()
    assert notes == ["〔「異議なし」と呼ぶ者あり〕", "午後零時二分散会"]
    assert res.report["accounting_ok"]


def test_colon_text_with_a_circle_bullet_is_still_colon_text(tmp_path):
    text = (FIX / "colon_minutes.txt").read_text(encoding="utf-8").replace(
        "議題：", "○配布資料一覧\n議題：")
    f = tmp_path / "bullet.txt"
    f.write_text(text, encoding="utf-8")
    res = ingest_paths([f], cache=False)
    assert res.report["per_file"]["bullet.txt"]["format"] == "colon_text"
    assert (res.utterances["kind"] == "speech").sum() == 7


def test_kokkai_speech_endpoint_with_two_meetings(tmp_path):
    data = json.loads((FIX / "kokkai_speech.json").read_text(encoding="utf-8"))
    other = [dict(r, issueID="121304601X00420240319", date="2024-03-19", issue="第4号",
                  speechID=r["speechID"].replace("0003", "0004")) for r in data["speechRecord"]]
    data["speechRecord"] += other
    f = tmp_path / "two.json"
    f.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    res = ingest_paths([f], cache=False)
    m = res.meetings
    assert m["meeting_id"].tolist() == ["121304601X00320240315", "121304601X00420240319"]
    assert m["meeting_date"].tolist() == ["2024-03-15", "2024-03-19"]
    assert m["n_speech"].tolist() == [5, 5]
    assert res.utterances["utterance_id"].is_unique


def test_kokkai_detected_automatically():
    data = (FIX / "kokkai_speech.json").read_bytes()
    assert detect(Source(FIX / "x.json", "x.json", data)) == "kokkai_json"


# ------------------------------------------------------------------ 名前：発言

def test_colon_text():
    res = ingest_paths([FIX / "colon_minutes.txt"], cache=False)
    u, mt = res.utterances, res.meetings.iloc[0]
    sp = u[u["kind"] == "speech"]
    assert len(sp) == 7
    assert sp["speaker_raw"].tolist()[:3] == ["山田座長", "事務局（田中課長）", "山田座長"]
    assert (mt["meeting_date"], mt["session"]) == ("2023-11-02", 3)
    assert list(mt["agenda"]) == ["（1）事務局説明", "（2）意見交換"]
    # 'ポイントは次のとおり：' inside a turn is not a new speaker; half-width colon works too
    assert "ポイントは次のとおり：\n第一に、ローカル5Gの活用です。" in sp.iloc[1]["text"]
    assert sp.iloc[3]["speaker_raw"] == "佐藤委員" and sp.iloc[3]["text"].startswith("自治体の人材不足")
    tanaka = sp.iloc[1]
    assert (tanaka["speaker_name"], tanaka["speaker_affiliation"], tanaka["speaker_title"]) == ("田中", "事務局", "課長")
    assert sp.iloc[-1]["agenda_item"] == "（2）意見交換"
    assert res.report["accounting_ok"]


# ------------------------------------------------------------------ HTML web minutes

def test_html_turns_with_circle_marks():
    res = ingest_paths([FIX / "web_minutes.html"], cache=False)
    u, mt = res.utterances, res.meetings.iloc[0]
    sp = u[u["kind"] == "speech"]
    assert res.report["per_file"]["web_minutes.html"]["format"] == "html"
    assert (mt["meeting_title"], mt["session"], mt["meeting_date"], mt["venue"]) == (
        "第2回 地域DX推進懇談会 議事録", 2, "2023-12-05", "オンライン開催")
    assert sp["speaker_raw"].tolist() == ["鈴木座長", "事務局（田中課長）", "鈴木座長", "佐藤構成員"]
    # entities decoded, script text dropped, every <p> its own paragraph, closing （以上） dropped
    assert "AI&データ連携" in sp["text"].iloc[1] and "<具体策>" in sp["text"].iloc[3]
    assert sp["text"].iloc[1].endswith("整理しました。\n次に、ローカル5Gの活用について御説明いたします。")
    assert not u["text"].str.contains("偽の発言者|以上").any()
    assert sp["agenda_item"].tolist() == ["（1）事務局説明", "（1）事務局説明", "（2）意見交換", "（2）意見交換"]
    assert res.report["accounting_ok"]


def test_html_colon_style(tmp_path):
    lines = (FIX / "colon_minutes.txt").read_text(encoding="utf-8").splitlines()
    body = "".join(f"<p>{ln}</p>\n" for ln in lines if ln.strip())
    f = tmp_path / "colon.html"
    f.write_text(f"<html><head><meta charset='utf-8'></head><body>{body}</body></html>", encoding="utf-8")
    got = ingest_paths([f], cache=False).utterances
    want = ingest_paths([FIX / "colon_minutes.txt"], cache=False).utterances
    assert _key(got) == _key(want)


# ------------------------------------------------------------------ encodings

@pytest.mark.parametrize("encoding", ["cp932", "utf-8-sig", "utf-16"])
def test_encodings_give_same_utterances(tmp_path, encoding, sample_text_result):
    text = SAMPLE.read_text(encoding="utf-8")
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        pytest.skip(f"sample not representable in {encoding}")
    f = tmp_path / SAMPLE.name
    f.write_bytes(data)
    res = ingest_paths([f], cache=False)
    assert _key(res.utterances) == _key(sample_text_result.utterances)
    rep = res.report["per_file"][SAMPLE.name]
    assert rep["encoding"] == encoding
    assert rep["chars_in"] == len(text)


def test_shift_jis_file_detected(tmp_path):
    text = (FIX / "colon_minutes.txt").read_text(encoding="utf-8")
    f = tmp_path / "sjis.txt"
    # strict Shift_JIS lacks the CP932 forms ～ (FF5E) and － (FF0D)
    f.write_bytes(text.replace("～", "〜").replace("－", "−").encode("shift_jis"))
    res = ingest_paths([f], cache=False)
    want = ingest_paths([FIX / "colon_minutes.txt"], cache=False)
    # decoded as CP932, 0x817C reads back as － (FF0D): same text as the UTF-8 file
    assert _key(res.utterances) == _key(want.utterances)
    assert res.report["per_file"]["sjis.txt"]["encoding"] == "cp932"


def test_euc_jp_file_detected(tmp_path):
    f = tmp_path / "euc.txt"
    f.write_bytes((FIX / "colon_minutes.txt").read_text(encoding="utf-8").replace("～", "〜").replace("－", "−").encode("euc_jp"))
    res = ingest_paths([f], cache=False)
    assert res.report["per_file"]["euc.txt"]["encoding"] == "euc_jp"
    assert res.utterances["speaker_raw"].dropna().tolist()[:2] == ["山田座長", "事務局（田中課長）"]


# ------------------------------------------------------------------ PDF

def build_pdf(text: str, path: Path, lines_per_page: int = 40, page_label: str = "-{n}-") -> int:
    """Lay the sample's lines out as a PDF with a text layer; '-N-' at each page bottom.

    The PDF-extraction artefacts of the text (blank line between lines, printed page
    numbers) are removed first: the PDF gets its own page numbers.
    """
    import re

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiMin-W3"))
    lines = [ln for ln in text.split("\n") if ln != "" and not re.fullmatch(r"\s*-\d+-\s*", ln)]
    c = canvas.Canvas(str(path), pagesize=A4)
    pages = [lines[i:i + lines_per_page] for i in range(0, len(lines), lines_per_page)]
    for n, page in enumerate(pages, 1):
        c.setFont("HeiseiMin-W3", 10.5)
        y = 800
        for ln in page:
            c.drawString(60, y, ln)
            y -= 18.5
        c.drawCentredString(297, 30, page_label.format(n=n))
        c.showPage()
    c.save()
    return len(pages)


@pytest.fixture(scope="module")
def sample_pdf(tmp_path_factory):
    d = tmp_path_factory.mktemp("pdf")
    path = d / "mic-chiiki-ict-06_2024-04-24.pdf"
    n_pages = build_pdf(SAMPLE.read_text(encoding="utf-8"), path)
    return path, n_pages


def test_pdf_gives_same_utterances_as_text(sample_pdf, sample_text_result):
    path, n_pages = sample_pdf
    res = ingest_paths([path], cache=False)
    u = res.utterances
    assert res.meetings["meeting_date"].iloc[0] == "2024-04-24" and res.meetings["session"].iloc[0] == 6
    assert len(res.meetings["agenda"].iloc[0]) == 4
    got, want = _key(u), _key(sample_text_result.utterances)
    assert len(got) == len(want) == 57
    assert got == want
    assert u.loc[u["kind"] == "header", "text"].iloc[0] == \
        sample_text_result.utterances.loc[sample_text_result.utterances["kind"] == "header", "text"].iloc[0]
    # exact page spans from the PDF itself
    sp = u[u["kind"] == "speech"]
    assert sp["page_start"].iloc[0] == 1 and sp["page_end"].iloc[-1] == n_pages
    assert (sp["page_end"] >= sp["page_start"]).all()
    assert res.report["per_file"][path.name]["format"] == "pdf"
    assert res.report["accounting_ok"]
    assert res.report["per_file"][path.name]["chars_page_marker"] > n_pages  # printed numbers + page breaks


def test_pdf_with_bare_page_numbers(tmp_path, sample_text_result):
    path = tmp_path / "bare.pdf"
    build_pdf(SAMPLE.read_text(encoding="utf-8"), path, lines_per_page=38, page_label="{n}")
    res = ingest_paths([path], cache=False)
    assert _key(res.utterances) == _key(sample_text_result.utterances)


def test_format_override(tmp_path):
    # a .txt holding Kokkai JSON is detected by content; --format forces a reader
    f = tmp_path / "speeches.txt"
    f.write_bytes((FIX / "kokkai_speech.json").read_bytes())
    assert ingest_paths([f], cache=False).meetings["meeting_id"].iloc[0] == "121304601X00320240315"
    from pipeline.errors import MultiFileError

    with pytest.raises(MultiFileError) as ei:
        ingest_paths([f], fmt="tokyo_assembly_json", cache=False)
    assert "Tokyo Assembly shape" in ei.value.lines()[0]


def test_cache_reuses_per_file_results(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    (d / "a.txt").write_bytes((FIX / "colon_minutes.txt").read_bytes())
    cache = tmp_path / "cache"
    r1 = ingest_paths([d], cache_dir=cache)
    r2 = ingest_paths([d], cache_dir=cache)
    assert r1.utterances.equals(r2.utterances)
    assert any((cache / "ingest").iterdir())


def build_wrapped_pdf(utterances, path: Path, width: float = 420.0, size: float = 10.5) -> None:
    """A word-processor-like PDF: every paragraph wrapped to ``width`` points, first line
    indented one em, no spaces in the text layer (layout only in glyph positions)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    font = "HeiseiMin-W3"
    pdfmetrics.registerFont(UnicodeCIDFont(font))
    lines: list[tuple[float, str]] = []     # (x offset, text)
    for row in utterances.itertuples():
        if row.kind != "speech":
            continue
        for k, para in enumerate(row.text.split("\n")):
            first = f"○{row.speaker_raw}\u3000" if k == 0 else ""
            indent = 0.0 if k == 0 else size
            cur, x = first, indent
            for ch in para:
                if pdfmetrics.stringWidth(cur + ch, font, size) + x > width:
                    lines.append((x, cur))
                    cur, x = "", 0.0
                cur += ch
            lines.append((x, cur))
    c = canvas.Canvas(str(path), pagesize=A4)
    for start in range(0, len(lines), 40):
        c.setFont(font, size)
        y = 800
        for x, text in lines[start:start + 40]:
            c.drawString(60 + x, y, text)
            y -= 18.5
        c.showPage()
    c.save()


def test_pdf_without_spaces_uses_glyph_geometry(tmp_path, sample_text_result):
    path = tmp_path / "wrapped.pdf"
    build_wrapped_pdf(sample_text_result.utterances, path)
    got = ingest_paths([path], cache=False).utterances
    got, want = got[got["kind"] == "speech"], sample_text_result.utterances
    want = want[want["kind"] == "speech"]
    assert got["speaker_raw"].tolist() == want["speaker_raw"].tolist()
    # every character in place (no word split, nothing lost)
    assert got["text"].str.replace("\n", "").tolist() == want["text"].str.replace("\n", "").tolist()
    # paragraph breaks recovered from indentation / short last lines (all 183 on the sample)
    assert got["text"].tolist() == want["text"].tolist()


def test_kokkai_one_meeting_per_file_as_fetch_saves_it(tmp_path):
    """`fetch` saves each Diet meeting as {issueID}.json in the /api/meeting shape (meetingRecord
    holding that one meeting): the meeting_id is the issueID, the same as the file stem."""
    data = json.loads((FIX / "kokkai_meeting.json").read_text(encoding="utf-8"))
    assert len(data["meetingRecord"]) == 1
    issue = data["meetingRecord"][0]["issueID"]
    d = tmp_path / "kokkai"
    d.mkdir()
    (d / f"{issue}.json").write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    res = ingest_paths([d], cache=False)
    assert res.meetings["meeting_id"].tolist() == [issue]
    assert res.report["per_file"][f"{issue}.json"]["format"] == "kokkai_json"
    assert (res.utterances["kind"] == "speech").sum() == 5 and res.report["accounting_ok"]


# ------------------------------------------------------------------ 審議会 label styles (fixtures written for these tests)

@pytest.mark.parametrize("fixture, labels, names, roles", [
    ("shingikai_brackets.txt",
     ["石川座長", "事務局（小林室長）", "石川座長", "木村構成員", "松本構成員", "石川座長"],
     ["石川", "小林", "石川", "木村", "松本", "石川"], ["座長", "事務局", "座長", "構成員", "構成員", "座長"]),
    ("shingikai_label_lines.txt",
     ["田中部会長", "事務局（山本課長）", "佐々木委員", "事務局（山本課長）", "田中部会長"],
     ["田中", "山本", "佐々木", "山本", "田中"], ["部会長", "事務局", "委員", "事務局", "部会長"]),
    ("shingikai_colon_space.txt",
     ["岡田座長", "井上委員", "森委員", "事務局（西村参事官）", "岡田座長"],
     ["岡田", "井上", "森", "西村", "岡田"], ["座長", "委員", "委員", "事務局", "座長"]),
])
def test_shingikai_label_styles(fixture, labels, names, roles):
    res = ingest_paths([FIX / fixture], cache=False)
    u = res.utterances
    sp = u[u["kind"] == "speech"]
    assert res.report["per_file"][fixture]["format"] == "shingikai_text"
    assert (sp["speaker_raw"].tolist(), sp["speaker_name"].tolist(), sp["speaker_role"].tolist()) == (labels, names, roles)
    # the attendance list (【構成員】石川座長、… / 出席者：…) is header, never a turn; no label or colon in speech
    assert u["kind"].iloc[0] == "header" and not sp["text"].str.contains("【|^：", regex=True).any()
    assert not sp["text"].str.contains("以上）").any()
    assert res.report["accounting_ok"]


def test_shingikai_header_fields():
    mt = ingest_paths([FIX / "shingikai_brackets.txt"], cache=False).meetings.iloc[0]
    assert (mt["meeting_title"], mt["meeting_date"], mt["session"]) == ("地域情報化推進会議（第5回）", "2024-07-10", 5)
    assert list(mt["attendees"]) == ["石川座長", "木村構成員", "松本構成員"]
    assert list(mt["agenda"]) == ["（1）事務局説明", "（2）意見交換"]
    mt = ingest_paths([FIX / "shingikai_colon_space.txt"], cache=False).meetings.iloc[0]
    assert (mt["meeting_title"], mt["meeting_date"], mt["venue"]) == ("第2回　自治体DX有識者会合　議事概要", "2024-02-20", "オンライン")
    text = ingest_paths([FIX / "shingikai_label_lines.txt"], cache=False).utterances
    assert text[text["kind"] == "speech"]["text"].iloc[1] == (
        "事務局の山本でございます。\n資料12－1に沿って、光ファイバ整備の進捗を御説明いたします。")


@pytest.mark.parametrize("name, data, problem", [
    ("dn_body.json", {"tenant_minutes": [{"title": "議長（某）", "minute_type": "○議長", "body": 3}]},
     "tenant_minutes[0].body is int, expected a string"),
    ("dn_empty.json", {"tenant_minutes": [{"title": "（名簿）", "minute_type": "名簿", "body": "<pre>名簿</pre>"}]},
     "no speech entries in tenant_minutes"),
    ("dn_entry.json", {"tenant_minutes": ["○議長（某）　発言"]}, "tenant_minutes[0] is str, expected an object"),
])
def test_discussnet_bad_input_one_line(tmp_path, name, data, problem):
    from pipeline.errors import MultiFileError

    f = tmp_path / name
    f.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(MultiFileError) as ei:
        ingest_paths([f], cache=False)
    assert len(ei.value.lines()) == 1 and ei.value.lines()[0].endswith(f"{name}: {problem}")


def test_kokkai_old_api_record_without_record_data_is_one_line(tmp_path):
    from pipeline.errors import MultiFileError

    f = tmp_path / "v1.json"
    f.write_text(json.dumps({"data": {"records": {"record": [
        {"recordData": {"speechRecord": {"speechOrder": "1", "speaker": "某", "speech": "○某君　発言です。",
                                         "date": "2018-05-30", "nameOfHouse": "衆議院"}}},
        {"recordPosition": "2"}]}}}, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(MultiFileError) as ei:
        ingest_paths([f], cache=False)
    assert ei.value.lines() == ["v1.json: data.records.record[1] has no recordData.meetingRecord or "
                                "recordData.speechRecord object (old Kokkai API shape)"]


def test_ingest_settings_know_every_reader():
    """params.yaml ingest.format is checked against the reader registry (one list of formats) when
    ingest runs (the settings module does not import ingest: every stage loads the settings)."""
    from pipeline.errors import PipelineError
    from pipeline.ingest.formats import format_names
    from pipeline.settings import IngestSettings

    for name in ["auto", *format_names()]:
        assert IngestSettings(format=name).format == name
    assert {"kensakusystem_text", "discussnet_ssp_json", "dbsearch_html", "shingikai_text"} <= set(format_names())
    with pytest.raises(PipelineError, match="unknown format 'docx'"):
        ingest_paths([FIX / "colon_minutes.txt"], cache=False, settings={"format": "docx"})
