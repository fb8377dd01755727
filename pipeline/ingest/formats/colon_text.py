"""'名前：発言' / '名前: 発言' plain text, as many ministry web pages publish minutes.

A turn opens with a short label followed by a full-width or ASCII colon at the
start of a line (``田中委員：ご説明ありがとうございます。``, ``事務局（佐藤課長）: …``,
``【座長】`` is not this format). Lines until the next label continue the turn;
lines before the first turn are the header. Header-like labels (日時：, 場所：,
出席者：, 議題：…) are header lines, not speakers.
"""
from __future__ import annotations

import re

from pipeline.errors import PipelineError
from pipeline.ingest.clean import Accounting, Block, normalize_width, split_ws
from pipeline.ingest.model import Document, Meeting, Source
from pipeline.ingest.structure import parse_date, parse_session, split_agenda
from pipeline.textio import lines_of, split_lines

NAME = "colon_text"

_TURN = re.compile(r"^([ \t\u3000]*)([^\s\u3000：:、。「」]{1,30}?(?:[（(][^）)\n]{1,20}[）)])?)([ \t\u3000]*[：:][ \t\u3000]*)(.*)$")
HEADER_KEYS = ("日時", "開催日時", "日付", "場所", "会場", "開催場所", "出席者", "出席委員", "出席構成員", "欠席者",
               "欠席委員", "議題", "議事", "議事次第", "配布資料", "資料", "件名", "会議名", "時間", "備考", "傍聴",
               "オブザーバー", "事務局出席者")


def _turn(line: str):
    m = _TURN.match(line)
    if not m or m.group(2) in HEADER_KEYS or re.fullmatch(r"[0-9０-９:：]+", m.group(2)):
        return None
    if re.match(r"^[0-9０-９]", m.group(2)):     # 10:00 / １０：００ times
        return None
    return m


def _speaker_labels(lines) -> set[str]:
    """Labels that look like speakers: a role/title word, a parenthesis, or used for 2+ turns.

    Keeps a sentence such as 'ポイントは次のとおり：' from opening a turn.
    """
    from collections import Counter

    from pipeline.ingest.speakers import OFFICIAL_SUFFIXES, ROLE_SUFFIXES

    counts = Counter(m.group(2) for m in map(_turn, lines) if m)
    return {lab for lab, n in counts.items()
            if n >= 2 or "（" in lab or "(" in lab or lab.endswith(tuple(ROLE_SUFFIXES)) or lab.endswith(OFFICIAL_SUFFIXES)}


def sniff(src: Source) -> float:
    if src.suffix in (".pdf", ".json"):
        return 0.0
    try:
        lines = lines_of(src.text)
    except PipelineError:
        return 0.0
    labels = _speaker_labels(lines)
    turns = [m.group(2) for m in map(_turn, lines) if m and m.group(2) in labels]
    return min(0.85, 0.3 + 0.1 * len(turns)) if len(turns) >= 2 else 0.0


def read(src: Source) -> Document:
    meeting, acct = parse_colon_text(src.text, src.path)
    return Document([meeting], acct, NAME, src.encoding)


def parse_colon_text(text: str, path=None) -> tuple[Meeting, Accounting]:
    """'名前：発言' text -> one :class:`Meeting` and the character accounting."""
    acct = Accounting(chars_in=len(text))
    lines = split_lines(text)
    header = Block(acct, "header")
    header_lines: list[str] = []
    rows: list[dict] = []
    cur: Block | None = None
    label = None
    carry = 0
    labels = _speaker_labels([raw for raw, _ in lines])

    def finish():
        nonlocal cur
        if cur is not None:
            rows.append({"kind": "speech", "speaker_raw": label, "text": cur.close()})
            cur = None

    for i, (raw, nl) in enumerate(lines):
        (cur or header).add_layout(carry)
        carry = len(nl)
        m = _turn(raw)
        if m and m.group(2) in labels:
            finish()
            acct.add("whitespace", len(m.group(1)))
            acct.add("speaker_label", len(m.group(2)) + len(m.group(3).strip(" \t\u3000")))
            acct.add("whitespace", len(m.group(3)) - len(m.group(3).strip(" \t\u3000")))
            label = m.group(2)
            cur = Block(acct, "speech")
            lead, content, trail = split_ws(m.group(4))
            cur.add_line(lead, content, trail, i)
            continue
        lead, content, trail = split_ws(raw)
        # web text: every line is a paragraph (no hard wraps inside sentences)
        (cur or header).add_line(lead, content, trail, i, force_break=True)
        if cur is None and content:
            header_lines.append(content)
    (cur or header).add_layout(carry)
    finish()
    header_text = header.close()
    if not rows:
        raise PipelineError(path, "no speaker turns found (expected lines '名前：発言')")
    meeting = Meeting(title=normalize_width(header_lines[0]) if header_lines else None,
                      date=parse_date(header_text), session=parse_session(header_text))
    for h in header_lines:
        key, _, val = h.replace(":", "：").partition("：")
        if key in ("場所", "会場", "開催場所") and val:
            meeting.venue = normalize_width(val.strip())
        elif key in ("議題", "議事", "議事次第") and val:
            meeting.agenda = split_agenda(val)
        elif key in ("出席者", "出席委員", "出席構成員") and val:
            meeting.attendees = [x.strip() for x in re.split(r"[、，,]", normalize_width(val)) if x.strip()]
        elif key in ("欠席者", "欠席委員") and val:
            meeting.absentees = [x.strip() for x in re.split(r"[、，,]", normalize_width(val)) if x.strip()]
    meeting.rows = ([{"kind": "header", "speaker_raw": None, "text": header_text}] if header_text else []) + rows
    return meeting, acct
