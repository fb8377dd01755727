"""Speaker labels: 'NAME + ROLE', 'BODY（PERSON）', 'OFFICE（PERSON）', '（PERSON + OFFICE）' ->
name / role / affiliation / title (:func:`parse_speaker`).

Pure functions on strings; no I/O. The role and official-title vocabulary is configs/roles.yaml
(:mod:`pipeline.vocab`), shared with parse and topics. A label is read in one of three shapes,
each by its own function: a label wholly in brackets (:func:`_whole_bracketed`), an outer word
with a person in brackets (:func:`_outer_with_person`), or a plain label, tried against an
ordered list of rules (:data:`_PLAIN_RULES`), first match wins.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.ingest.clean import normalize_width
from pipeline.ingest.structure import parse_number
from pipeline.vocab import role_vocabulary

#: role words recognised at the end of a speaker label (longest first when matching) -> canonical
#: ``speaker_role``, and official titles (executive side: role "説明員", title kept verbatim). One
#: vocabulary, configs/roles.yaml (pipeline.vocab), shared with parse and topics: add words there.
_ROLES = role_vocabulary()
ROLE_SUFFIXES = dict(_ROLES.roles)
OFFICIAL_SUFFIXES = _ROLES.officials
#: bodies that appear as 'affiliation（person）'
AFFILIATION_WORDS = ("事務局", "総務省", "内閣府", "内閣官房", "省", "庁", "府", "委員会", "部会")
#: endings of executive offices that are not in the official-title list (警視総監, 中央卸売市場長, 代表監査人)
_OFFICE_ENDINGS = ("総監", "市場長", "監査人")

_HONORIFIC = re.compile("(" + "|".join(map(re.escape, _ROLES.honorifics)) + ")$")
#: honorifics stripped from a name printed inside brackets: 議長（清野一榮議員）, （白井正子君）
_INNER_HONORIFIC = re.compile(r"(君|様|氏|さん|議員)$")
#: turn marks that may still lead a label (○議長, ◆質問 and ◎答弁 marks of DiscussNet, ◯ of DB-Search)
_LABEL_MARKS = "○◯〇◆◎●◇■□"
#: 'OUTER（INNER）' with one bracket pair at the end (OUTER may be empty)
_BRACKETED = re.compile(r"(.*?)[（(]([^（）()]+)[）)]")
_SPACES = re.compile(r"[\s\u3000]+")
_SEAT = re.compile(r"([0-9〇一二三四五六七八九十百千]+)番")
#: first words of department names: an official title with no person in front of it
#: ('デジタル戦略推進部長', 'BPR推進課長', '総務局長' as a whole label is a role, not 'NAME + title')
_ORG_START = re.compile(
    r"^(?:[A-Za-zァ-ヶー]|総務|財政|財務|企画|市民|区民|町民|村民|健康|福祉|保健|子供|子ども|こども|環境|経済|産業|文化|観光|"
    r"建設|都市|まちづくり|教育|学校|生涯|消防|水道|上下水道|下水道|交通|危機|議会|事務|政策|会計|選挙|監査|農業|農林|"
    r"病院|情報|生活|税務|資産|公営|住宅|港湾|防災|地域|人事|行政|秘書|広報|土木|営繕|医療|衛生|清掃|契約|管財|法務|国際|"
    r"スポーツ|青少年|市長|区長|町長|村長|知事|副)")


@dataclass
class Speaker:
    raw: str
    name: str | None = None
    role: str | None = None
    affiliation: str | None = None
    title: str | None = None          # as printed in the label (課長), else from the roster
    title_full: str | None = None     # full title from the attendee roster (地域通信振興課長) when known
    number: int | None = None         # member (seat) number: ２２番（筒井たかひさ議員） -> 22


# ---------------------------------------------------------------- vocabulary look-ups

def _match_suffix(label: str) -> tuple[str, str] | None:
    """label -> (stem, suffix) for the longest known role suffix."""
    for suf in sorted(ROLE_SUFFIXES, key=len, reverse=True):
        if label.endswith(suf) and len(label) > len(suf):
            return label[: -len(suf)], suf
    return None


def _official_suffix(label: str) -> str | None:
    for suf in sorted(OFFICIAL_SUFFIXES, key=len, reverse=True):
        if label.endswith(suf):
            return suf
    return None


def _is_office(label: str) -> bool:
    """Ends with an executive office (課長, 総務局長, 警視総監 …)."""
    return bool(_official_suffix(label)) or label.endswith(_OFFICE_ENDINGS)


def _member_role(word: str) -> str | None:
    """Canonical role of a whole word that is a member role (議長, 座長, 事務局); not 様 (presenter)."""
    role = ROLE_SUFFIXES.get(word)
    return role if role is not None and role != "presenter" else None


def _split_name_title(label: str, roster: list[str]) -> tuple[str, str] | None:
    """Find ``label`` = NAME + SHORT_TITLE against a roster entry NAME + FULL_TITLE.

    '金子統括補佐' with roster entry '金子情報通信政策課統括補佐' -> ('金子', '情報通信政策課統括補佐');
    a bare surname '内田' with '内田デジタル経済推進室長' -> ('内田', 'デジタル経済推進室長').
    Only unambiguous matches (one roster entry) are used.
    """
    hits = set()
    for entry in roster:
        if entry == label:
            continue
        for k in range(1, len(label) + 1):
            name, short = label[:k], label[k:]
            if len(entry) > len(label) and entry.startswith(name) and entry.endswith(short) \
                    and (short or k == len(label)):
                hits.add((name, entry[k:]))
                break
    # keep the longest surname per entry, then require a single entry
    return next(iter(hits)) if len(hits) == 1 else None


def _guess_name(label: str, roster: list[str] | None = None) -> str:
    """Leading personal name of 'NAME + ORG/TITLE'.

    A 3-4 character prefix found in a roster entry ('比留間教育長' with '教育長比留間英人')
    is the surname; hiragana names (たぞえ, いのつめ) are their leading kana run;
    otherwise the first two characters (the commonest surname length) are taken.
    """
    for k in range(2, min(6, len(label) - 2) + 1):
        # roster printed as TITLE + NAME ('教育長関根義孝'): the label's title then its name, adjacent
        if any(label[k:] + label[:k] in e for e in roster or ()):
            return label[:k]
    for k in (4, 3):
        if len(label) - k >= 2 and any(label[:k] in e for e in roster or ()):
            return label[:k]
    m = re.match(r"[ぁ-ゖー]+", label)
    if m and len(m.group()) < len(label):
        return m.group()
    return label[:2]


def _org_of(title: str) -> str | None:
    """'福祉保健局長' -> '福祉保健局'; 'スポーツ振興局招致推進部長' -> 'スポーツ振興局'; '教育長' -> None."""
    m = re.match(r"(.+?(?:本部|局|庁|省|部|室|課|委員会|東京都))", title)
    return m.group(1) if m and m.group(1) != title else None


def _is_role_only(label: str, roster: list[str]) -> bool:
    """An official title with nobody's name in it: the whole label is a roster title, or it opens
    with a department word (a surname does not)."""
    return any(label in e for e in roster) or bool(_ORG_START.match(label))


# ---------------------------------------------------------------- the three label shapes

def parse_speaker(label: str, roster: list[str] | None = None, secretariat: str | None = None) -> Speaker:
    """Split a speaker label into name / role / affiliation / title.

    ``roster``: attendee entries from the header (e.g. '金子情報通信政策課統括補佐'),
    used to recover surnames and full titles. ``secretariat``: the body whose
    officials run the meeting (the header section '３ 総務省' -> '総務省').

    Examples: 國領座長 -> (國領, 座長); 事務局（佐々木課長） + roster '佐々木地域通信振興課長' ->
    (佐々木, 事務局, 事務局, 課長);
    議長（石川良一君） -> (石川良一, 議長); 笠井総務局長 -> (笠井, 説明員, 総務局, 総務局長);
    園田様 -> (園田, presenter); 百八番（東村邦浩君） -> (東村邦浩, 議員, number 108).
    Local assemblies: （植竹　貴副区長） -> (植竹貴, 副区長); 議長（清野一榮議員） -> (清野一榮, 議長);
    おのせ康裕議長 -> (おのせ康裕, 議長); 関根義孝教育長 + roster '教育長関根義孝' -> (関根義孝, 説明員, 教育長);
    デジタル戦略推進部長 -> (no name, 説明員, title デジタル戦略推進部長): a role-only label never gets a name.
    A leading turn mark (○ ◯ ◆ ◎) is ignored.
    """
    roster = roster or []
    label = normalize_width(label.strip()).lstrip(_LABEL_MARKS).strip(" \u3000")
    m = _BRACKETED.fullmatch(label)
    if m is None:
        return _plain_label(label, roster, secretariat)
    outer = m.group(1).strip(" \u3000")
    if not outer:
        return _whole_bracketed(label, m.group(2), roster, secretariat)
    inner = _SPACES.sub("", _INNER_HONORIFIC.sub("", m.group(2).strip()))
    return _outer_with_person(label, outer, inner, roster, secretariat)


def _whole_bracketed(label: str, inner: str, roster: list[str], secretariat: str | None) -> Speaker:
    """（伊藤よしのり議長） / （植竹　貴副区長） / （白井正子君）: name and office together in brackets.

    A name with a member's honorific (君, 議員 …) is a member; anything else is read as a label
    of its own (spaces removed), keeping the bracketed label as ``raw``."""
    inner = _SPACES.sub("", inner)
    bare = _INNER_HONORIFIC.sub("", inner)
    if bare != inner and bare:
        return Speaker(raw=label, name=bare, role="議員")
    sub = parse_speaker(inner, roster, secretariat)
    sub.raw = label
    return sub


def _is_body(outer: str, secretariat: str | None) -> bool:
    """'事務局' / the secretariat / a ministry or committee ('総務省'), not an office ('総務局長')."""
    return outer in ("事務局", secretariat) or (
        outer.endswith(AFFILIATION_WORDS) and not _official_suffix(outer) and not _match_suffix(outer)
        and outer not in ROLE_SUFFIXES)


def _outer_with_person(label: str, outer: str, inner: str, roster: list[str], secretariat: str | None) -> Speaker:
    """'OUTER（PERSON）': a body's official, a member by seat number, or an office holder."""
    if _is_body(outer, secretariat):
        return _body_official(label, outer, inner, roster, secretariat)
    seat = _SEAT.fullmatch(outer)
    if seat:                                        # 百八番（東村邦浩君）: a member by seat number
        return Speaker(raw=label, name=inner, role="議員", number=parse_number(seat.group(1)))
    sp = Speaker(raw=label, name=inner, title=outer, title_full=outer)
    if _member_role(outer) is not None:
        sp.role = _member_role(outer)               # 議長（…）/ 知事（…）/ 副議長（…）
    elif _is_office(outer):
        sp.role, sp.affiliation = "説明員", _org_of(outer)   # 福祉保健局長（内藤淳君）
    else:
        sp.role = outer
    return sp


