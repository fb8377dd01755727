"""Pull Diet minutes from the 国会会議録検索システム API (https://kokkai.ndl.go.jp/api.html).

Library: :func:`fetch_kokkai` (query, output directory, settings) -> :class:`FetchResult`.
CLI: ``policy-topics fetch kokkai`` (see :mod:`pipeline.fetch`).

* **Endpoint.** The meeting endpoint (会議単位出力, ``/meeting``) returns each meeting whole with the
  text of every speech, at most 10 meetings per request; pages are followed with ``startRecord`` /
  ``nextRecordPosition`` until the query is exhausted or ``max_meetings`` is reached.
* **Files.** One file per meeting, ``{issueID}.json``: exactly what ``/meeting?issueID=…`` answers
  (``numberOfRecords`` 1 and one ``meetingRecord``, fields untouched), which ``policy-topics ingest``
  reads as ``kokkai_json``. Every file is written to a hidden temporary name and renamed into place, so a
  file exists only when complete. A manifest per query lives in ``.fetch/`` (hidden: ingest skips it).
* **API citizenship** (the API's usage notes): one request at a time (no parallel requests), a pause
  after each response before the next request (default 3 s, the notes ask for "数秒程度"; at least 1 s
  against the official host), a User-Agent naming the tool, retries with exponential back-off (and the
  server's ``Retry-After``) on 429, 5xx, time-outs and dropped connections, and a stop after
  ``max_failures`` failed attempts of one request.
* **Resume.** The manifest is a checkpoint written after every page; re-running the same query goes on
  from the page after the last complete one (from the start if the API's total changed meanwhile, since
  results are sorted newest first and new meetings shift every position). Saved meetings are never
  downloaded into place twice: a valid ``{issueID}.json`` is skipped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline import __version__
from pipeline.errors import PipelineError

log = logging.getLogger("policy_topics.fetch")

#: environment variable naming the API base URL (a mirror or a local test server)
API_URL_ENV = "POLICY_TOPICS_KOKKAI_API"
OFFICIAL_API_URL = "https://kokkai.ndl.go.jp/api"
OFFICIAL_HOST = "kokkai.ndl.go.jp"
#: values the API accepts for nameOfHouse (両院 and 両院協議会 give the same result)
HOUSES = ("衆議院", "参議院", "両院", "両院協議会")
#: meetings per request the meeting endpoint allows (会議単位出力: 1-10)
MAX_PAGE_SIZE = 10
#: 会議録ID: 21 alphanumerics (also what makes ``{issueID}.json`` a safe file name)
ISSUE_ID = re.compile(r"^[0-9A-Za-z]{21}$")
MANIFEST_DIR = ".fetch"
#: imageKind of minutes; 目次 / 索引 / 附録 / 追録 records hold no speaker turns and are not saved
MINUTES_KIND = "会議録"
#: times one run pages again from the first because the API's total moved under it
MAX_RESTARTS = 3
SOURCE_NOTE = "国会会議録検索システム (国立国会図書館), https://kokkai.ndl.go.jp/"


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
    def _polite_to_the_official_host(self) -> "FetchSettings":
        if urlsplit(self.api_url).hostname == OFFICIAL_HOST and self.pause_seconds < 1:
            raise ValueError(f"--pause (pause_seconds) must be at least 1 s against {OFFICIAL_HOST} (the API's usage notes "
                             f"ask for a pause of a few seconds between requests)")
        return self

    @classmethod
    def resolve(cls, **overrides: Any) -> "FetchSettings":
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
    def _sane(self) -> "KokkaiQuery":
        if self.from_date and self.until_date and self.from_date > self.until_date:
            raise ValueError(f"--from {self.from_date} is after --until {self.until_date}")
        if not (self.any or self.meeting or self.speaker or self.from_date or self.until_date):
            raise ValueError("give at least one of --any, --meeting, --speaker, --from, --until "
                             "(an unrestricted query would page through the whole archive)")
        return self

    @classmethod
    def build(cls, **values: Any) -> "KokkaiQuery":
        return _validated(cls, values)

    def api_params(self) -> dict[str, str]:
        pairs = {"any": self.any, "nameOfMeeting": self.meeting, "speaker": self.speaker,
                 "nameOfHouse": self.house, "from": self.from_date, "until": self.until_date}
        return {k: v for k, v in pairs.items() if v is not None}

    def key(self, api_url: str) -> str:
        """Stable id of (API, conditions): names the manifest, so a re-run finds its checkpoint."""
        blob = json.dumps({"api_url": api_url, **self.api_params()}, ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
        self._last_done: float | None = None
        self._http = httpx.Client(headers={"User-Agent": settings.user_agent, "Accept": "application/json"},
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
        shown = _show(url, params)
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


# --- files ----------------------------------------------------------------------------------------

def meeting_file(record: dict) -> dict:
    """One meeting as the API answers ``/meeting?issueID=…&recordPacking=json``."""
    return {"numberOfRecords": 1, "numberOfReturn": 1, "startRecord": 1, "nextRecordPosition": None,
            "meetingRecord": [record]}


def is_saved(path: Path, issue_id: str) -> bool:
    """True when ``path`` is a complete file of that meeting (what this module writes)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data["meetingRecord"][0]["issueID"] == issue_id and isinstance(
            data["meetingRecord"][0]["speechRecord"], list)
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False


