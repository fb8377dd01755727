"""Parse-stage parameters: :class:`pipeline.settings.ParseSettings` (params.yaml ``parse:``)
declares them and their defaults; this module gives the parse package its dict view."""
from __future__ import annotations

from typing import Any

from pipeline.settings import ParseSettings

STAGE = "parse"

#: params that change speed only, never results (left out of the cache key)
SPEED_ONLY = tuple(sorted(ParseSettings.SPEED_ONLY))
#: distributions whose version changes the output, besides the spaCy model named in the settings
#: (imported libraries are found from the imports): part of the per-meeting cache key
MODEL_PACKAGES = ("ginza", "SudachiPy", "SudachiDict-core", "spacy")


def resolve_params(params: ParseSettings | dict[str, Any] | None = None) -> dict[str, Any]:
    """params.yaml ``parse`` validated (ParseSettings), overridden by ``params`` (a ParseSettings or a
    dict of overrides; unknown keys are errors), as a fresh dict with every key."""
    from pipeline.settings import resolve

    return resolve(STAGE, params).to_params()
