"""Turn reader shared by the local-assembly formats (会議録検索システム text, DiscussNet SSP JSON,
DB-Search HTML): lines of ``○label　speech`` minutes -> header / speech / procedural_note rows.

One rule set for all of them, so the same line means the same thing whichever system it came from:

* a turn opens with a mark (○ ◯ 〇 ◆ ◎) at the start of a line, then the speaker label — a
  bracketed label may hold spaces (``○（植竹　貴副区長）``) — then layout space and the speech,
  or nothing (the label alone on its line, the speech below: DB-Search ``◯議長（高瀬博文）``);
  a mark followed by a non-speaker word (``○議事日程``, ``〇出席議員``) is a header line;
* stage directions and clock lines are ``procedural_note`` rows, emitted after the turn they
  interrupt: ``〔「異議なし」と呼ぶ者あり〕``, ``（「異議なし」の声あり）``, ``（…議員登壇）``,
  ``午前10時00分　開会``, ``〇午後３時５１分散会``, ``開会（午前１０時００分）``, ``閉　会``;
* rules (``────``, ``――◇――``, ``－－－``, ``＝＝＝``) are decoration (accounted as ``other``);
  ``<PAGE="2">`` lines are page marks;
* an item heading inside the speeches (``　◎会議録署名議員の指名``; with ``heading_after_rule``, a
  ``日程第１…`` line right after a rule; with ``unindented_heading``, an unindented line) and the lines
  after it up to the next turn are a ``header`` row after the turn, not speech;
* lines before the first turn are the header (roster, agenda); lines after the closing clock
  line (散会 / 閉会) that open no turn are the signature block (``header`` row, never speech).

Every character is accounted (see :class:`pipeline.ingest.clean.Accounting`).
"""
from __future__ import annotations

import re

from pipeline.ingest.clean import Accounting, Block, normalize_width, split_ws
from pipeline.ingest.speakers import OFFICIAL_SUFFIXES, ROLE_SUFFIXES
from pipeline.textio import split_lines

MARKS = "○◯〇◆◎"
_LABEL = re.compile(rf"^([{MARKS}])([^\s\u3000（(]{{0,30}}[（(][^）)\n]{{1,30}}[）)]|[^\s\u3000（(]{{1,40}})(.*)$")
_DIGITS = "0-9０-９〇零一二三四五六七八九十"
_CLOCK = rf"(?:午前|午後)[\s\u3000]*[{_DIGITS}]{{1,3}}[\s\u3000]*時(?:[\s\u3000]*[{_DIGITS}]{{1,3}}[\s\u3000]*分)?"
_EVENT = r"(?:開会|開議|散会|閉会|休憩|再開|延会|閉議|休会)(?:[・、](?:開会|開議|散会|閉会|休憩|再開))?"
_NOTE = re.compile(
    rf"^[{MARKS}]?[\s\u3000]*(?:"
    rf"〔[^〔〕]*〕"                                                    # 〔「異議なし」と呼ぶ者あり〕 〔登壇〕
    rf"|[（(][^（）()]*(?:声あり|呼ぶ者あり|登壇|降壇|退席|退場|入場|着席|拍手|起立|挙手|朗読|議場閉鎖|議場開鎖|"
    rf"発言する者あり|私語する者あり)[^（）()]*[）)]"                      # （「異議なし」の声あり） （…議員登壇）
    rf"|[（(]?{_CLOCK}[\s\u3000]*{_EVENT}[）)]?"                          # 午前10時00分　開会 / 午後１時開会・開議
    rf"|{_EVENT}[\s\u3000]*[（(]{_CLOCK}[）)]"                           # 開会（午前１０時００分）
    rf"|(?:開|閉|散)[\s\u3000]+(?:会|議)"                                 # 閉　会
    rf")[\s\u3000]*$")
