"""Structure recovered from minutes: dates, session numbers, header blocks, agenda.

Pure functions on strings; no I/O. Readers call them, tests exercise them directly. Speaker
labels are read by :mod:`pipeline.ingest.speakers`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.ingest.clean import normalize_width

# ---------------------------------------------------------------- numerals / dates

_KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
                 "壱": 1, "弐": 2, "参": 3}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
NUM = r"[0-9０-９〇零一二三四五六七八九十百千壱弐参]+"


def parse_number(s: str) -> int | None:
    """'６' / '12' / '十二' / '二〇二四' / '百二十四' / '元' -> int (None if not a number)."""
    s = normalize_width(s.strip())
    if not s:
        return None
    if s == "元":
        return 1
    if s.isdigit():
        return int(s)
    if any(ch not in _KANJI_DIGITS and ch not in _KANJI_UNITS for ch in s):
        return None
    if not any(ch in _KANJI_UNITS for ch in s):  # positional: 二〇二四
        return int("".join(str(_KANJI_DIGITS[ch]) for ch in s))
    total, current = 0, 0
    for ch in s:
        if ch in _KANJI_DIGITS:
            current = _KANJI_DIGITS[ch]
        else:
            total += (current or 1) * _KANJI_UNITS[ch]
            current = 0
    return total + current


#: era name -> Gregorian year of era year 1
ERAS = {"令和": 2019, "平成": 1989, "昭和": 1926, "大正": 1912, "明治": 1868, "R": 2019, "H": 1989, "S": 1926}

_ERA_DATE = re.compile(rf"(令和|平成|昭和|大正|明治)\s*({NUM}|元)\s*年\s*({NUM})\s*月\s*({NUM})\s*日")
_WEST_DATE_KANJI = re.compile(rf"([0-9０-９]{{4}}|[〇一二三四五六七八九]{{4}})\s*年\s*({NUM})\s*月\s*({NUM})\s*日")
_WEST_DATE_SEP = re.compile(r"(?<![0-9])([12][0-9]{3})\s*[/\-.]\s*([0-9]{1,2})\s*[/\-.]\s*([0-9]{1,2})(?![0-9])")


def _iso(y: int | None, m: int | None, d: int | None) -> str | None:
    import datetime as dt

    if y is None or m is None or d is None:
        return None
    try:
        return dt.date(y, m, d).isoformat()
    except ValueError:
        return None


def parse_date(text: str | None) -> str | None:
    """First date in ``text`` as ISO ``YYYY-MM-DD``.

    Handles 令和６年４月２４日, 令和二年二月十九日, 平成元年…, 昭和…, 2024年4月24日, 2020/2/19, 2024-04-24.
    """
    if not text:
        return None
    t = normalize_width(text)
    found: list[tuple[int, str]] = []
    m = _ERA_DATE.search(t)
    if m:
        era_year = parse_number(m.group(2))
        iso = _iso(ERAS[m.group(1)] + era_year - 1 if era_year else None,
                   parse_number(m.group(3)), parse_number(m.group(4)))
        if iso:
            found.append((m.start(), iso))
    m = _WEST_DATE_KANJI.search(t)
    if m:
        iso = _iso(parse_number(m.group(1)), parse_number(m.group(2)), parse_number(m.group(3)))
        if iso:
            found.append((m.start(), iso))
    m = _WEST_DATE_SEP.search(t)
    if m:
        iso = _iso(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if iso:
            found.append((m.start(), iso))
    return min(found)[1] if found else None


_SESSION = re.compile(rf"第\s*({NUM})\s*回")
_ISSUE = re.compile(rf"第\s*({NUM})\s*号")


def parse_session(text: str | None) -> int | None:
    """第６回 / 第十二回 -> 6 / 12; falls back to 第N号 (record number of a committee series)."""
    if not text:
        return None
    for rx in (_SESSION, _ISSUE):
        m = rx.search(text)
        if m:
            return parse_number(m.group(1))
    return None


# ---------------------------------------------------------------- header blocks

_HEADING = re.compile(r"^([0-9０-９]{1,2})[\s\u3000.．、]*(.+)$")
_HEADING_KEYS = ("開催日時", "日時", "場所", "出席", "欠席", "総務省", "省", "庁", "議事", "議題", "配布資料", "資料", "次第")
_MINUTES_WORDS = ("議事録", "議事要旨", "議事概要", "会議録", "速記録")


@dataclass
class HeaderInfo:
    title: str | None = None
    date: str | None = None
    venue: str | None = None
    attendees: list[str] | None = None
    officials: list[str] | None = None
    absentees: list[str] | None = None
    agenda: list[str] | None = None
    secretariat: str | None = None


def _split_list(text: str) -> list[str]:
    text = re.sub(r"[（(]敬称略[）)]", "", text)
    out = []
    for part in re.split(r"[、，,]", text):
        part = re.sub(r"[\s\u3000]+他$", "", part.strip())      # '…参事官補佐 他' (and others)
        part = re.sub(r"[\s\u3000]+", "", part)
        if part and part not in ("他", "なし"):
            out.append(part)
    return out


def split_agenda(text: str) -> list[str]:
    """'（１）…（２）…' -> ['（1）…', '（2）…'] (numbering kept, width-normalised)."""
    text = normalize_width(text)
    idx = [m.start() for m in re.finditer(r"[（(][0-9]{1,2}[）)]", text)]
    if not idx:
        return [line.strip() for line in text.split("\n") if line.strip()]
    return [text[a:b].strip() for a, b in zip(idx, idx[1:] + [len(text)]) if text[a:b].strip()]


def parse_minutes_header(lines: list[str]) -> HeaderInfo:
    """Header block of ministry minutes (content lines, no layout whitespace) -> :class:`HeaderInfo`.

    Title = lines before '議事録'; numbered sections '１ 開催日時及び場所', '２ 出席構成員',
    '３ 総務省', '４ 議事' give date/venue, attendees, officials and agenda.
    """
    info = HeaderInfo()
    title_lines: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    in_title = True
    for line in lines:
        line = line.strip(" \u3000")
        if not line:
            continue
        if in_title and line in _MINUTES_WORDS:
            in_title = False
            continue
        m = _HEADING.match(line)
        if m:
            # '１ 開催日時及び場所' or with the value inline: '１　日時　令和二年二月十九日（水）'
            head, _, rest = re.sub(r"[\s\u3000]+", " ", m.group(2).strip()).partition(" ")
            if any(k in head for k in _HEADING_KEYS) and len(head) <= 20:
                in_title = False
                sections.append((head, [rest] if rest else []))
                continue
        if in_title:
            title_lines.append(line)
        elif sections:
            sections[-1][1].append(line)
    if title_lines:
        info.title = normalize_width("".join(title_lines))
    for head, body in sections:
        joined = "".join(body)
        if "日時" in head or "場所" in head:
            info.date = info.date or parse_date(joined)
            venue = [b for b in body if not parse_date(b) and not re.search(r"[0-9０-９]+[:：][0-9０-９]+", b)]
            if venue:
                info.venue = normalize_width("、".join(venue))
        elif "欠席" in head:
            info.absentees = _split_list(normalize_width(joined))
        elif "出席" in head:
            info.attendees = (info.attendees or []) + _split_list(normalize_width(joined))
        elif "議事" in head or "議題" in head or "次第" in head:
            # numbered items may wrap over lines: split the joined text on （n）; else one item a line
            numbered = re.search(r"[（(][0-9０-９]{1,2}[）)]", joined)
            info.agenda = split_agenda(joined) if numbered else [normalize_width(b) for b in body]
        elif head.endswith(("省", "庁", "府", "事務局")):
            info.officials = _split_list(normalize_width(joined))
            info.secretariat = head
    return info


_ABSENT = re.compile(r"(?:本日は|なお)、?((?:[^。、]{1,12}(?:構成員|委員|議員)、?)+)(?:が|は)、?(?:御|ご)?欠席")


def absentees_from_speech(texts: list[str]) -> list[str] | None:
    """'本日は、大谷構成員、砂田構成員…が御欠席と伺っております' -> ['大谷構成員', ...]."""
    for t in texts:
        m = _ABSENT.search(t)
        if m:
            return _split_list(m.group(1))
    return None


# ---------------------------------------------------------------- agenda assignment

CHAIR_ROLES = ("座長", "委員長", "議長", "会長", "主査", "座長代理", "副議長", "副委員長", "会長代理")
_DISCUSSION = re.compile(r"意見交換|質疑|討議|自由討論|その他")
_OPEN_DISCUSSION = re.compile(r"質疑に入|御意見|ご意見|御質問|ご質問|御発言|ご発言|意見交換")


def _item_number(item: str) -> int | None:
    m = re.match(r"[（(]([0-9]{1,2})[）)]|日程第([0-9]{1,3})", item)     # （１）… / 日程第１ … (assemblies)
    return int(m.group(1) or m.group(2)) if m else None


BATCH = -1


def _item_core(item: str) -> str:
    return re.sub(r"^(?:[（(][0-9]{1,2}[）)]|日程第[0-9]{1,3})", "", item).strip("「」『』・ \u3000")


def _announced_item(text: str, agenda: list[str]) -> int | None:
    """Index into ``agenda`` of the item the chair moves to in ``text`` (or None).

    Numbered references (まず、２の（１）… / 議題２、（２）として / 議題２の３) and item titles
    quoted by the chair (これより委員長の互選を行います) count; when a turn mentions
    several, the last one wins (the turn closes one item and opens the next).
    """
    t = normalize_width(text)
    numbers = {_item_number(a): i for i, a in enumerate(agenda) if _item_number(a) is not None}
    hits: list[tuple[int, int]] = []
    pats = [r"(?:議題|議事)\s*[0-9]\s*[の、]\s*[（(]?([0-9]{1,2})[）)]?",   # 議題２の３ / 議題２、（２）
            r"[0-9]\s*の\s*[（(]([0-9]{1,2})[）)]",                          # ２の（１）
            r"(?:議題|議事)\s*[（(]([0-9]{1,2})[）)]",                       # 議題（２）
            r"(?<!追加)日程第\s*([0-9]{1,3})"]                                # 日程第２、会期の決定を議題…
    for pat in pats:
        for m in re.finditer(pat, t):
            if int(m.group(1)) in numbers:
                hits.append((m.start(), numbers[int(m.group(1))]))
    for i, a in enumerate(agenda):
        # 'category：item' (Tokyo 報告事項（説明）：…) matches on either part
        for core in _item_core(a).split("："):
            core = re.sub(r"[（(](?:説明|質疑|案)[）)]$", "", core)
            if len(core) >= 4 and core != "その他":
                pos = t.rfind(core if len(core) < 10 else core[:10])
                if pos >= 0:
                    hits.append((pos, i))
            if core.startswith("報告事項"):     # 理事者から報告の申し出があります / 報告を聴取
                last = [m.start() for m in re.finditer(r"報告の申し出|報告を聴取|報告事項に入", t)][-1:]
                hits += [(pos, i) for pos in last]
    if len({i for _, i in hits}) >= 3:
        return BATCH  # several items taken together (一括議題): no single item
    return max(hits)[1] if hits else None


def assign_agenda(rows: list[dict], agenda: list[str] | None) -> None:
    """Set ``agenda_item`` on speech rows from the chair's announcements (in place).

    Turns before the first announcement (opening remarks) get None. A trailing
    discussion item (意見交換 / 質疑) starts when, after the last presentation item
    was announced, the chair opens the floor (質疑に入り… / 御意見…).
    """
    if not agenda:
        return
    if len(agenda) == 1:
        for row in rows:
            if row.get("kind") == "speech":
                row["agenda_item"] = agenda[0]
        return
    current: int | None = None
    last = len(agenda) - 1
    disc = last if _DISCUSSION.search(re.sub(r"^[（(][0-9]+[）)]", "", agenda[last])) and last > 0 else None
    for row in rows:
        if row.get("kind") != "speech":
            continue
        if row.get("speaker_role") in CHAIR_ROLES:
            k = _announced_item(row["text"], agenda)
            if k == BATCH:
                current = None
            elif k is not None:
                current = k
            elif disc is not None and current != disc and (
                    re.search(r"意見交換に(?:移|入|進)", row["text"])
                    or (current == disc - 1 and _OPEN_DISCUSSION.search(row["text"]))):
                current = disc
        row["agenda_item"] = agenda[current] if current is not None else None
