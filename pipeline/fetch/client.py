"""HTTP side of `policy-topics fetch kokkai`: one request at a time, the pause, retries, page checks.

:class:`KokkaiClient` GETs ``{api_url}/meeting`` (httpx), waits ``pause_seconds`` after each response
before the next request, retries 429 / 5xx / time-outs / dropped connections with exponential back-off
(and ``Retry-After``), and gives up after ``max_failures`` failed attempts. Every error is one line that
names the request; the API's own error body (``{"message": …, "details": […]}``) is quoted in its words
(:class:`ApiRefusal`, never retried). :func:`parse_page` checks a page before anything of it is saved.
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline import __version__
from pipeline.errors import PipelineError
from pipeline.settings import FetchSettings

log = logging.getLogger("policy_topics.fetch")

#: names the tool to the API's operators
USER_AGENT = f"policy-topics/{__version__} (meeting-minutes pipeline; fetch kokkai)"
#: 会議録ID: 21 alphanumerics (also what makes ``{issueID}.json`` a safe file name)
ISSUE_ID = re.compile(r"^[0-9A-Za-z]{21}$")


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


# --- one page of /meeting -------------------------------------------------------------------------

class _Speech(BaseModel):
    model_config = ConfigDict(extra="allow")
    speechOrder: int | str
    speech: str


class _Meeting(BaseModel):
    model_config = ConfigDict(extra="allow")
    issueID: str = Field(pattern=ISSUE_ID.pattern)
    speechRecord: list[_Speech]


class _Page(BaseModel):
    model_config = ConfigDict(extra="allow")
    numberOfRecords: int = Field(ge=0)
    numberOfReturn: int = Field(0, ge=0)
    startRecord: int | None = None
    nextRecordPosition: int | None = None
    meetingRecord: list[_Meeting] = []


@dataclass
class Page:
    total: int
    start: int
    next_start: int | None
    records: list[dict]          # the API's meetingRecord objects, untouched


def _show(url: str, params: dict) -> str:
    """The request as a person would type it (unencoded, in parameter order)."""
    return "GET " + url + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def _api_message(data: Any) -> str | None:
    """The API's own error text (``{"message": …, "details": […]}``), or None."""
    if isinstance(data, dict) and isinstance(data.get("message"), str) and "numberOfRecords" not in data:
        details = data.get("details")
        if isinstance(details, str):
            details = [details]
        extra = [str(d) for d in details] if isinstance(details, list) else []
        return data["message"] + (" (" + " / ".join(extra) + ")" if extra else "")
    return None


def parse_page(data: Any, start: int) -> Page:
    """Check a decoded ``/meeting`` response -> :class:`Page`; ``ValueError`` says what is wrong."""
    try:
        page = _Page.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "response"
        raise ValueError(f"{where}: {err['msg']}") from None
    records = data.get("meetingRecord") or []
    if page.numberOfReturn != len(records):
        raise ValueError(f"numberOfReturn is {page.numberOfReturn} but meetingRecord holds {len(records)}")
    if records and page.startRecord is not None and page.startRecord != start:
        raise ValueError(f"asked for startRecord {start}, got {page.startRecord}")
    nxt = page.nextRecordPosition
    if nxt is not None and (not records or nxt != start + len(records)):
        raise ValueError(f"nextRecordPosition {nxt} does not follow startRecord {start} + {len(records)} records")
    return Page(total=page.numberOfRecords, start=start, next_start=nxt, records=records)


class ApiRefusal(PipelineError):
    """The API answered the request with its own error (a 4xx or an error body): retrying will not help."""


class KokkaiClient:
    """One request at a time, with the pause, the User-Agent and the retries."""

    def __init__(self, settings: FetchSettings, clock: Clock | None = None, transport=None):
        import httpx

        self.settings = settings
        self.clock = clock or SystemClock()
        self.requests = 0
        self.last_request = ""          # the last request, as shown in errors
        self._last_done: float | None = None
        self._http = httpx.Client(headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                                  timeout=settings.timeout_seconds, follow_redirects=True, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _wait_turn(self) -> None:
        if self._last_done is not None:
            wait = self.settings.pause_seconds - (self.clock.monotonic() - self._last_done)
            if wait > 0:
                self.clock.sleep(wait)

    def get_meetings(self, params: dict[str, Any]) -> Page:
        """GET ``{api_url}/meeting`` -> :class:`Page`. Raises a one-line :class:`PipelineError`."""
        import httpx

        s = self.settings
        url = f"{s.api_url}/meeting"
        shown = self.last_request = _show(url, params)
        # spaces (the API's AND/OR separator) as %20, not "+": unambiguous for any server
        full = url + "?" + urlencode(params, quote_via=quote)
        for attempt in range(1, s.max_failures + 1):
            self._wait_turn()
            retry_after = None
            try:
                log.debug("%s (attempt %d)", shown, attempt)
                resp = self._http.get(full)
            except httpx.TimeoutException:
                problem = f"no response within {s.timeout_seconds:g} s (time-out)"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {' '.join(str(exc).split()) or 'no detail'})"
            else:
                status = resp.status_code
                if status == 429 or status >= 500:
                    msg = _api_message(_json_or_none(resp))
                    problem = f"HTTP {status}" + (f": {msg}" if msg else f" {resp.reason_phrase}".rstrip())
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                else:
                    return self._page(resp, shown, int(params["startRecord"]))
            finally:
                self.requests += 1
                self._last_done = self.clock.monotonic()
            if attempt == s.max_failures:
                raise PipelineError(shown, f"{problem}; gave up after {attempt} failed attempt(s)")
            delay = min(s.backoff_max_seconds, s.backoff_seconds * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = max(delay, min(retry_after, s.backoff_max_seconds))
            log.warning("%s: %s; retry %d of %d in %.0f s", shown, problem, attempt, s.max_failures - 1, delay)
            self.clock.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _page(resp, shown: str, start: int) -> Page:
        status = resp.status_code
        data = _json_or_none(resp)
        msg = _api_message(data)
        if msg is not None:
            raise ApiRefusal(shown, f"HTTP {status}: the API says: {msg}")
        if status >= 300:
            raise PipelineError(shown, f"HTTP {status} {resp.reason_phrase}".rstrip())
        if data is None:
            head = " ".join(resp.text[:60].split())
            raise PipelineError(shown, f"HTTP {status}: malformed response: not JSON (starts {head!r})")
        try:
            return parse_page(data, start)
        except ValueError as exc:
            raise PipelineError(shown, f"HTTP {status}: malformed response: {exc}") from None


def _json_or_none(resp) -> Any:
    try:
        return json.loads(resp.content.decode(resp.encoding or "utf-8"))
    except (ValueError, LookupError):
        return None


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None