_CLOSING = re.compile(r"(?:散|閉)[\s\u3000]*会|延会")
_RULE = re.compile(r"^[\s\u3000]*[─━―—‐\-－=＝~～◇◆・\u2015\u2500\u2501]{3,}[\s\u3000]*$")
_PAGE = re.compile(r'^[\s\u3000]*<PAGE="?[0-9]+"?>[\s\u3000]*$')
#: mark + word that is a section of the roster, not a speaker
_SECTION = ("議事日程", "本日の会議に付した", "出席", "欠席", "説明のため", "職務のため", "会議録署名", "会議に付", "日程",
            "議事", "議題", "会議の経過", "会議事件", "付議事件", "諸般の報告", "開会", "閉会", "散会", "開議", "休憩", "再開")


def is_speaker_label(label: str) -> bool:
    """Does this ○-label name a speaker (as opposed to a roster section such as 議事日程)?"""
    lab = normalize_width(label).strip(" \u3000")
    if not lab or lab.startswith(_SECTION) or _NOTE.match(lab):
        return False
    if re.search(r"[（(].+[）)]", lab):
        return True
    return lab.endswith((*ROLE_SUFFIXES, *OFFICIAL_SUFFIXES, "君", "長", "員", "官", "者"))


def match_turn(line: str) -> re.Match | None:
    m = _LABEL.match(line)
    if not m or not is_speaker_label(m.group(2)):
        return None
    return m


def read_turns(text: str, acct: Accounting, *, turns: bool = True, heading_after_rule: bool = False,
               unindented_heading: bool = False) -> tuple[list[dict], str, list[str]]:
    """Lines of assembly minutes -> (rows, header text, header content lines).

    ``rows`` are dicts (kind, speaker_raw, text) in reading order; the header block before the
    first turn is returned separately (the caller decides whether it becomes a ``header`` row).
    ``unindented_heading``: where every speech line is indented (DB-Search), an unindented line inside a
    turn is an item heading.
    ``turns=False``: a roster block (every line header, its scheduled clock lines too).
    ``heading_after_rule``: a line opening with 日程第 right after a rule (────) is a printed agenda
    heading, not speech (DB-Search pages print them inside the chair's block).
    """
    reader = TurnReader(acct, turns=turns, heading_after_rule=heading_after_rule,
                        unindented_heading=unindented_heading)
    for raw, nl in split_lines(text):
        reader.line(raw, nl)
    return reader.close()


