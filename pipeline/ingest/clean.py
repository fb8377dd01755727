"""Text cleaning with exact character accounting.

* :func:`normalize_width` maps full-width ASCII letters and digits to ASCII
  (ＣＹＤＥＲ -> CYDER, １４ -> 14), one character for one character, and leaves
  Japanese punctuation (、。「」（）・－) alone.
* :class:`Block` joins the physical lines of one turn (or header) into text:
  lines broken mid-word / mid-sentence are joined with nothing in between; a
  paragraph break (kept as a single ``\\n``) is recognised when the previous line
  ended with layout whitespace (PDF text puts a trailing space after the last
  line of a paragraph), the new line is indented with a full-width space, or it
  opens with a bullet (○ , ※, ①).
* :class:`Accounting` counts every input character into exactly one bucket, so
  ``chars_in == sum(buckets)`` can be checked per file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

#: full-width digits and Latin letters -> ASCII (1:1, so offsets and counts are kept)
_WIDTH_TABLE = {c: c - 0xFEE0 for c in (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))}

#: whitespace used for layout in extracted text
LAYOUT_WS = " \t\u3000\u00a0"

#: a line opening with a bullet starts a paragraph even without layout signals
_BULLET = re.compile(r"^(?:[○●◯〇■□◆◇][ \u3000]|※|[①-⑳])")

BUCKETS = ("speech", "speaker_label", "header", "procedural", "page_marker", "whitespace", "other")


def normalize_width(text: str) -> str:
    """Full-width ASCII letters/digits -> ASCII; everything else unchanged (same length)."""
    return text.translate(_WIDTH_TABLE)


@dataclass
class Accounting:
    """Characters of one input file by what became of them."""

    chars_in: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))

    def add(self, bucket: str, n: int) -> None:
        if bucket not in self.counts:
            raise KeyError(bucket)
        self.counts[bucket] += n

    def merge(self, other: Accounting) -> None:
        self.chars_in += other.chars_in
        for k, v in other.counts.items():
            self.counts[k] += v

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return {"chars_in": self.chars_in, **{f"chars_{k}": v for k, v in self.counts.items()}}


def split_ws(raw: str) -> tuple[str, str, str]:
    """``raw`` -> (leading layout whitespace, content, trailing layout whitespace)."""
    stripped_l = raw.lstrip(LAYOUT_WS)
    lead = raw[: len(raw) - len(stripped_l)]
    content = stripped_l.rstrip(LAYOUT_WS)
    trail = stripped_l[len(content):]
    return lead, content, trail


class Block:
    """Accumulates the lines of one turn/header into cleaned text.

    Every character handed to :meth:`add_line` / :meth:`add_break` is counted into
    ``acct`` under ``bucket`` (content) or ``whitespace`` (layout), so the text
    length always equals what was counted as kept.
    """

    def __init__(self, acct: Accounting, bucket: str):
        self.acct = acct
        self.bucket = bucket
        self.parts: list[str] = []
        self._pending_ws = 0          # layout chars seen since the last content line
        self._para_end = False        # previous content line ended a paragraph
        self.first_line: int | None = None
        self.last_line: int | None = None

    def add_layout(self, n: int) -> None:
        """Layout characters between lines (newlines, blank lines)."""
        self._pending_ws += n

    def add_line(self, lead: str, content: str, trail: str, line_no: int | None = None,
                 force_break: bool = False) -> None:
        self.acct.add("whitespace", len(lead) + len(trail))
        if not content:
            self._pending_ws += 0
            self._para_end = self._para_end or bool(trail or lead)
            return
        if self.parts:
            new_para = force_break or self._para_end or "\u3000" in lead or bool(_BULLET.match(content))
            if new_para and self._pending_ws > 0:
                # one of the layout characters (a newline) becomes the paragraph break
                self.parts.append("\n")
                self.acct.add(self.bucket, 1)
                self._pending_ws -= 1
        self.acct.add("whitespace", self._pending_ws)
        self._pending_ws = 0
        self.parts.append(normalize_width(content))
        self.acct.add(self.bucket, len(content))
        self._para_end = bool(trail)
        if self.first_line is None:
            self.first_line = line_no
        self.last_line = line_no

    def close(self) -> str:
        self.acct.add("whitespace", self._pending_ws)
        self._pending_ws = 0
        return "".join(self.parts)

    @property
    def empty(self) -> bool:
        return not self.parts
