"""One file -> utterance / meeting / report tables (the per-partition function)."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.ingest.model import Document, Meeting, Source
from pipeline.ingest.speakers import parse_speaker
from pipeline.ingest.structure import assign_agenda
from pipeline.textio import LINE_BREAKS, normalize_breaks, read_input

UTTERANCE_COLUMNS = [
    "meeting_id", "meeting_title", "meeting_date", "session", "source_file", "utterance_id", "order",
    "kind", "speaker_raw", "speaker_name", "speaker_role", "speaker_affiliation", "speaker_title",
    "agenda_item", "text", "page_start", "page_end", "speaker_title_full", "speaker_number",
]
MEETING_COLUMNS = [
    "meeting_id", "meeting_title", "meeting_date", "session", "venue", "source_file", "url", "format",
    "attendees", "officials", "absentees", "agenda", "n_utterances", "n_speech",
]
REPORT_COLUMNS = [
    "source_file", "format", "encoding", "n_meetings", "n_speech", "n_nonspeech", "chars_in", "chars_speech",
    "chars_speaker_label", "chars_header", "chars_procedural", "chars_page_marker", "chars_whitespace",
    "chars_other",
]
_ANY_BREAK = re.compile(f"[{re.escape(LINE_BREAKS)}]")
SPEAKER_FIELDS = ("speaker_name", "speaker_role", "speaker_affiliation", "speaker_title", "speaker_title_full",
                  "speaker_number")
#: integer columns (nullable Int64)
INT_COLUMNS = ("session", "page_start", "page_end", "speaker_number")


def empty_tables() -> dict[str, pd.DataFrame]:
    return {"utterances": _typed_utterances(pd.DataFrame(columns=UTTERANCE_COLUMNS)),
            "meetings": pd.DataFrame(columns=MEETING_COLUMNS),
            "report": pd.DataFrame(columns=REPORT_COLUMNS)}


def _typed_utterances(df: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Utterance columns typed once: nullable Int64 for numbers, plain objects (str or None) for the rest.

    Built column by column from Python lists: per-column ``astype``/``where`` on pandas' string dtype
    cost ~50 ms a file, more than reading a 100k-character file.
    """
    cols = {}
    for col in UTTERANCE_COLUMNS:
        vals = df[col].tolist() if isinstance(df, pd.DataFrame) else [r.get(col) for r in df]
        if col in INT_COLUMNS:
            cols[col] = pd.Series([None if v is None or v != v else int(v) for v in vals], dtype="Int64")
        elif col == "order":
            cols[col] = pd.Series([int(v) for v in vals], dtype="int64")
        else:
            cols[col] = pd.Series([None if v is None or (isinstance(v, float) and v != v) else v for v in vals],
                                  dtype=object)   # a Series keeps None (pd.array(dtype=object) makes it NaN)
    return pd.DataFrame(cols, columns=UTTERANCE_COLUMNS)


def check_accounting(acct, rel: str) -> None:
    """Every input character in exactly one bucket: the buckets sum to ``chars_in`` and none is
    negative (a negative bucket hides lost characters behind a balanced sum)."""
    for key, value in acct.as_dict().items():
        if value < 0:
            raise PipelineError(rel, f"internal accounting error: {key} is {value}")
    if acct.total != acct.chars_in:
        raise PipelineError(rel, f"internal accounting error: {acct.total} chars classified of {acct.chars_in}")


def complete_speakers(meeting: Meeting) -> None:
    """Fill speaker_* from the label where the reader did not state them."""
    roster = [*meeting.attendees, *meeting.officials, *([meeting.roster_text] if meeting.roster_text else [])]
    cache: dict[str, object] = {}
    for row in meeting.rows:
        if row.get("kind") != "speech" or not row.get("speaker_raw"):
            continue
        if any(row.get(f) for f in SPEAKER_FIELDS):
            continue
        label = row["speaker_raw"]
        if label not in cache:
            cache[label] = parse_speaker(label, roster, meeting.secretariat)
        sp = cache[label]
        row.update(speaker_name=sp.name, speaker_role=sp.role, speaker_affiliation=sp.affiliation,
                   speaker_title=sp.title, speaker_title_full=sp.title_full, speaker_number=sp.number)


