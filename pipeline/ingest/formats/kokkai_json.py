"""kokkai_json reader (under construction)."""
from __future__ import annotations

from pipeline.errors import PipelineError

NAME = "kokkai_json"


def sniff(src) -> float:
    return 0.0


def read(src):
    raise PipelineError(src.path, "kokkai_json reader not implemented yet")