def _body_official(label: str, body: str, inner: str, roster: list[str], secretariat: str | None) -> Speaker:
    """事務局（佐々木課長） / 総務省（井上参事官補佐） / 事務局（内田）: the person's name and title inside."""
    sp = Speaker(raw=label, affiliation=body, role="事務局" if body in ("事務局", secretariat) else "説明員")
    split = _split_name_title(inner, roster)
    if split:
        sp.name, sp.title_full = split
        sp.title = inner[len(sp.name):] or sp.title_full
    elif _official_suffix(inner):
        sp.name = _guess_name(inner, roster)
        sp.title = sp.title_full = inner[len(sp.name):] or None
    else:
        sp.name = inner
    return sp


# ---------------------------------------------------------------- plain labels: ordered rules

def _bare_role(label: str, roster: list[str], secretariat: str | None) -> Speaker | None:
    """A role alone: '座長', '事務局'."""
    role = _member_role(label)
    if role is None:
        return None
    return Speaker(raw=label, role=role, title=label, title_full=label,
                   affiliation="事務局" if role == "事務局" else None)


def _name_and_member_role(label: str, roster: list[str], secretariat: str | None) -> Speaker | None:
    """NAME + member role: 國領座長 / 関構成員 / 園田様 / 中村議長 / 田中委員 / 高橋（か）委員
    ('佐藤事務局長' that the roster reads as NAME + longer title is left to the roster rule)."""
    hit = _match_suffix(label)
    if not hit or (hit[1] == "事務局長" and _split_name_title(label, roster)):
        return None
    stem, suf = hit
    sp = Speaker(raw=label, name=stem, role=ROLE_SUFFIXES[suf])
    if sp.role != "presenter" and suf != "君":
        sp.title = sp.title_full = suf
    if suf == "事務局長":
        sp.affiliation = "事務局"
    return sp


