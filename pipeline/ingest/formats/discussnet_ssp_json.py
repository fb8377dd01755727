"""DiscussNet SSP (ssp.kaigiroku.net) minutes JSON, as its ``tenant_minutes`` API returns one sitting.

Shape: ``{"tenant_minutes": [{minute_id, title, page_no, body: "<pre>○議長（…）　…</pre>",
minute_type: "名簿" | "○議長" | "◆質問" | "◎答弁", …}, …]}``.

* the ``（名簿）`` entry (``minute_type`` 名簿) is the header: roster, 議事日程, attendance; the title
  (its line with 会議録, else its first line) and the 和暦 date come from it;
* every other entry is one speech: its ``body`` (HTML ``<pre>``, tags dropped, entities decoded)
  opens with the mark and the label as printed (○/◆/◎ + ``議長（吉田崇仁）`` / ``（井上さくら君）``) and
  is read by :mod:`pipeline.ingest.assembly` (stage directions and clock lines -> ``procedural_note``,
  rules dropped, the signature block after 散会 -> ``header``);
* a companion ``*_metadata.json`` beside the file (``councilName``, ``scheduleName``, ``viewYear``,
  ``memberList``) is read as this reader's companion: its council name completes the title and its
  schedule gives the date when the roster has none. Given alone (or in a directory run) the
  companion contributes no rows and never fails the run: it is reported with 0 meetings.

Accounting: the body text is accounted character by character; JSON syntax, keys, markup and
the other fields (title repeats the label; ids; page numbers) are ``other``.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.ingest.assembly import agenda_from_header, members_from_header, read_turns, roster_text
from pipeline.ingest.clean import Accounting, normalize_width
from pipeline.ingest.model import Document, Meeting, Source
from pipeline.ingest.structure import parse_date, parse_session
from pipeline.textio import lines_of

NAME = "discussnet_ssp_json"

_COMPANION_KEYS = {"councilName", "scheduleName", "memberList"}


def _load(src: Source):
    try:
        return json.loads(src.text)
    except (json.JSONDecodeError, PipelineError):
        return None


def _is_minutes(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("tenant_minutes"), list)


def _is_companion(data) -> bool:
    return isinstance(data, dict) and "tenant_minutes" not in data and len(_COMPANION_KEYS & set(data)) >= 2


def sniff(src: Source) -> float:
    if src.data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] != b"{":
        return 0.0
    data = _load(src)
    return 1.0 if _is_minutes(data) or _is_companion(data) else 0.0


def companion_path(path: Path) -> Path | None:
    """``x_minute.json`` -> ``x_metadata.json`` beside it (upstream: minute.json / metadata.json)."""
    name = path.name
    for a, b in (("_minute.json", "_metadata.json"), ("minute.json", "metadata.json")):
        if name.endswith(a):
            cand = path.with_name(name[: -len(a)] + b)
            return cand if cand.is_file() else None
    return None


def companions(path: Path) -> list[Path]:
    """Files whose content this reader uses besides ``path`` (part of the per-file cache key)."""
    c = companion_path(path)
    return [c] if c else []


def _companion(path: Path) -> dict:
    c = companion_path(path)
    if c is None:
        return {}
    try:
        data = json.loads(c.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}      # a broken companion is reported when it is read on its own
    return data if _is_companion(data) else {}


def _body_text(body: str) -> str:
    """``<pre>…</pre>`` HTML -> text (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^<>]*>", "", body))   # [^<>]: linear even where a tag never closes


def _str_field(src: Source, k: int, entry: dict, key: str) -> str:
    v = entry.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise PipelineError(src.path, f"tenant_minutes[{k}].{key} is {type(v).__name__}, expected a string")
    return v


def read(src: Source) -> Document:
    data = _load(src)
    if data is None:
        raise PipelineError(src.path, "not valid JSON")
    acct = Accounting(chars_in=len(src.text))
    if _is_companion(data):
        acct.add("other", acct.chars_in)
        return Document([], acct, NAME, src.encoding, companion=True)
    if not _is_minutes(data):
        raise PipelineError(src.path, "JSON has no 'tenant_minutes' list (DiscussNet SSP shape)")
    entries = data["tenant_minutes"]
    meta = _companion(src.path)
    header_parts: list[str] = []
    rows: list[dict] = []
    used = 0
    for k, e in enumerate(entries):
        if not isinstance(e, dict):
            raise PipelineError(src.path, f"tenant_minutes[{k}] is {type(e).__name__}, expected an object")
        body = _str_field(src, k, e, "body")
        text = _body_text(body)
        used += len(text)
        if _str_field(src, k, e, "minute_type") == "名簿" or _str_field(src, k, e, "title") == "（名簿）":
            turns, head, _ = read_turns(text, acct, turns=False)   # clock lines are notes
            header_parts.append(head)
            rows += turns
            continue
        turns, head, _ = read_turns(text, acct)
        if head:
            rows.append({"kind": "header", "speaker_raw": None, "text": head})
        rows += turns
    acct.add("other", acct.chars_in - used)
    if not any(r["kind"] == "speech" for r in rows):
        raise PipelineError(src.path, "no speech entries in tenant_minutes")
    header_text = "\n".join(h for h in header_parts if h)
    lines = [ln.strip(" \u3000") for ln in lines_of(header_text) if ln.strip(" \u3000")]
    title_line = next((ln for ln in lines if "会議録" in ln), lines[0] if lines else None)
    council = normalize_width(re.sub(r"[ \t\u3000]+", "", meta.get("councilName") or "")) or None
    title = normalize_width(re.sub(r"[ \t\u3000]+", " ", title_line)) if title_line else council
    date = parse_date(header_text)
    if date is None and isinstance(meta.get("viewYear"), str) and isinstance(meta.get("scheduleName"), str):
        m = re.match(r"([0-9]{1,2})月([0-9]{1,2})日", normalize_width(meta["scheduleName"]))
        date = parse_date(f"{meta['viewYear']}年{m.group(1)}月{m.group(2)}日") if m else None
    meeting = Meeting(title=title, date=date, session=parse_session(title or council),
                      roster_text=roster_text(header_text), agenda=agenda_from_header(header_text))
    meeting.attendees, meeting.absentees = members_from_header(header_text)
    meeting.rows = ([{"kind": "header", "speaker_raw": None, "text": header_text}] if header_text else []) + rows
    return Document([meeting], acct, NAME, src.encoding)
