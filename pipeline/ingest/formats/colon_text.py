"""colon_text reader (under construction)."""
from __future__ import annotations

from pipeline.errors import PipelineError

NAME = "colon_text"


def sniff(src) -> float:
    return 0.0


def read(src):
    raise PipelineError(src.path, "colon_text reader not implemented yet")