class TurnReader:
    """One pass of :func:`read_turns` over the lines of a text: which block each line feeds.

    Lines go to the open turn's speech, to the header before the first turn, to an item
    heading inside the speeches, or to the signature block after the closing clock line
    (:attr:`target`); page marks, rules and stage directions are accounted and set aside.
    Rows are emitted when a turn ends (:meth:`_end_turn`): its speech, then the heading
    lines printed inside it, then the stage directions that interrupted it.
    """

    def __init__(self, acct: Accounting, *, turns: bool = True, heading_after_rule: bool = False,
                 unindented_heading: bool = False):
        self.acct = acct
        self.turns = turns
        self.heading_after_rule = heading_after_rule
        self.unindented_heading = unindented_heading
        self.rows: list[dict] = []
        self.header = Block(acct, "header")
        self.header_lines: list[str] = []
        self.speech: Block | None = None        # the open turn's speech
        self.label: str | None = None           # the open turn's speaker label
        self.notes: list[str] = []              # stage directions inside the open turn
        self.headings: Block | None = None      # item heading printed inside the open turn
        self.signature: Block | None = None     # lines after the closing clock line
        self.closed = False                     # the open turn has met the closing clock line
        self.after_rule = False                 # the previous content line was a rule (────)
        self.carry = 0                          # terminator of the previous line (layout)

    @property
    def target(self) -> Block:
        """The block the next text line belongs to."""
        return self.signature or self.headings or self.speech or self.header

    def line(self, raw: str, nl: str) -> None:
        """One physical line ``raw`` with its terminator ``nl``."""
        self.target.add_layout(self.carry)
        self.carry = len(nl)
        lead, content, trail = split_ws(raw)
        if not content:
            self.target.add_line(lead, content, trail, force_break=True)
            return
        if self._decoration(raw, lead, content, trail):
            return
        m = match_turn(raw) if self.turns and not lead else None
        if m:
            self._open_turn(m)
        elif self.turns and _NOTE.match(content):
            self._note(lead, content, trail)
        else:
            if self.closed and self.speech is not None:
                self._open_signature()
            if self._is_heading(lead, content):
                self._heading(lead, content, trail)
            else:
                self._text(lead, content, trail)

    def close(self) -> tuple[list[dict], str, list[str]]:
        """End of text: (rows, header text, header content lines)."""
        self.target.add_layout(self.carry)
        self._end_turn()
        for r in self.rows:
            if "_block" in r:
                r["text"] = r.pop("_block").close()
        rows = [r for r in self.rows if not (r["kind"] == "header" and not r["text"])]
        return rows, self.header.close(), self.header_lines

    # ------------------------------------------------------------ line kinds

    def _decoration(self, raw: str, lead: str, content: str, trail: str) -> bool:
        """A page mark (``<PAGE="2">``) or a rule (────): accounted, no text."""
        if _PAGE.match(raw):
            bucket = "page_marker"
        elif _RULE.match(raw):
            bucket = "other"
            self.after_rule = True
        else:
            return False
        self.acct.add("whitespace", len(lead) + len(trail))
        self.acct.add(bucket, len(content))
        return True

    def _open_turn(self, m: re.Match) -> None:
        self._end_turn()
        self.signature, self.closed = None, False
        self.label = m.group(2)
        self.acct.add("speaker_label", len(m.group(1)) + len(m.group(2)))
        rest = m.group(3)
        # a stage direction glued to the label: ◯議会運営委員長（神長基子）〔登壇〕
        g = re.match(r"^(〔[^〔〕]*〕)", rest)
        if g:
            self.acct.add("procedural", len(g.group(1)))
            self.notes.append(normalize_width(g.group(1)))
            rest = rest[g.end():]
        self.speech = Block(self.acct, "speech")
        r_lead, r_content, r_trail = split_ws(rest)
        self.speech.add_line(r_lead, r_content, r_trail, force_break=True)
        self.after_rule = False

    def _note(self, lead: str, content: str, trail: str) -> None:
        """A stage direction or clock line: its own row, after the turn it interrupts."""
        self.acct.add("whitespace", len(lead) + len(trail))
        self.acct.add("procedural", len(content))
        note = normalize_width(content)
        if self.speech is None and not self.rows:
            self.rows.append({"kind": "procedural_note", "speaker_raw": None, "text": note})
        else:
            self.notes.append(note)
        if _CLOSING.search(content) and self.speech is not None:
            self.closed = True

    def _open_signature(self) -> None:
        """After the closing clock line: the signature block (議長 … 署名議員 …), not speech."""
        self._end_turn()
        self.signature = Block(self.acct, "header")
        self.rows.append({"kind": "header", "speaker_raw": None, "text": None, "_block": self.signature})

    def _is_heading(self, lead: str, content: str) -> bool:
        """A printed item heading inside a turn (``◎…``; see ``unindented_heading`` and
        ``heading_after_rule``), or the wrapped continuation of one."""
        if self.speech is None:
            return False
        return (self.headings is not None or content.startswith("◎")
                or (self.unindented_heading and not lead and not self.speech.empty)
                or (self.heading_after_rule and self.after_rule and bool(re.match(r"^(?:追加)?日程第", content))))

    def _heading(self, lead: str, content: str, trail: str) -> None:
        # a printed item heading closes the turn's speech: it and the lines after it (its wrapped
        # continuation) up to the next turn are a header row after the turn
        if self.headings is None:
            self.headings = Block(self.acct, "header")
        self.headings.add_line(lead, content, trail, force_break=True)

    def _text(self, lead: str, content: str, trail: str) -> None:
        self.after_rule = False
        target = self.target
        target.add_line(lead, content, trail, force_break=True)
        if target is self.header:
            self.header_lines.append(content)

    def _end_turn(self) -> None:
        """Rows of the open turn: its speech, the headings printed inside it, its stage directions."""
        if self.speech is not None:
            self.rows.append({"kind": "speech", "speaker_raw": self.label, "text": self.speech.close()})
            self.speech = None
        if self.headings is not None:
            self.rows.append({"kind": "header", "speaker_raw": None, "text": self.headings.close()})
            self.headings = None
        self.rows.extend({"kind": "procedural_note", "speaker_raw": None, "text": n} for n in self.notes)
        self.notes = []


