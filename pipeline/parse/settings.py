"""Parse-stage parameters (params.yaml ``parse:``)."""
from __future__ import annotations

from typing import Any

STAGE = "parse"

DEFAULT_PARAMS: dict[str, Any] = {
    "model": "ja_ginza",
    "batch_size": 64,
    "n_process": 1,
    "split_long_sentences": False,
    "max_sentence_chars": 200,
    "split_on_newline": False,
    "max_chunk_bytes": 30000,
    "ner": "gated",
    "ner_context": 4,
    "max_compound_parts": 6,
}
#: params that change speed only, never results (left out of the cache key)
SPEED_ONLY = ("batch_size", "n_process")


def resolve_params(params: dict | None = None) -> dict:
    """DEFAULT_PARAMS, overridden by params.yaml ``parse:`` (when ``params`` is None) or ``params``."""
    if params is None:
        from pipeline.config import stage_params

        try:
            params = stage_params(STAGE)
        except Exception:  # outside the project
            params = {}
    out = {**DEFAULT_PARAMS, **params}
    from pipeline.parse.gate import ner_mode

    try:
        out["ner"] = ner_mode(out["ner"])
    except ValueError as exc:
        from pipeline.config import ROOT
        from pipeline.errors import PipelineError

        raise PipelineError(ROOT / "params.yaml", str(exc)) from exc
    return out
