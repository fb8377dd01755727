"""審議会・検討会 minutes as ministries publish them (text copied from the PDF / web page), in the
label styles besides the ``○山田座長　…`` of :mod:`pdf_text`:

* ``【石川座長】`` — the label in lenticular brackets, the speech after it on the same line or below;
* ``山田座長：…`` / ``山田委員　…`` — the label then a colon, or a role-suffixed label then a space;
* ``田中会長`` alone on its line, the speech on the lines below.

A label is a speaker label when :func:`pipeline.ingest.speakers.parse_speaker` finds a person in
it or it is a chair/secretariat role (座長, 会長, 委員長, 事務局 …): ``【構成員】石川座長、…`` or
``【総務省】…`` in the attendance list are header lines, not turns. Lines before the first turn are
the header (title, 日時, 場所, 出席者, 議事, read by :func:`parse_minutes_header`); a closing
``（以上）`` / ``── 了 ──`` is dropped (``other``). Every line of a turn is a paragraph.
"""
from __future__ import annotations

import re

from pipeline.errors import PipelineError
from pipeline.ingest.clean import Accounting, Block, normalize_width, split_ws
from pipeline.ingest.model import Document, Meeting, Source
from pipeline.ingest.speakers import OFFICIAL_SUFFIXES, ROLE_SUFFIXES, parse_speaker
from pipeline.ingest.structure import parse_date, parse_minutes_header, parse_session
from pipeline.textio import lines_of, split_lines

NAME = "shingikai_text"

_CORE = r"[^\s\u3000：:。、「」【】（）()]{1,16}(?:[（(][^）)\s\u3000]{1,16}[）)])?"
_BRACKET = re.compile(r"^【([^【】。\n]{1,30})】[ \t\u3000]*(.*)$")
_COLON = re.compile(rf"^({_CORE})([ \t\u3000]*[：:][ \t\u3000]*)(.*)$")
_SPACE = re.compile(rf"^({_CORE})([ \t\u3000]+)(\S.*)$")
_ALONE = re.compile(rf"^({_CORE})$")
_CLOSING = re.compile(r"^[ \t\u3000]*(?:[─━—―\-－]+[ \t\u3000]*(?:了|以上)[ \t\u3000]*[─━—―\-－]+|[（(]以上[）)]|以上)[ \t\u3000]*$")
_CHAIR = ("座長", "座長代理", "会長", "会長代理", "委員長", "部会長", "分科会長", "主査", "議長", "事務局")
_HEADER_KEYS = ("日時", "開催日時", "場所", "会場", "出席者", "出席委員", "出席構成員", "欠席者", "議題", "議事", "配布資料",
                "資料", "事務局出席者", "オブザーバー", "構成員", "委員", "総務省", "傍聴")
_ROLE_WORDS = tuple(s for s in ROLE_SUFFIXES if s not in ("君", "氏", "さん", "先生")) + OFFICIAL_SUFFIXES


def is_label(label: str) -> bool:
    lab = normalize_width(label).strip(" \u3000")
    if not lab or lab in _HEADER_KEYS or re.match(r"^[0-9]", lab):
        return False
    inner = re.sub(r"^.*[（(]|[）)]$", "", lab)
    if not (lab.endswith(_ROLE_WORDS) or (lab.endswith(("）", ")")) and inner.endswith(_ROLE_WORDS))):
        return False
    sp = parse_speaker(lab)
    return bool(sp.name) or lab in _CHAIR or (sp.role in _CHAIR and not sp.name and lab == sp.title)


def _turn(line: str):
    """-> (label, separator, rest) when the line opens a turn."""
    m = _BRACKET.match(line)
    if m and is_label(m.group(1)):
        sep = line[len(m.group(1)) + 2: len(line) - len(m.group(2))]
        return "【" + m.group(1) + "】", sep, m.group(2)
    for rx in (_COLON, _SPACE):
        m = rx.match(line)
        if m and is_label(m.group(1)):
            return m.group(1), m.group(2), m.group(3)
    m = _ALONE.match(line.rstrip(" \t\u3000"))
    if m and is_label(m.group(1)):
        return m.group(1), line[len(m.group(1)):], ""
    return None


