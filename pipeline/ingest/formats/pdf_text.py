"""Minutes text extracted from PDF (ministry 議事録), e.g. data/raw/mic-chiiki-ict-06_2024-04-24.txt.

Layout handled:
* turns open with ○ / 〇 / ◯ + speaker label + spaces;
* printed page numbers (``-18-``) on their own line; form feeds (``\\f``, from the
  PDF reader) mark exact page breaks; in double-spaced copied text a single
  newline marks a page end too (see :func:`_soft_pages`);
* lines hard-broken every ~40 characters (mid-word, mid-sentence) and blank
  lines between lines; a paragraph ends where a line ends with layout space or the
  next line is indented with a full-width space;
* a header block before the first turn (title, 開催日時及び場所, 出席構成員,
  ministry attendees, 議事) and the closing mark (── 了 ──).
"""
from __future__ import annotations

import re

from pipeline.errors import PipelineError
from pipeline.ingest.clean import Accounting, Block, split_ws
from pipeline.ingest.model import Document, Meeting, Source
from pipeline.ingest.structure import absentees_from_speech, parse_date, parse_minutes_header, parse_session
from pipeline.textio import lines_of, split_lines

NAME = "pdf_text"

TURN_MARKS = "○〇◯"
#: the label follows the mark directly ('○ 地域の課題' with a space is a bullet, not a turn)
_TURN = re.compile(rf"^[ \t\u3000]*([{TURN_MARKS}])([^ \t\u3000]+)([ \t\u3000]*)(.*)$")
_PAGE = re.compile(r"^[ \t\u3000]*(?:[-－−‐―ー—–]\s*([0-9０-９]{1,4})\s*[-－−‐―ー—–]"      # -18- / － １８ －
                   r"|([0-9０-９]{1,4})\s*[/／]\s*[0-9０-９]{1,4}"                          # 18/40
                   r"|[pPｐＰ][.．]?\s*([0-9０-９]{1,4}))[ \t\u3000]*$")                    # p.18
_GLUED_PAGE = re.compile(r"^(.*[^ \t\u3000])([ \t\u3000]+)([-－−]\s*[0-9０-９]{1,4}\s*[-－−])([ \t\u3000]*)$")
_PAGE_BARE = re.compile(r"^[ \t\u3000]*([0-9０-９]{1,4})[ \t\u3000]*$")
_CLOSING = re.compile(r"^[ \t\u3000]*[─━—―\-－]+[ \t\u3000]*(了|以上)[ \t\u3000]*[─━—―\-－]+[ \t\u3000]*$")
#: '（以上）' / '以上' / '了' alone on the last line closes the minutes too
_CLOSING_SOFT = re.compile(r"^[ \t\u3000]*[（(]?(?:以上|了)[）)]?[ \t\u3000]*$")
#: a turn label is short and is not a sentence
_MAX_LABEL = 40


_TURN_PAREN = re.compile(rf"^[ \t\u3000]*([{TURN_MARKS}])([^ \t\u3000（(]{{1,20}}[（(][^）)]{{1,20}}[）)])()(.+)$")


def _is_turn(line: str) -> re.Match | None:
    m = _TURN.match(line)
    if m and not m.group(3) and (m.group(4) or len(m.group(2)) > 20 or "。" in m.group(2)):
        # no separator: '○事務局（佐々木課長）事務局の…' -> the label ends at its closing parenthesis
        m = _TURN_PAREN.match(line)
    if not m or len(m.group(2)) > _MAX_LABEL or "。" in m.group(2) or "、" in m.group(2):
        return None
    return m


def sniff(src: Source) -> float:
    if src.suffix in (".pdf", ".json"):
        return 0.0
    try:
        text = src.text
    except PipelineError:
        return 0.0
    turns = sum(1 for line in lines_of(text) if _is_turn(line))
    # grows with the number of turns, so a stray ○ bullet loses to many '名前：' turns
    return min(0.9, 0.3 + 0.1 * turns) if turns else 0.0


def read(src: Source) -> Document:
    text = src.text
    meetings, acct = parse_minutes_meetings(text, src.path)
    return Document(meetings, acct, NAME, src.encoding)