def document_tables(doc: Document, rel: str, stem: str) -> dict[str, pd.DataFrame]:
    utts, meets = [], []
    multi = len(doc.meetings) > 1 or any(m.key for m in doc.meetings)
    for k, m in enumerate(doc.meetings):
        mid = m.id or (f"{stem}#{m.key if m.key is not None else k}" if multi else stem)
        complete_speakers(m)
        if not any("agenda_item" in r for r in m.rows):
            assign_agenda(m.rows, m.agenda)
        for order, r in enumerate(m.rows):
            utts.append({
                "meeting_id": mid, "meeting_title": m.title, "meeting_date": m.date, "session": m.session,
                "source_file": rel, "utterance_id": f"{mid}:u{order:04d}", "order": order,
                "kind": r["kind"], "speaker_raw": r.get("speaker_raw"),
                **{f: r.get(f) for f in SPEAKER_FIELDS},
                "agenda_item": r.get("agenda_item"), "text": r["text"],
                "page_start": r.get("page_start"), "page_end": r.get("page_end"),
            })
        n_speech = sum(r["kind"] == "speech" for r in m.rows)
        meets.append({
            "meeting_id": mid, "meeting_title": m.title, "meeting_date": m.date, "session": m.session,
            "venue": m.venue, "source_file": rel, "url": m.url, "format": doc.format,
            "attendees": list(m.attendees), "officials": list(m.officials), "absentees": list(m.absentees),
            "agenda": list(m.agenda), "n_utterances": len(m.rows), "n_speech": n_speech,
        })
    acct = doc.accounting
    check_accounting(acct, rel)
    n_speech = sum(u["kind"] == "speech" for u in utts)
    report = {"source_file": rel, "format": doc.format, "encoding": doc.encoding, "n_meetings": len(meets),
              "n_speech": n_speech, "n_nonspeech": len(utts) - n_speech, **acct.as_dict()}
    for u in utts:  # one line-break rule for every format: CR/CRLF/U+2028... never reach the tables
        for key, value in u.items():
            if isinstance(value, str) and "\x00" in value:
                raise PipelineError(rel, f"NUL character in {key} of {u['utterance_id']}: binary junk, not text")
            if isinstance(value, str) and _ANY_BREAK.search(value):
                u[key] = normalize_breaks(value, "\n" if key == "text" else " ")
    udf = _typed_utterances(utts)
    mdf = pd.DataFrame(meets, columns=MEETING_COLUMNS)
    mdf["session"] = mdf["session"].astype("Int64")
    return {"utterances": udf, "meetings": mdf, "report": pd.DataFrame([report], columns=REPORT_COLUMNS)}


def ingest_file(payload: tuple[str, str, str]) -> dict[str, pd.DataFrame]:
    """Partition function: (absolute path, path relative to the raw dir, format) -> tables.

    A bad file raises PipelineError naming ``source_file``; ``map_partitions`` carries on
    with the other files and raises every error at the end.
    """
    from pipeline.ingest.formats import read_source

    path_s, rel, fmt = payload
    path = Path(path_s)
    try:
        data = read_input(path, rel)
        src = Source(path=path, rel=rel, data=data)
        doc = read_source(src, fmt)
        if not doc.companion and not any(r["kind"] in ("speech", "speech_no_text") for m in doc.meetings for r in m.rows):
            raise PipelineError(rel, "no speaker turns found")
        return document_tables(doc, rel, Path(rel).stem)
    except PipelineError as exc:
        if exc.path == rel:
            raise
        raise PipelineError(rel, exc.problem) from None
    except RecursionError:
        raise PipelineError(rel, "nested too deeply (JSON/markup depth beyond Python's recursion limit)") from None
    except MemoryError:
        raise PipelineError(rel, "too large to read in memory") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, UnicodeError, OverflowError) as exc:
        # a reader met a shape it does not expect: still one line naming the file, and the
        # other files of a directory run are read and reported too
        raise PipelineError(rel, f"malformed input ({type(exc).__name__}: {exc})") from None