def _name_and_roster_title(label: str, roster: list[str], secretariat: str | None) -> Speaker | None:
    """金子統括補佐 + roster '金子情報通信政策課統括補佐': a secretariat official named in the roster."""
    split = _split_name_title(label, roster)
    if not split:
        return None
    name, title_full = split
    return Speaker(raw=label, name=name, title_full=title_full, title=label[len(name):] or title_full,
                   affiliation=secretariat, role="事務局" if secretariat else "説明員")


def _office_only(label: str, roster: list[str], secretariat: str | None) -> Speaker | None:
    """デジタル戦略推進部長 / BPR推進課長: the office speaks, no name is printed (never guess one)."""
    if not (_is_office(label) and _is_role_only(label, roster)):
        return None
    return Speaker(raw=label, title=label, title_full=label, affiliation=_org_of(label), role="説明員")


def _name_and_office(label: str, roster: list[str], secretariat: str | None) -> Speaker | None:
    """笠井総務局長 / 松永スポーツ振興局招致推進部長 / 比留間教育長 (+ roster '教育長比留間英人')."""
    if not _is_office(label):
        return None
    name = _guess_name(label, roster)
    title = label[len(name):]
    return Speaker(raw=label, name=name, title=title, title_full=title, affiliation=_org_of(title), role="説明員")


#: rules for a label without brackets, in order (first match wins)
_PLAIN_RULES: tuple[Callable[[str, list[str], str | None], Speaker | None], ...] = (
    _bare_role, _name_and_member_role, _name_and_roster_title, _office_only, _name_and_office)


def _plain_label(label: str, roster: list[str], secretariat: str | None) -> Speaker:
    for rule in _PLAIN_RULES:
        sp = rule(label, roster, secretariat)
        if sp is not None:
            return sp
    return Speaker(raw=label, name=_HONORIFIC.sub("", label) or label)   # a name, honorific dropped