def parse_minutes_meetings(text: str, path=None) -> tuple[list[Meeting], Accounting]:
    """Text of PDF minutes -> one :class:`Meeting` per closing mark (``── 了 ──``) followed by more
    turns, and the accounting of the whole text.

    A closing mark ends a meeting, not the file: two sets of minutes in one file (or an
    appended session) become two meetings; nothing after a closing mark is dropped.
    """
    lines = split_lines(text)
    turn_after = _turns_after(lines)
    cuts = [0]
    for i, (raw, _) in enumerate(lines):
        if _CLOSING.match(raw) and turn_after[i] and any(_is_turn(r) for r, _ in lines[cuts[-1]:i]):
            cuts.append(i + 1)
    cuts.append(len(lines))
    meetings: list[Meeting] = []
    acct = Accounting()
    page = 1
    for a, b in zip(cuts, cuts[1:]):
        seg = "".join(r + nl for r, nl in lines[a:b])
        m, seg_acct = parse_minutes_text(seg, path, first_page=page)
        meetings.append(m)
        acct.merge(seg_acct)
        page += seg.count("\f")
    return meetings, acct


def _turns_after(lines) -> list[bool]:
    """``out[i]``: some line after line i opens a turn."""
    out, seen = [False] * len(lines), False
    for i in range(len(lines) - 1, -1, -1):
        out[i] = seen
        seen = seen or bool(_is_turn(lines[i][0]))
    return out


def parse_minutes_text(text: str, path=None, first_page: int = 1) -> tuple[Meeting, Accounting]:
    """Text of PDF minutes -> one :class:`Meeting` with header + speech rows, and the accounting."""
    acct = Accounting(chars_in=len(text))
    lines = split_lines(text)
    turn_after = _turns_after(lines)

    rows: list[dict] = []
    header = Block(acct, "header")
    header_lines: list[str] = []
    current: Block | None = None
    cur_label: str | None = None
    page = first_page              # page of the current line when form feeds are present
    has_ff = "\f" in text
    markers: list[tuple[int, int]] = []   # (line index, printed page number)
    line_pages: list[int] = []
    closed = False

    def finish():
        nonlocal current
        if current is not None:
            body = current.close()
            rows.append({"kind": "speech", "speaker_raw": cur_label, "text": body,
                         "_first": current.first_line, "_last": current.last_line})
            current = None

    carry = 0                      # the previous line's newline: layout of whichever block is open
    for i, (raw, nl) in enumerate(lines):
        line_pages.append(page)
        target = current if current is not None else header
        target.add_layout(carry)
        carry = 0
        if nl == "\f":
            acct.add("page_marker", 1)
            page += 1
        else:
            carry = len(nl)
        if closed:
            lead, content, trail = split_ws(raw)
            acct.add("whitespace", len(lead) + len(trail))
            acct.add("other", len(content))
            continue
        raw = _page_marker(raw, lines, i, has_ff, acct, markers)
        if raw is None:
            continue
        if _CLOSING.match(raw) or (_CLOSING_SOFT.match(raw) and all(
                not r.strip(" \t\u3000") or _PAGE.match(r) for r, _ in lines[i + 1:])):
            finish()
            lead, content, trail = split_ws(raw)
            acct.add("whitespace", len(lead) + len(trail))
            acct.add("other", len(content))
            # only trailing matter (no turn follows) is closed off; speech after a mark is read
            closed = not turn_after[i]
            continue
        m = _is_turn(raw)
        if m:
            finish()
            lead_ws = raw[: m.start(1)]
            acct.add("whitespace", len(lead_ws) + len(m.group(3)))
            acct.add("speaker_label", len(m.group(1)) + len(m.group(2)))
            cur_label = m.group(2)
            current = Block(acct, "speech")
            rest = m.group(4)
            _, content, trail = split_ws(rest)
            current.add_line("", content, trail, i)
            if not content:
                current.first_line = i
            continue
        lead, content, trail = split_ws(raw)
        target.add_line(lead, content, trail, i)
        if current is None and content:
            header_lines.append(content)
    (current if current is not None else header).add_layout(carry)
    finish()
    header_text = header.close()
    if not rows:
        raise PipelineError(path, "no speaker turns found (expected lines opening with ○名前)")
    page_of = _PageInfo(lines, has_ff, line_pages, markers)
    return _meeting(header_lines, header_text, (header.first_line, header.last_line), rows, page_of), acct


def _page_marker(raw: str, lines, i: int, has_ff: bool, acct: Accounting, markers: list) -> str | None:
    """Account a printed page number on line ``i``: None when the whole line is one, else the line
    without a number glued to its end ('ございます。 -18-')."""
    g = _GLUED_PAGE.match(raw)
    if g and not _PAGE.match(raw):
        sep, num = g.group(2), g.group(3)
        acct.add("whitespace", len(sep))
        acct.add("page_marker", len(num))
        markers.append((i, int(re.search(r"[0-9０-９]+", num).group().translate(_DIG))))
        raw = g.group(1) + g.group(4)
    if _PAGE.match(raw) or (_PAGE_BARE.match(raw) and _looks_like_bare_page(lines, i, has_ff)):
        lead, content, trail = split_ws(raw)
        acct.add("whitespace", len(lead) + len(trail))
        acct.add("page_marker", len(content))
        markers.append((i, int(re.search(r"[0-9０-９]+", content).group().translate(_DIG))))
        return None
    return raw


