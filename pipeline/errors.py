"""User-facing errors: one line naming the file and the problem."""
from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """An error the user can act on. ``str(err)`` is a single line: ``FILE: problem``."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(f"{self.path}: {self.problem}" if self.path else self.problem)


class MultiFileError(PipelineError):
    """Several input files were bad; every one is reported, not only the first."""

    def __init__(self, errors: list[PipelineError]):
        self.errors = list(errors)
        super().__init__(None, f"{len(self.errors)} bad input file(s)")

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]
