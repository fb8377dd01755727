"""国会会議録検索システム (National Diet Library minutes API) JSON.

Shapes (public API, https://kokkai.ndl.go.jp/api.html):

* speech endpoint ``/api/speech``: ``{"numberOfRecords": n, ..., "speechRecord": [{speechID, issueID,
  imageKind, searchObject, session, nameOfHouse, nameOfMeeting, issue, date, closing, speechOrder,
  speaker, speakerYomi, speakerGroup, speakerPosition, speakerRole, speech, startPage, speechURL,
  meetingURL, pdfURL}, ...]}``
* old (2018) API: ``{"data": {"records": {"record": [{"recordData": {"meetingRecord": {…, "speechRecord":
  [{speechOrder, speaker, speech}]}}} | {"recordData": {"speechRecord": {…}}}]}}}`` — every value a string, no
  issueID (meetings are then ``{stem}#k``), the role only inside the ``○役職（氏名君）`` prefix;
* ``/api/meeting_list``: speakers without text -> a one-line error (text is never invented);
* meeting endpoint ``/api/meeting``: ``{"numberOfRecords": n, ..., "meetingRecord": [{issueID, session,
  nameOfHouse, nameOfMeeting, issue, date, ..., "speechRecord": [{speechID, speechOrder, speaker, ...,
  speech}]}]}``

``speechOrder`` 0 is the header record (会議録情報: date, 出席委員, 本日の会議に付した案件) -> kind
``header``. ``speech`` starts with ``○label　`` (label as printed, e.g. ○浮島委員長); it is the
speaker_raw, the label mark is accounted as speaker_label. meeting_id = issueID (unique across files, so the same
issue fetched twice is reported as a duplicate).
"""
from __future__ import annotations

import json
import re

from pipeline.errors import PipelineError
from pipeline.ingest.clean import Accounting, normalize_width
from pipeline.ingest.formats.tokyo_assembly_json import text_block
from pipeline.ingest.model import Document, Meeting, Source
from pipeline.ingest.schema import check_kokkai
from pipeline.ingest.speakers import parse_speaker
from pipeline.ingest.structure import parse_date, parse_number
from pipeline.textio import lines_of

NAME = "kokkai_json"

_LABEL = re.compile(r"^([○〇◯])([^\s\u3000]{1,40})([\s\u3000]+)")
_REQUIRED = ("speechOrder", "speech")


def _load(src: Source):
    try:
        return json.loads(src.text)
    except (json.JSONDecodeError, PipelineError):
        return None


def _v1_records(data) -> list | None:
    """Old (2018) API: ``{"data": {"records": {"record": [{"recordData": {"meetingRecord" | "speechRecord": {…}}}]}}}``
    (XML converted to JSON: every value a string, a single record may be an object instead of a list)."""
    recs = data.get("data", {}).get("records") if isinstance(data.get("data"), dict) else None
    if not isinstance(recs, dict) or "record" not in recs:
        return None
    items = recs["record"]
    items = items if isinstance(items, list) else [items]
    meetings, speeches = [], []
    for k, it in enumerate(items):
        rd = it.get("recordData") if isinstance(it, dict) else None
        if isinstance(rd, dict) and isinstance(rd.get("meetingRecord"), dict):
            m = rd["meetingRecord"]
            sr = m.get("speechRecord") or []
            meetings.append({**m, "speechRecord": sr if isinstance(sr, list) else [sr]})
        elif isinstance(rd, dict) and isinstance(rd.get("speechRecord"), dict):
            speeches.append(rd["speechRecord"])
        else:   # never drop a record silently
            raise PipelineError(None, f"data.records.record[{k}] has no recordData.meetingRecord or "
                                      "recordData.speechRecord object (old Kokkai API shape)")
    if meetings:
        return [{"meetingRecord": meetings}]
    return [{"speechRecord": speeches}]


def _meeting_key(r: dict) -> str:
    """Records of one meeting: issueID, else (old API) session/house/meeting/issue/date."""
    if r.get("issueID"):
        return str(r["issueID"])
    return "|".join(str(r.get(k)) for k in ("session", "nameOfHouse", "nameOfMeeting", "issue", "date"))


def _records(data) -> list[tuple[dict, list[dict]]] | None:
    """-> [(meeting fields, speech records)], grouped by meeting; None if not this shape."""
    if not isinstance(data, dict):
        return None
    v1 = _v1_records(data)
    if v1 is not None:
        data = v1[0]
    if isinstance(data.get("meetingRecord"), list):
        return [(m, m.get("speechRecord") or []) for m in data["meetingRecord"] if isinstance(m, dict)]
    if isinstance(data.get("speechRecord"), list):
        groups: dict[str, list[dict]] = {}
        for r in data["speechRecord"]:
            if isinstance(r, dict):
                groups.setdefault(_meeting_key(r), []).append(r)
        return [(recs[0], recs) for recs in groups.values()]
    return None


def sniff(src: Source) -> float:
    if src.data[:1024].lstrip().startswith(b"%PDF"):
        return 0.0
    if src.data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] != b"{":
        return 0.0
    data = _load(src)
    return 1.0 if _records(data) is not None else 0.0


