"""会議録検索システム (kensakusystem.jp) text downloads of local-assembly minutes.

Shape (UTF-8 text, as the system's download / copy gives it)::

    開催日：令和 7年 2月14日
    会議名：令和 7年第1回定例会（第1日 2月14日）

    ○議事日程
    （出席議員・出席説明員・議事日程 …）
      午後１時開会・開議
    ○（伊藤よしのり議長）　出席議員は定足数に達しております。
    ○２２番（筒井たかひさ議員）　…
    ○議長（清野一榮議員）　…
    ○おのせ康裕議長　　…

Three marker styles (``○（氏名役職）``, ``○役職（氏名議員）`` / ``○N番（氏名議員）``, ``○氏名役職``) are read
by :mod:`pipeline.ingest.assembly`; ``<PAGE="n">`` lines are page marks; the ``○議事日程`` block
(roster, agenda) is the header; the date comes from ``開催日：`` (和暦), else from the header text.
"""
from __future__ import annotations

import re

from pipeline.errors import PipelineError
from pipeline.ingest.assembly import agenda_from_header, match_turn, members_from_header, read_turns, roster_text
from pipeline.ingest.clean import Accounting, normalize_width
from pipeline.ingest.model import Document, Meeting, Source
from pipeline.ingest.structure import parse_date, parse_session
from pipeline.textio import lines_of

NAME = "kensakusystem_text"

_FIELD = re.compile(r"^(開催日|会議名)[：:][ \t\u3000]*([^\r\n]*?)[ \t\u3000\r]*$", re.M)


def sniff(src: Source) -> float:
    if src.suffix in (".pdf", ".json", ".html", ".htm"):
        return 0.0
    try:
        head = src.text[:400]
    except PipelineError:
        return 0.0
    fields = {m.group(1) for m in _FIELD.finditer(head)}
    if fields != {"開催日", "会議名"}:
        return 0.0
    return 0.95 if any(match_turn(line) for line in lines_of(src.text)) else 0.0


def read(src: Source) -> Document:
    text = src.text
    acct = Accounting(chars_in=len(text))
    rows, header_text, _ = read_turns(text, acct)
    if not any(r["kind"] == "speech" for r in rows):
        raise PipelineError(src.path, "no speaker turns found (expected lines opening with ○ and a speaker label)")
    fields = {m.group(1): m.group(2) for m in _FIELD.finditer(text[:400])}
    title = normalize_width(re.sub(r"[ \t\u3000]+", " ", fields.get("会議名", ""))).strip() or None
    meeting = Meeting(title=title, date=parse_date(fields.get("開催日")) or parse_date(header_text),
                      session=parse_session(title), roster_text=roster_text(header_text),
                    agenda=agenda_from_header(header_text))
    meeting.attendees, meeting.absentees = members_from_header(header_text)
    meeting.rows = ([{"kind": "header", "speaker_raw": None, "text": header_text}] if header_text else []) + rows
    return Document([meeting], acct, NAME, src.encoding)