class _PageInfo:
    """Where the page numbers are: line -> page (form feeds) or printed page markers."""

    def __init__(self, lines, has_ff: bool, line_pages: list[int], markers: list[tuple[int, int]]):
        self.has_ff, self.line_pages, self.markers = has_ff, line_pages, markers
        self.soft_pages = None if has_ff else _soft_pages(lines, markers)

    def span(self, first, last):
        return _page_span(first, last, self.has_ff, self.line_pages, self.markers, self.soft_pages)


def _meeting(header_lines: list[str], header_text: str, header_span, rows: list[dict], pages: _PageInfo) -> Meeting:
    """The meeting of parsed minutes: header fields, the header row + speech rows with page spans."""
    info = parse_minutes_header(header_lines)
    meeting = Meeting(title=info.title, date=info.date or parse_date(header_text),
                      session=parse_session(info.title or header_text), venue=info.venue,
                      attendees=info.attendees or [], officials=info.officials or [],
                      absentees=info.absentees or [], agenda=info.agenda or [],
                      secretariat=info.secretariat)
    out: list[dict] = []
    if header_text:
        out.append({"kind": "header", "speaker_raw": None, "text": header_text,
                    "_first": header_span[0], "_last": header_span[1]})
    out += rows
    if not meeting.absentees:
        meeting.absentees = absentees_from_speech([r["text"] for r in rows[:3]]) or []
    for r in out:
        r["page_start"], r["page_end"] = pages.span(r.pop("_first"), r.pop("_last"))
    meeting.rows = out
    return meeting


_DIG = str.maketrans("０１２３４５６７８９", "0123456789")


def _looks_like_bare_page(lines, i, has_ff: bool) -> bool:
    """A bare number line ('18') is a page number only where a footer sits.

    With form feeds (PDF route): the last line of a page. Otherwise: after at least two
    blank lines and before a blank line (a number alone inside double-spaced text, with
    one blank line around it, stays text).
    """
    def blank(j):
        return j < 0 or j >= len(lines) or not lines[j][0].strip(" \t\u3000")

    if has_ff:
        return lines[i][1] == "\f" or (i + 1 < len(lines) and lines[i + 1] == ("", "\f")) \
            or i == len(lines) - 1 or (i + 1 < len(lines) and all(blank(j) for j in range(i + 1, len(lines))))
    return blank(i - 1) and blank(i - 2) and blank(i + 1) and i >= 2


def _soft_pages(lines, markers) -> list[int] | None:
    """Printed page number of every line of double-spaced PDF text, or None.

    Text copied out of PDF viewers often puts a blank line between all lines but
    only a single newline where a page ended (the next page's first line then
    starts with a space); printed page numbers (-18-) mark the other page ends.
    Pages are counted from those breaks and calibrated on the printed numbers;
    if the calibration is inconsistent, None (the caller falls back to bounds).
    """
    nonempty = [bool(raw.strip(" \t\u3000")) for raw, _ in lines]
    marker_lines = {i for i, _ in markers}
    pairs = [i for i in range(len(lines) - 1) if nonempty[i] and i not in marker_lines]
    if len(pairs) < 20 or sum(not nonempty[i + 1] for i in pairs) < 0.8 * len(pairs):
        return None
    soft = {i for i in pairs if nonempty[i + 1] and i + 1 not in marker_lines}
    if not soft and not markers:
        return None
    pages, cur = [], 1
    for i in range(len(lines)):
        pages.append(cur)
        if i in soft or i in marker_lines:
            cur += 1
    offsets = {n - pages[i] for i, n in markers}
    if len(offsets) > 1:
        return None
    offset = offsets.pop() if offsets else 0
    return [p + offset for p in pages]


def _page_span(first, last, has_ff, line_pages, markers, soft_pages=None):
    if first is None:
        return None, None
    if has_ff:
        return line_pages[first], line_pages[last]
    if soft_pages is not None:
        return soft_pages[first], soft_pages[last]
    if not markers:
        return None, None
    before = [n for i, n in markers if i < first]
    after = [n for i, n in markers if i > last]
    start = before[-1] + 1 if before else 1
    end = after[0] if after else None
    return start, end