def _header_info(text: str) -> dict:
    lines = [ln.strip(" \u3000") for ln in lines_of(text)]
    agenda, on = [], False
    for ln in lines:
        if re.match(r"本日の会議に付した(案件|事件)", ln):
            on = True
            continue
        if on:
            if not ln or ln.startswith(("―", "─", "◇")):
                if agenda:
                    break
                continue
            agenda.append(normalize_width(ln))
    return {"agenda": agenda}


def _meeting(meta: dict, listed: bool = False) -> Meeting:
    house, name, issue = meta.get("nameOfHouse") or "", meta.get("nameOfMeeting") or "", meta.get("issue") or ""
    title = normalize_width(f"{house}{name}{issue}") or None
    sess = meta.get("session")
    issue_id = str(meta["issueID"]) if meta.get("issueID") else None
    return Meeting(key=issue_id, id=None if listed else issue_id, title=title,
                   date=parse_date(str(meta.get("date") or "")),
                   session=int(sess) if isinstance(sess, int) or (isinstance(sess, str) and sess.isdigit())
                   else parse_number(str(sess or "")),
                   url=meta.get("meetingURL"))


def _listed_meeting(meta: dict, recs: list[dict]) -> Meeting:
    """A meeting_list meeting: one ``speech_no_text`` row per listed speech (speaker and order only).

    Its meeting_id is ``{file stem}#{issueID}``, so the same meeting saved with its text
    (``/api/meeting`` / ``/api/speech``, meeting_id = issueID) can sit in the same directory.
    """
    meeting = _meeting(meta, listed=True)
    for r in sorted(recs, key=lambda r: int(r.get("speechOrder") or 0)):
        if int(r.get("speechOrder") or 0) == 0:
            continue                                   # 会議録情報 (the header record), listed without text
        name = re.sub(r"[\s\u3000]+", "", str(r.get("speaker") or "")) or None
        meeting.rows.append({"kind": "speech_no_text", "speaker_raw": name, "speaker_name": name, "text": ""})
    return meeting


def read(src: Source) -> Document:
    data = _load(src)
    if data is None:
        raise PipelineError(src.path, "not valid JSON")
    groups = _records(data)
    if groups is None:
        raise PipelineError(src.path, "JSON has neither 'speechRecord' nor 'meetingRecord' (Kokkai API shape)")
    if not groups:
        raise PipelineError(src.path, "Kokkai JSON has no records")
    acct = Accounting(chars_in=len(src.text))
    field_chars = 0
    meetings = []
    for meta, recs in groups:
        if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
            raise PipelineError(src.path, f"meeting {meta.get('issueID') or _meeting_key(meta)}: "
                                          "'speechRecord' must be a list of objects")
        if "speechRecord" in meta and recs and all(isinstance(r, dict) and "speechOrder" in r and "speech" not in r
                                                   for r in recs):
            # /api/meeting_list: who spoke, in which order, and no text; the text is never invented
            check_kokkai([(meta, recs)], src.path)
            meetings.append(_listed_meeting(meta, recs))
            continue
        for j, r in enumerate(recs):
            missing = [k for k in _REQUIRED if k not in r]
            if missing:
                raise PipelineError(src.path, f"speechRecord {j} of {meta.get('issueID') or _meeting_key(meta)}: "
                                              f"missing {', '.join(missing)}")
        check_kokkai([(meta, recs)], src.path)   # field types: one line, not a traceback
        meeting = _meeting(meta)
        rows = []
        for r in sorted(recs, key=lambda r: int(r.get("speechOrder") or 0)):
            speech = (r.get("speech") or "").replace("\r\n", "\n")
            field_chars += len(r.get("speech") or "")
            acct.add("whitespace", len(r.get("speech") or "") - len(speech))   # \r of \r\n
            if int(r.get("speechOrder") or 0) == 0:
                text, _ = text_block(speech, acct, "header", every_line_breaks=True)
                meeting.agenda = _header_info(speech)["agenda"]
                rows.append({"kind": "header", "speaker_raw": None, "text": text, "page_start": r.get("startPage"),
                             "page_end": r.get("startPage")})
                continue
            m = _LABEL.match(speech)
            label = m.group(2) if m else (r.get("speaker") or None)
            if m:
                acct.add("speaker_label", len(m.group(1)) + len(m.group(2)))
                acct.add("whitespace", len(m.group(3)))
                speech = speech[m.end():]
            text, notes = text_block(speech, acct, "speech")
            sp = parse_speaker(label) if label else None
            name = re.sub(r"[\s\u3000]+", "", r.get("speaker") or "") or (sp.name if sp else None)
            rows.append({
                "kind": "speech", "speaker_raw": label, "text": text,
                "speaker_name": name,
                "speaker_role": r.get("speakerRole") or (sp.role if sp else None),
                "speaker_affiliation": r.get("speakerGroup") or (sp.affiliation if sp else None),
                "speaker_title": r.get("speakerPosition") or (sp.title if sp else None),
                "speaker_title_full": r.get("speakerPosition") or (sp.title_full if sp else None),
                "speaker_number": sp.number if sp else None,
                "page_start": r.get("startPage"), "page_end": r.get("startPage"),
            })
            rows += [{"kind": "procedural_note", "speaker_raw": None, "text": n} for n in notes]
        meeting.rows = rows
        meetings.append(meeting)
    acct.add("other", acct.chars_in - field_chars)
    return Document(meetings, acct, NAME, src.encoding)
