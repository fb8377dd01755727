"""pdf reader (under construction)."""
from __future__ import annotations

from pipeline.errors import PipelineError

NAME = "pdf"


def sniff(src) -> float:
    return 0.0


def read(src):
    raise PipelineError(src.path, "pdf reader not implemented yet")
