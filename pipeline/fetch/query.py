"""Search conditions and settings of `policy-topics fetch kokkai`, validated.

:class:`KokkaiQuery` holds the search conditions under our option names and gives them back under the
API's (https://kokkai.ndl.go.jp/api.html). :func:`fetch_settings` resolves the fetcher's settings:
:class:`pipeline.settings.FetchSettings` (where the defaults are declared) < params.yaml ``fetch:`` <
``$POLICY_TOPICS_KOKKAI_API`` < the command's flags. A bad value is a one-line :class:`PipelineError`
naming the option.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from pipeline.errors import PipelineError
from pipeline.settings import FetchSettings, stage_settings

#: environment variable naming the API base URL (a mirror or a local test server)
API_URL_ENV = "POLICY_TOPICS_KOKKAI_API"
#: values the API accepts for nameOfHouse (両院 and 両院協議会 give the same result)
HOUSES = ("衆議院", "参議院", "両院", "両院協議会")

_OPTION = {"any": "--any", "meeting": "--meeting", "speaker": "--speaker", "house": "--house",
           "from_date": "--from", "until_date": "--until", "api_url": "--api-url", "pause_seconds": "--pause",
           "max_failures": "--max-failures", "timeout_seconds": "--timeout", "page_size": "--page-size"}


def _one_line(exc: ValidationError) -> PipelineError:
    """A pydantic error -> one-line :class:`PipelineError` naming the option."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else ""
    msg = str(err["msg"]).removeprefix("Value error, ")
    return PipelineError(_OPTION.get(name, name) or None, msg)


def fetch_settings(**overrides: Any) -> FetchSettings:
    """params.yaml ``fetch:`` <- ``$POLICY_TOPICS_KOKKAI_API`` <- ``overrides`` (``None`` = not given)."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if "api_url" not in values and os.environ.get(API_URL_ENV):
        values["api_url"] = os.environ[API_URL_ENV]
    try:
        return stage_settings("fetch").merged(values)
    except ValidationError as exc:
        raise _one_line(exc) from None


class KokkaiQuery(BaseModel):
    """The search conditions (the API's names in :meth:`api_params`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    any: str | None = None            # words in the text, space-separated = AND
    meeting: str | None = None        # nameOfMeeting, partial match, space-separated = OR
    speaker: str | None = None        # speaker name, partial match, space-separated = OR
    house: str | None = None          # nameOfHouse
    from_date: str | None = None      # from (YYYY-MM-DD)
    until_date: str | None = None     # until (YYYY-MM-DD)

    @field_validator("any", "meeting", "speaker", "house", "from_date", "until_date", mode="before")
    @classmethod
    def _strip(cls, v):
        if isinstance(v, str):
            v = " ".join(v.replace("\u3000", " ").split())
            return v or None
        return v

    @field_validator("house")
    @classmethod
    def _house(cls, v):
        if v is not None and v not in HOUSES:
            raise ValueError(f"must be one of {', '.join(HOUSES)} (got {v!r})")
        return v

    @field_validator("from_date", "until_date")
    @classmethod
    def _date(cls, v):
        if v is None:
            return v
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            raise ValueError(f"not a YYYY-MM-DD date: {v!r}")
        try:
            date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"no such date: {v!r}") from None
        return v

    @model_validator(mode="after")
    def _sane(self) -> KokkaiQuery:
        if self.from_date and self.until_date and self.from_date > self.until_date:
            raise ValueError(f"--from {self.from_date} is after --until {self.until_date}")
        if not (self.any or self.meeting or self.speaker or self.from_date or self.until_date):
            raise ValueError("give at least one of --any, --meeting, --speaker, --from, --until "
                             "(an unrestricted query would page through the whole archive)")
        return self

    @classmethod
    def build(cls, **values: Any) -> KokkaiQuery:
        try:
            return cls(**values)
        except ValidationError as exc:
            raise _one_line(exc) from None

    def api_params(self) -> dict[str, str]:
        pairs = {"any": self.any, "nameOfMeeting": self.meeting, "speaker": self.speaker,
                 "nameOfHouse": self.house, "from": self.from_date, "until": self.until_date}
        return {k: v for k, v in pairs.items() if v is not None}

    def key(self, api_url: str) -> str:
        """Stable id of (API, conditions): names the manifest, so a re-run finds its checkpoint."""
        blob = json.dumps({"api_url": api_url, **self.api_params()}, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