def _has_labels(text: str, need: int = 2) -> bool:
    """At least ``need`` 【label】 / label-alone / label-space lines (stops at the ``need``-th)."""
    n = 0
    for line in lines_of(text):
        if line[:1] in " \t\u3000" or len(line) < 2:
            continue
        t = _turn(line)
        if t and (t[0].startswith("【") or not t[1].strip(" \t\u3000")):
            n += 1
            if n >= need:
                return True
    return False


def sniff(src: Source) -> float:
    if src.suffix in (".pdf", ".json", ".html", ".htm"):
        return 0.0
    try:
        text = src.text
    except PipelineError:
        return 0.0
    if any(re.match(r"^[ \t\u3000]*[○〇◯][^\s\u3000]", line) for line in lines_of(text)[:400]):
        return 0.0              # ○ turns: pdf_text
    return 0.88 if _has_labels(text) else 0.0


def _header_sections(lines: list[str]) -> list[str]:
    """Web-style header lines as the numbered sections :func:`parse_minutes_header` reads:
    ``日時：…`` -> ``0 日時 …``; ``【総務省】…`` -> ``0 総務省 …`` (officials); ``【構成員】…`` -> its list."""
    out = []
    for line in lines:
        m = re.match(r"^(開催日時|日時|開催場所|場所|会場|出席者|出席委員|出席構成員|欠席者|欠席委員|議題|議事|議事次第)"
                     r"[ \t\u3000]*[：:][ \t\u3000]*(.*)$", line)
        b = re.match(r"^【([^】]+)】[ \t\u3000]*(.*)$", line)
        if m:
            out.append(f"0 {m.group(1)} {m.group(2)}")
        elif b and b.group(1).endswith(("省", "庁", "府", "事務局")):
            out.append(f"0 {b.group(1)} {b.group(2)}")
        elif b:
            out.append(b.group(2))
        else:
            out.append(line)
    return out


def read(src: Source) -> Document:
    text = src.text
    acct = Accounting(chars_in=len(text))
    rows: list[dict] = []
    header = Block(acct, "header")
    header_lines: list[str] = []
    cur: Block | None = None
    label = None
    closed = False
    carry = 0

    def finish():
        nonlocal cur
        if cur is not None:
            rows.append({"kind": "speech", "speaker_raw": label, "text": cur.close()})
            cur = None

    for raw, nl in split_lines(text):
        (cur or header).add_layout(carry)
        carry = len(nl)
        lead, content, trail = split_ws(raw)
        if closed or (content and _CLOSING.match(raw)):
            acct.add("whitespace", len(lead) + len(trail))
            acct.add("other", len(content))
            closed = closed or bool(rows)
            continue
        t = _turn(raw) if content and not lead else None
        if t:
            finish()
            label, sep, rest = t
            bare = label.strip("【】")
            acct.add("speaker_label", len(label))
            acct.add("whitespace", len(sep) - len(sep.strip(" \t\u3000")))
            acct.add("other", len(sep.strip(" \t\u3000")))          # the colon
            label = bare
            cur = Block(acct, "speech")
            r_lead, r_content, r_trail = split_ws(rest)
            cur.add_line(r_lead, r_content, r_trail, force_break=True)
        else:
            (cur or header).add_line(lead, content, trail, force_break=True)
            if cur is None and content:
                header_lines.append(content)
    (cur or header).add_layout(carry)
    finish()
    if not rows:
        raise PipelineError(src.path, "no speaker turns found (expected 【氏名役職】, 氏名役職： or a label line)")
    header_text = header.close()
    info = parse_minutes_header(_header_sections(header_lines))
    meeting = Meeting(title=info.title, date=info.date or parse_date(header_text),
                      session=parse_session(info.title or header_text), venue=info.venue,
                      attendees=info.attendees or [], officials=info.officials or [],
                      absentees=info.absentees or [], agenda=info.agenda or [], secretariat=info.secretariat)
    meeting.rows = ([{"kind": "header", "speaker_raw": None, "text": header_text}] if header_text else []) + rows
    return Document([meeting], acct, NAME, src.encoding)
