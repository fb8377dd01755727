"""tokyo_assembly_json reader (under construction)."""
from __future__ import annotations

from pipeline.errors import PipelineError

NAME = "tokyo_assembly_json"


def sniff(src) -> float:
    return 0.0


def read(src):
    raise PipelineError(src.path, "tokyo_assembly_json reader not implemented yet")
