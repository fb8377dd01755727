"""User-facing errors: one line naming the file and the problem."""
from __future__ import annotations

import re
from pathlib import Path

#: characters that would break the one-line format (or hide text) if a file name held them
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_path(path: str | Path) -> str:
    """A path for a one-line message: control characters / line breaks as ``\\n``, ``\\x1b``, ..."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(path))


class PipelineError(Exception):
    """An error the user can act on. ``str(err)`` is a single line: ``FILE: problem``."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = escape_path(path) if path is not None else None
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)


class MultiFileError(PipelineError):
    """Several input files were bad; every one is reported, not only the first."""

    def __init__(self, errors: list[PipelineError]):
        self.errors = list(errors)
        super().__init__(None, f"{len(self.errors)} bad input file(s)")

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]