def roster_text(header_text: str) -> str:
    """Header roster with every space removed: '区　長　　青　木　英　二' -> '区長青木英二' (for name look-up)."""
    return re.sub(r"[\s\u3000]+", "", normalize_width(header_text))


_ITEM = re.compile(r"^(?:日程)?第[ \u3000]*([0-9]{1,3})(?:[ \u3000、.．]+(.*))?$")


def _unspace(text: str) -> str:
    """'議　　案　　第　１号　令和７年度…' -> '議案第1号 令和7年度…': letter-spaced words joined, other spaces one."""
    out: list[str] = []
    for tok in re.split(r"[ \u3000]+", text.strip(" \u3000")):
        if out and (len(tok) == 1 or len(out[-1]) == 1 or out[-1].endswith("第")):
            out[-1] += tok
        elif tok:
            out.append(tok)
    return " ".join(out)


def agenda_from_header(header_text: str) -> list[str]:
    """議事日程 of the header -> ['日程第1 会議録署名議員の指名', …] (one per number, first wins).

    Lines '日程第１　会期の決定' / '第１　会議録署名議員の指名' / '　第　２　　議　　案　　第　１号 …'; a
    number alone on its line takes the next line as its item (函館: '日程第１' / '　会議録署名議員の指名').
    """
    lines = [normalize_width(ln).strip(" \u3000") for ln in header_text.split("\n")]
    start = next((i for i, ln in enumerate(lines) if "議事日程" in ln), 0)
    items: dict[int, str] = {}
    pending: int | None = None
    for ln in lines[start:]:
        m = _ITEM.match(ln)
        if m:
            n, rest = int(m.group(1)), (m.group(2) or "").strip(" \u3000")
            pending = None if rest else n
            if rest and n not in items:
                items[n] = f"日程第{n} " + _unspace(rest)
            continue
        if pending is not None and ln:
            items.setdefault(pending, f"日程第{pending} " + _unspace(ln))
            pending = None
    return [items[k] for k in sorted(items)]


_SEAT_ENTRY = re.compile(r"([0-9]{1,3})[ \u3000]*番[ \u3000]+(.+?)(?=[ \u3000]+[0-9]{1,3}[ \u3000]*番|$)")


def members_from_header(header_text: str) -> tuple[list[str], list[str]]:
    """(attendees, absentees) from the roster's ``出席議員`` / ``欠席議員`` sections: ``１番　吉　田　崇　仁``
    seat entries (several a line) or one ``氏名君`` a line; names with their spaces and 君/議員 removed."""
    attendees: list[str] = []
    absentees: list[str] = []
    target: list[str] | None = None
    for raw in header_text.split("\n"):
        ln = normalize_width(raw).strip(" \u3000")
        flat = re.sub(r"[ \u3000]+", "", ln)
        if re.match(r"^[○〇◯]?(?:[0-9]+)?(?:出席議員|出席委員)", flat):
            target = attendees
            continue
        if re.match(r"^[○〇◯]?(?:[0-9]+)?(?:欠席議員|欠席委員)", flat):
            target = absentees
            continue
        if target is None or not ln:
            continue
        seats = _SEAT_ENTRY.findall(ln)
        if seats:
            target.extend(re.sub(r"[ \u3000]+|(?:君|議員)$", "", name) for _, name in seats)
        elif flat.endswith(("君", "議員")) and len(flat) <= 12:
            target.append(re.sub(r"(?:君|議員)$", "", flat))
        elif flat not in ("なし",) and not re.fullmatch(r"[（(]?[0-9]+名[）)]?", flat):
            target = None          # the next section (出席説明員, 議事日程 …)
    return attendees, absentees

