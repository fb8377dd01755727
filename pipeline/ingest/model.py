"""What a format reader returns: documents of meetings with rows, plus character accounting."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pipeline.ingest.clean import Accounting


@dataclass
class Source:
    """One input file: bytes, and decoded text on demand (see :mod:`pipeline.textio`)."""

    path: Path
    rel: str
    data: bytes

    @cached_property
    def decoded(self) -> tuple[str, str]:
        from pipeline.textio import decode_bytes

        return decode_bytes(self.data, self.path)

    @property
    def text(self) -> str:
        return self.decoded[0]

    @property
    def encoding(self) -> str:
        return self.decoded[1]

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower()


@dataclass
class Meeting:
    """One meeting as read from a file. ``rows``: dicts with at least kind, text, speaker_raw.

    Optional row keys: speaker_name/role/affiliation/title (when the format states them),
    agenda_item, page_start, page_end.
    """

    key: str | None = None            # id suffix inside a multi-meeting file (None: single meeting)
    id: str | None = None             # explicit meeting_id (e.g. Kokkai issueID); overrides stem#key
    title: str | None = None
    date: str | None = None
    session: int | None = None
    venue: str | None = None
    url: str | None = None
    attendees: list[str] = field(default_factory=list)
    officials: list[str] = field(default_factory=list)
    absentees: list[str] = field(default_factory=list)
    agenda: list[str] = field(default_factory=list)
    secretariat: str | None = None
    roster_text: str | None = None    # header roster with spaces removed ('区長青木英二副区長…'): finds names in labels
    rows: list[dict] = field(default_factory=list)


@dataclass
class Document:
    """Everything read from one file."""

    meetings: list[Meeting]
    accounting: Accounting
    format: str
    encoding: str | None = None
    companion: bool = False           # a companion file (DiscussNet *_metadata.json): no meetings of its own