def _entry(record: dict) -> dict:
    return {"file": f"{record['issueID']}.json", "issueID": record["issueID"], "date": record.get("date"),
            "nameOfHouse": record.get("nameOfHouse"), "nameOfMeeting": record.get("nameOfMeeting"),
            "issue": record.get("issue"), "speeches": len(record.get("speechRecord") or [])}


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _remove_stale_temps(out_dir: Path) -> int:
    """Temporary files a killed run left (``.{issueID}.json.*.tmp``): never complete, never read."""
    n = 0
    for p in out_dir.glob(".*.json.*.tmp"):
        try:
            p.unlink()
            n += 1
        except OSError:  # pragma: no cover
            pass
    return n


@dataclass
class FetchResult:
    out_dir: Path
    manifest: Path
    total: int                                      # numberOfRecords the API reported
    files: list[str] = field(default_factory=list)  # every meeting file of this query (in API order)
    saved: list[str] = field(default_factory=list)  # written by this run
    skipped: list[str] = field(default_factory=list)  # already there
    not_saved: list[str] = field(default_factory=list)  # issueIDs of records that are not minutes (imageKind)
    requests: int = 0
    requests_ok: int = 0                            # requests answered with a valid page
    status: str = "complete"                       # complete | limit_reached


def fetch_kokkai(query: KokkaiQuery, out_dir: str | Path, settings: FetchSettings | None = None, *,
                 max_meetings: int | None = None, clock: Clock | None = None, transport=None,
                 show_progress: bool = True) -> FetchResult:
    """Save every meeting matching ``query`` as ``out_dir/{issueID}.json`` (see the module docstring).

    ``clock`` (``monotonic()``/``sleep()``) and ``transport`` (an ``httpx`` transport) are injectable for
    tests. Raises a one-line :class:`PipelineError` naming the request on an API error, a malformed
    response or after ``max_failures`` failed attempts; every file saved before stays valid and the
    manifest says where a re-run continues.
    """
    from pipeline.io import progress, write_json

    settings = settings or FetchSettings.resolve()
    if max_meetings is not None and max_meetings < 1:
        raise PipelineError("--max-meetings", f"must be at least 1 (got {max_meetings})")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PipelineError(out_dir, "output exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    if n := _remove_stale_temps(out_dir):
        log.info("removed %d temporary file(s) left by an interrupted run", n)
    key = query.key(settings.api_url)
    manifest_path = out_dir / MANIFEST_DIR / f"kokkai-{key}.json"
    prev = _read_manifest(manifest_path)

    start, files, other, prev_total = 1, {}, {}, None
    if prev and prev.get("status") != "complete" and isinstance(prev.get("next_record_position"), int):
        start, prev_total = prev["next_record_position"], prev.get("number_of_records")
        files = {e["file"]: e for e in prev.get("files", []) if isinstance(e, dict) and "file" in e}
        other = {e["issueID"]: e for e in prev.get("not_saved", []) if isinstance(e, dict) and "issueID" in e}
        log.info("resuming %s from record %d (%d meeting(s) done)", manifest_path.name, start, len(files))
    manifest = {"source": SOURCE_NOTE, "api_url": settings.api_url, "endpoint": "meeting",
                "query": query.api_params(), "max_meetings": max_meetings,
                "started_at": (prev or {}).get("started_at") if start > 1 else _now(),
                "updated_at": None, "finished_at": None, "status": "running",
                "number_of_records": prev_total, "next_record_position": start,
                "user_agent": settings.user_agent, "pause_seconds": settings.pause_seconds, "files": [],
                "not_saved": []}
    result = FetchResult(out_dir=out_dir, manifest=manifest_path, total=prev_total or 0)

    def checkpoint(status: str) -> None:
        manifest.update(status=status, updated_at=_now(), files=list(files.values()),
                        not_saved=list(other.values()),
                        finished_at=_now() if status in ("complete", "limit_reached") else None)
        write_json(manifest, manifest_path)

    client = KokkaiClient(settings, clock=clock, transport=transport)
    bar, restarts = None, 0
    try:
        while True:
            done = start - 1
            if max_meetings is not None and done >= max_meetings:
                checkpoint("limit_reached")
                result.status = "limit_reached"
                break
            size = settings.page_size if max_meetings is None else min(settings.page_size, max_meetings - done)
            params = {**query.api_params(), "startRecord": start, "maximumRecords": size, "recordPacking": "json"}
            try:
                page = client.get_meetings(params)
            except ApiRefusal as exc:
                if start == 1 or result.requests_ok:
                    raise
                # refused where the checkpoint says to resume (e.g. "startRecord must be 1..numberOfRecords":
                # meetings were withdrawn meanwhile): start over once
                log.warning("%s; paging again from the first (saved meetings are skipped)", exc)
                start, prev_total, files, other, bar = 1, None, {}, {}, _close(bar)
                continue
            if prev_total is not None and page.total != prev_total and start > 1:
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise PipelineError(_show(f"{settings.api_url}/meeting", params),
                                        f"the API's total for this query keeps changing ({prev_total} -> "
                                        f"{page.total}); try again later")
                log.warning("the API now reports %d meetings for this query (was %d): positions moved, "
                            "paging again from the first (saved meetings are skipped)", page.total, prev_total)
                start, prev_total, files, other, bar = 1, None, {}, {}, _close(bar)
                continue
            result.requests_ok += 1
            prev_total = result.total = manifest["number_of_records"] = page.total
            if bar is None:
                goal = page.total if max_meetings is None else min(page.total, max_meetings)
                bar = progress(total=goal, initial=min(done, goal), unit="meeting", desc="kokkai",
                               **({} if show_progress else {"disable": True}))
            for rec in page.records:
                entry = _entry(rec)
                if rec.get("imageKind", MINUTES_KIND) != MINUTES_KIND:
                    # 目次/索引/附録/追録: not minutes (no speaker turns); listed in the manifest, not saved
                    other[rec["issueID"]] = {**entry, "imageKind": rec.get("imageKind")}
                    del other[rec["issueID"]]["file"]
                    bar.update(1)
                    continue
                path = out_dir / entry["file"]
                if is_saved(path, rec["issueID"]):
                    result.skipped.append(entry["file"])
                else:
                    write_json(meeting_file(rec), path)
                    result.saved.append(entry["file"])
                files[entry["file"]] = entry
                bar.update(1)
            start = page.next_start or (start + len(page.records))
            manifest["next_record_position"] = page.next_start
            if page.next_start is None:
                checkpoint("complete")
                result.status = "complete"
                break
            checkpoint("running")
    except PipelineError:
        checkpoint("failed")
        raise
    except KeyboardInterrupt:
        checkpoint("interrupted")
        raise
    finally:
        result.requests = client.requests
        client.close()
        if bar is not None:
            bar.close()
    result.files = list(files)
    result.not_saved = list(other)
    if other:
        log.warning("%d record(s) of the result are not minutes (imageKind 目次/索引/附録/追録) and were not saved; "
                    "they are listed in %s", len(other), manifest_path)
    return result


def _close(bar) -> None:
    if bar is not None:
        bar.close()


def _read_manifest(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
