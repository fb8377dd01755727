"""Tokyo Metropolitan Assembly minutes JSON (東京都議会 会議録 / 委員会速記録).

Shape: a list of meetings ``{"Date": "2020/2/19", "Prefecture", "ProceedingTitle", "URL",
"Proceeding": [{"Speaker": "議長（石川良一君）" | "null", "Utterance": "..."}]}``.

* ``Speaker == "null"`` rows are not speech: the first is the header (room, 開議 time,
  出席委員 / 欠席委員 / 出席説明員 lists, 本日の会議に付した事件) -> kind ``header``;
  later ones are attached documents (報告書（案）) -> kind ``attachment``.
* Lines wholly in 〔…〕 inside an utterance (〔「異議なし」と呼ぶ者あり〕, 〔知事小池百合子君登壇〕)
  and time notes (午後零時二分散会) are stage directions, split out as ``procedural_note`` rows after the speech row.
* Every other row is one speech row, in order; paragraphs (lines indented with
  a full-width space) are kept as ``\\n``.

One meeting_id per meeting: ``{file stem}#{k}``. Character accounting: the text
fields are accounted character by character; JSON syntax, keys and metadata fields
(Date, titles, URLs) are ``other``.
"""
from __future__ import annotations

import json
import re

from pipeline.errors import PipelineError
from pipeline.ingest.clean import Accounting, Block, normalize_width, split_ws
from pipeline.ingest.model import Document, Meeting, Source
from pipeline.ingest.schema import check_tokyo
from pipeline.ingest.structure import parse_date, parse_session
from pipeline.textio import lines_of, split_lines

NAME = "tokyo_assembly_json"

_NOTE = re.compile(r"^[ \t\u3000]*(?:〔[^〔〕]*〕|(?:午前|午後)[〇零一二三四五六七八九十時分]{2,10}"
                   r"(?:開議|開会|散会|閉会|休憩|再開|延会))[ \t\u3000]*$")
_NULL = ("null", "", None)


def _load(src: Source):
    try:
        return json.loads(src.text)
    except (json.JSONDecodeError, PipelineError):
        return None


def _is_shape(data) -> bool:
    return (isinstance(data, list) and bool(data) and isinstance(data[0], dict)
            and "Proceeding" in data[0])


def sniff(src: Source) -> float:
    if src.suffix == ".pdf" or src.data[:4] == b"%PDF":
        return 0.0
    head = src.data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head != b"[":
        return 0.0
    return 1.0 if _is_shape(_load(src)) else 0.0


def text_block(value: str, acct: Accounting, bucket: str, every_line_breaks: bool = False) -> tuple[str, list[str]]:
    """Clean one multi-line field; returns (text, procedural notes split out)."""
    block = Block(acct, bucket)
    notes: list[str] = []
    prev_nl = ""
    for i, (line, nl) in enumerate(split_lines(value)):  # the project's one line-break rule (CR, U+2028, ...)
        block.add_layout(len(prev_nl))
        prev_nl = nl
        if bucket == "speech" and _NOTE.match(line):
            lead, content, trail = split_ws(line)
            acct.add("whitespace", len(lead) + len(trail))
            acct.add("procedural", len(content))
            notes.append(normalize_width(content))
            continue
        lead, content, trail = split_ws(line.replace("\t", " "))
        block.add_line(lead, content, trail, i, force_break=every_line_breaks)
    block.add_layout(len(prev_nl))
    return block.close(), notes


def _section(lines: list[str], start_pat: str, stop_pat: str = r"^\u3000|本日の会議に付した事件") -> list[str]:
    out, on = [], False
    for line in lines:
        if re.search(start_pat, line):
            on = True
            rest = re.sub(start_pat, "", line).strip(" \u3000")
            if rest and not re.fullmatch(r"[〇一二三四五六七八九十百千0-9]+名", rest):
                out.append(rest)
            continue
        if on and re.search(stop_pat, line):
            break
        if on:
            out.append(line)
    return out


def _person(entry: str) -> str:
    """'委員長馬場\u3000裕子君' -> '馬場裕子'; '一番古城まさお君' -> '古城まさお'."""
    s = re.sub(r"[\s\u3000]+", "", entry)
    s = re.sub(r"君$", "", s)
    s = re.sub(r"^(?:[〇一二三四五六七八九十百千]+番|副委員長|委員長|理事|副議長|議長)", "", s)
    return s


