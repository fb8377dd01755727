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

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.fetch.client import USER_AGENT, ApiRefusal, Clock, KokkaiClient, Page, SystemClock
from pipeline.fetch.query import API_URL_ENV, KokkaiQuery, fetch_settings
from pipeline.settings import FetchSettings

#: the library's surface (settings and client re-exported: one import for notebooks and tests)
__all__ = ["API_URL_ENV", "MANIFEST_DIR", "ApiRefusal", "Clock", "FetchResult", "FetchSettings", "KokkaiClient",
           "KokkaiQuery", "SystemClock", "fetch_kokkai", "fetch_settings", "is_saved", "meeting_file"]

log = logging.getLogger("policy_topics.fetch")

MANIFEST_DIR = ".fetch"
#: imageKind of minutes; 目次 / 索引 / 附録 / 追録 records hold no speaker turns and are not saved (nor are
#: minutes records holding only the speechOrder-0 header): ingest would reject them and stop `dvc repro`
MINUTES_KIND = "会議録"
#: times one run pages again from the first because the API's total moved under it
MAX_RESTARTS = 3
SOURCE_NOTE = "国会会議録検索システム (国立国会図書館), https://kokkai.ndl.go.jp/"


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


def not_minutes(record: dict) -> str | None:
    """Why a record holds no speaker turns (so ingest would reject its file), or None."""
    kind = record.get("imageKind", MINUTES_KIND)
    if kind != MINUTES_KIND:
        return f"imageKind {kind} (目次/索引/附録/追録 are not minutes)"
    if not any(str(s.get("speechOrder")) not in ("0", "None") for s in record.get("speechRecord") or []):
        return "no speech: only the 会議録情報 header (speechOrder 0)"
    return None


def _entry(record: dict) -> dict:
    return {"file": f"{record['issueID']}.json", "issueID": record["issueID"], "date": record.get("date"),
            "nameOfHouse": record.get("nameOfHouse"), "nameOfMeeting": record.get("nameOfMeeting"),
            "issue": record.get("issue"), "speeches": len(record.get("speechRecord") or [])}


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


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


