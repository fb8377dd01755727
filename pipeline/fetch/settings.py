"""Settings and search conditions of `policy-topics fetch kokkai`, validated (pydantic).

:class:`FetchSettings` is the only place the fetcher's defaults are declared; :class:`KokkaiQuery`
holds the search conditions under our option names and gives them back under the API's
(https://kokkai.ndl.go.jp/api.html). A bad value is a one-line :class:`PipelineError` naming the option.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline import __version__
from pipeline.errors import PipelineError

#: environment variable naming the API base URL (a mirror or a local test server)
API_URL_ENV = "POLICY_TOPICS_KOKKAI_API"
OFFICIAL_API_URL = "https://kokkai.ndl.go.jp/api"
OFFICIAL_HOST = "kokkai.ndl.go.jp"
#: values the API accepts for nameOfHouse (両院 and 両院協議会 give the same result)
HOUSES = ("衆議院", "参議院", "両院", "両院協議会")
#: meetings per request the meeting endpoint allows (会議単位出力: 1-10)
MAX_PAGE_SIZE = 10


class FetchSettings(BaseModel):
    """How the fetcher talks to the API. The only place these defaults are declared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_url: str = Field(OFFICIAL_API_URL, description=f"API base URL (…/api); env {API_URL_ENV} overrides")
    pause_seconds: float = Field(3.0, ge=0, description="pause after each response before the next request")
    max_failures: int = Field(5, ge=1, le=50, description="failed attempts of one request before giving up")
    backoff_seconds: float = Field(2.0, ge=0, description="first retry delay; doubles on each failure")
    backoff_max_seconds: float = Field(120.0, ge=0, description="cap on one retry delay (also on Retry-After)")
    timeout_seconds: float = Field(60.0, gt=0, description="connect/read time-out of one request")
    page_size: int = Field(MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="maximumRecords per request")
    user_agent: str = Field(f"policy-topics/{__version__} (meeting-minutes pipeline; fetch kokkai)",
                            min_length=1)

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _polite_to_the_official_host(self) -> FetchSettings:
        if urlsplit(self.api_url).hostname == OFFICIAL_HOST and self.pause_seconds < 1:
            raise ValueError(f"--pause (pause_seconds) must be at least 1 s against {OFFICIAL_HOST} "
                             f"(the API's usage notes ask for a pause of a few seconds between requests)")
        return self

    @classmethod
    def resolve(cls, **overrides: Any) -> FetchSettings:
        """Defaults <- ``$POLICY_TOPICS_KOKKAI_API`` <- explicit overrides (``None`` = not given)."""
        values = {k: v for k, v in overrides.items() if v is not None}
        if "api_url" not in values and os.environ.get(API_URL_ENV):
            values["api_url"] = os.environ[API_URL_ENV]
        return _validated(cls, values)


_OPTION = {"any": "--any", "meeting": "--meeting", "speaker": "--speaker", "house": "--house",
           "from_date": "--from", "until_date": "--until", "api_url": "--api-url", "pause_seconds": "--pause",
           "max_failures": "--max-failures", "timeout_seconds": "--timeout", "page_size": "--page-size"}


def _validated(model: type[BaseModel], values: dict) -> Any:
    """Build ``model``; a bad value -> one-line :class:`PipelineError` naming the option."""
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise PipelineError(_OPTION.get(name, name) or None, msg) from None


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
        return _validated(cls, values)

    def api_params(self) -> dict[str, str]:
        pairs = {"any": self.any, "nameOfMeeting": self.meeting, "speaker": self.speaker,
                 "nameOfHouse": self.house, "from": self.from_date, "until": self.until_date}
        return {k: v for k, v in pairs.items() if v is not None}

    def key(self, api_url: str) -> str:
        """Stable id of (API, conditions): names the manifest, so a re-run finds its checkpoint."""
        blob = json.dumps({"api_url": api_url, **self.api_params()}, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