def parse_header(text: str) -> dict:
    lines = lines_of(text)
    info: dict = {}
    first = lines[0].strip(" \u3000") if lines else ""
    if first.endswith(("室", "議場", "会議室")):
        info["venue"] = first
    att = _section(lines, r"^\u3000?出席(?:委員|議員)")
    info["attendees"] = [_person(x) for x in att if x.strip(" \u3000")]
    ab = _section(lines, r"^\u3000?欠席(?:委員|議員)")
    info["absentees"] = [p for p in (_person(x) for x in ab) if p and p != "なし"
                         and not re.fullmatch(r"[〇一二三四五六七八九十百千]+名", p)]
    off = _section(lines, r"^\u3000?出席説明員")
    info["officials"] = [re.sub(r"[\s\u3000]+|君$", "", x) for x in off if x.strip(" \u3000")]
    agenda: list[str] = []
    category = None      # '報告事項（説明）' heading the '・…' items below it
    on = False
    for line in lines:
        if "本日の会議に付した事件" in line or "議事日程" in line:
            on = True
            continue
        if not on:
            continue
        item = normalize_width(line.strip(" \u3000・"))
        # long indented lines state the committee's remit, not an item of business
        if not item or (line.startswith("\u3000") and len(item) > 60):
            continue
        if line.lstrip(" \u3000").startswith("・") and category is not None:
            if agenda and agenda[-1] == category:
                agenda.pop()
            agenda.append(f"{category}：{item}")
        else:
            category = item
            agenda.append(item)
    info["agenda"] = agenda
    return info


def read(src: Source) -> Document:
    data = _load(src)
    if data is None:
        raise PipelineError(src.path, "not valid JSON")
    if not _is_shape(data):
        raise PipelineError(src.path, "JSON is not a list of meetings with 'Proceeding' (Tokyo Assembly shape)")
    check_tokyo(data, src.path)   # field types: one line naming meeting/row/field, not a traceback
    acct = Accounting(chars_in=len(src.text))
    field_chars = 0
    meetings: list[Meeting] = []
    for k, m in enumerate(data):
        if not isinstance(m, dict) or not isinstance(m.get("Proceeding"), list):
            raise PipelineError(src.path, f"meeting {k}: missing 'Proceeding' list")
        title = m.get("ProceedingTitle")
        meeting = Meeting(key=str(k), title=normalize_width(title) if title else None,
                          date=parse_date(m.get("Date")), session=parse_session(title), url=m.get("URL"))
        rows: list[dict] = []
        n_speakers = 0
        for j, p in enumerate(m["Proceeding"]):
            if not isinstance(p, dict) or "Utterance" not in p or "Speaker" not in p:
                raise PipelineError(src.path, f"meeting {k} row {j}: needs 'Speaker' and 'Utterance'")
            speaker, utt = p["Speaker"], p["Utterance"] or ""
            if not isinstance(utt, str):
                raise PipelineError(src.path, f"meeting {k} row {j}: 'Utterance' is not a string")
            field_chars += len(utt)
            if speaker in _NULL:
                kind = "header" if not rows else "attachment"
                text, _ = text_block(utt, acct, "header", every_line_breaks=True)
                if kind == "header":
                    info = parse_header(utt)
                    meeting.venue = info.get("venue")
                    meeting.attendees = info["attendees"]
                    meeting.absentees = info["absentees"]
                    meeting.officials = info["officials"]
                    meeting.agenda = info["agenda"]
                rows.append({"kind": kind, "speaker_raw": None, "text": text})
                continue
            field_chars += len(speaker)
            acct.add("speaker_label", len(speaker))
            text, notes = text_block(utt, acct, "speech")
            n_speakers += 1
            if text:  # a speaker row whose Utterance is null/blank says nothing: no empty speech row
                rows.append({"kind": "speech", "speaker_raw": speaker, "text": text})
            rows += [{"kind": "procedural_note", "speaker_raw": None, "text": n} for n in notes]
        if n_speakers and not any(r["kind"] == "speech" for r in rows):
            raise PipelineError(src.path, f"meeting {k}: no speech (the Utterance of every speaker row is null or empty)")
        meeting.rows = rows
        meetings.append(meeting)
    acct.add("other", acct.chars_in - field_chars)
    return Document(meetings, acct, NAME, src.encoding)