def _read_manifest(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- a run ----------------------------------------------------------------------------------------

@dataclass
class FetchResult:
    out_dir: Path
    manifest: Path
    total: int = 0                                  # numberOfRecords the API reported
    files: list[str] = field(default_factory=list)  # every meeting file of this query (in API order)
    saved: list[str] = field(default_factory=list)  # written by this run
    skipped: list[str] = field(default_factory=list)  # already there
    not_saved: list[str] = field(default_factory=list)  # issueIDs of records with no speaker turns
    requests: int = 0
    requests_ok: int = 0                            # requests answered with a valid page
    status: str = "running"                         # complete | limit_reached at the end


class _Run:
    """One fetch: where to start (the checkpoint), the page loop, the manifest."""

    def __init__(self, query: KokkaiQuery, out_dir: Path, settings: FetchSettings, max_meetings: int | None,
                 show_progress: bool):
        self.query, self.out_dir, self.settings, self.max = query, out_dir, settings, max_meetings
        self.show_progress = show_progress
        self.manifest_path = out_dir / MANIFEST_DIR / f"kokkai-{query.key(settings.api_url)}.json"
        self.result = FetchResult(out_dir=out_dir, manifest=self.manifest_path)
        self.bar = None
        self.restarts = 0
        self._reset()
        prev = _read_manifest(self.manifest_path)
        if prev and prev.get("status") != "complete" and isinstance(prev.get("next_record_position"), int):
            self.start, self.total = prev["next_record_position"], prev.get("number_of_records")
            self.files = {e["file"]: e for e in prev.get("files", []) if isinstance(e, dict) and "file" in e}
            self.other = {e["issueID"]: e for e in prev.get("not_saved", []) if isinstance(e, dict) and "issueID" in e}
            self.result.total = self.total or 0
            log.info("resuming %s from record %d (%d meeting(s) done)", self.manifest_path.name, self.start,
                     len(self.files))
        self.manifest = {"source": SOURCE_NOTE, "api_url": settings.api_url, "endpoint": "meeting",
                         "query": query.api_params(), "max_meetings": max_meetings,
                         "started_at": (prev or {}).get("started_at") if self.start > 1 else _now(),
                         "updated_at": None, "finished_at": None, "status": "running",
                         "number_of_records": self.total, "next_record_position": self.start,
                         "user_agent": USER_AGENT, "pause_seconds": settings.pause_seconds,
                         "files": [], "not_saved": []}

    def _reset(self) -> None:
        """Page from the first record (saved files stay and are skipped)."""
        self.start, self.total = 1, None
        self.files: dict[str, dict] = {}   # file name -> manifest entry, in API order
        self.other: dict[str, dict] = {}   # issueID -> entry of a record that is not minutes
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def checkpoint(self, status: str) -> None:
        from pipeline.io import write_json

        self.manifest.update(status=status, updated_at=_now(), files=list(self.files.values()),
                             not_saved=list(self.other.values()),
                             finished_at=_now() if status in ("complete", "limit_reached") else None)
        write_json(self.manifest, self.manifest_path)

    def loop(self, client: KokkaiClient) -> None:
        while True:
            done = self.start - 1
            if self.max is not None and done >= self.max:
                self.result.status = "limit_reached"
                return self.checkpoint("limit_reached")
            size = self.settings.page_size if self.max is None else min(self.settings.page_size, self.max - done)
            params = {**self.query.api_params(), "startRecord": self.start, "maximumRecords": size,
                      "recordPacking": "json"}
            try:
                page = client.get_meetings(params)
            except ApiRefusal as exc:
                if self.start == 1 or self.result.requests_ok:
                    raise
                # refused where the checkpoint says to resume (e.g. "startRecord must be 1..numberOfRecords":
                # meetings were withdrawn meanwhile): start over, once
                log.warning("%s; paging again from the first (saved meetings are skipped)", exc)
                self._reset()
                continue
            if self.total is not None and page.total != self.total and self.start > 1:
                self._moved(page.total, client.last_request)
                continue
            self.result.requests_ok += 1
            self.total = self.result.total = self.manifest["number_of_records"] = page.total
            self.save(page, done)
            self.manifest["next_record_position"] = page.next_start
            if page.next_start is None:
                self.result.status = "complete"
                return self.checkpoint("complete")
            self.start = page.next_start
            self.checkpoint("running")

    def _moved(self, now: int, request: str) -> None:
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            raise PipelineError(request, f"the API's total for this query keeps changing ({self.total} -> {now}); "
                                         f"try again later")
        log.warning("the API now reports %d meetings for this query (was %d): positions moved, paging again "
                    "from the first (saved meetings are skipped)", now, self.total)
        self._reset()

    def save(self, page: Page, done: int) -> None:
        """Write the page's meetings (each atomically); skip those already saved."""
        from pipeline.io import progress, write_json

        if self.bar is None:
            goal = page.total if self.max is None else min(page.total, self.max)
            self.bar = progress(total=goal, initial=min(done, goal), unit="meeting", desc="kokkai",
                                mininterval=0, **({} if self.show_progress else {"disable": True}))
        for rec in page.records:
            entry = _entry(rec)
            reason = not_minutes(rec)
            if reason:   # nothing ingest could read: listed in the manifest, not saved
                self.other[rec["issueID"]] = {**{k: v for k, v in entry.items() if k != "file"},
                                              "imageKind": rec.get("imageKind"), "reason": reason}
            else:
                path = self.out_dir / entry["file"]
                if is_saved(path, rec["issueID"]):
                    self.result.skipped.append(entry["file"])
                else:
                    write_json(meeting_file(rec), path)
                    self.result.saved.append(entry["file"])
                self.files[entry["file"]] = entry
            self.bar.update(1)


def fetch_kokkai(query: KokkaiQuery, out_dir: str | Path, settings: FetchSettings | None = None, *,
                 max_meetings: int | None = None, clock: Clock | None = None, transport=None,
                 show_progress: bool = True) -> FetchResult:
    """Save every meeting matching ``query`` as ``out_dir/{issueID}.json`` (see the module docstring).

    ``clock`` (``monotonic()``/``sleep()``) and ``transport`` (an ``httpx`` transport) are injectable for
    tests. Raises a one-line :class:`PipelineError` naming the request on an API error, a malformed
    response or after ``max_failures`` failed attempts; every file saved before stays valid and the
    manifest says where a re-run continues.
    """
    settings = settings or fetch_settings()
    if max_meetings is not None and max_meetings < 1:
        raise PipelineError("--max-meetings", f"must be at least 1 (got {max_meetings})")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PipelineError(out_dir, "output exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    if n := _remove_stale_temps(out_dir):
        log.info("removed %d temporary file(s) left by an interrupted run", n)
    run = _Run(query, out_dir, settings, max_meetings, show_progress)
    client = KokkaiClient(settings, clock=clock, transport=transport)
    try:
        run.loop(client)
    except PipelineError:
        run.checkpoint("failed")
        raise
    except KeyboardInterrupt:
        run.checkpoint("interrupted")
        raise
    finally:
        run.result.requests = client.requests
        client.close()
        if run.bar is not None:
            run.bar.close()
    res = run.result
    res.files, res.not_saved = list(run.files), list(run.other)
    if res.not_saved:
        log.warning("%d record(s) of the result have no speaker turns (目次/索引/附録/追録, or only the header) "
                    "and were not saved; they are listed with the reason in %s", len(res.not_saved), run.manifest_path)
    return res
