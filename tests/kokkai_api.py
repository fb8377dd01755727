"""A stand-in for the 国会会議録検索システム API on 127.0.0.1, for the fetch tests.

The meetings it serves are built from real API pages in ``../shared/corpora/external/`` (read in
place, never copied): the ``/api/speech`` page of ``ndl-api-v2-speech-jinlog`` (30 speeches from 15
meetings) and the ``/api/speech`` sample of ``ndl-api-v2-samples-fujitashuichi``, regrouped by
``issueID`` into ``/api/meeting`` records (meeting fields once, ``speechRecord`` = the speeches):
13 meetings with speeches. So every text, speaker and ID is real; only the grouping is ours (the real
meeting endpoint returns every speech of a meeting, these hold the speeches the speech pages carried).

:class:`FakeKokkaiAPI` answers ``GET /api/meeting`` like the real endpoint: filters (any = AND of
words in the text, nameOfMeeting / speaker = OR of partial matches, nameOfHouse, from / until), newest
first, ``startRecord`` / ``maximumRecords`` (1-10) paging with ``nextRecordPosition``, and the API's
error shape ``{"message": …, "details": […]}``. Tests script faults (status codes, a cut or hung
body, a malformed page) and read back every request with its headers and arrival time.
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = ROOT / ".." / "shared" / "corpora" / "external"
SPEECH_PAGES = [EXTERNAL / "ndl-api-v2-speech-jinlog" / "chiho-sosei.json",
                EXTERNAL / "ndl-api-v2-samples-fujitashuichi" / "speeches.json"]

#: field order of the real meeting endpoint
MEETING_FIELDS = ("issueID", "imageKind", "searchObject", "session", "nameOfHouse", "nameOfMeeting", "issue",
                  "date", "closing")
SPEECH_FIELDS = ("speechID", "speechOrder", "speaker", "speakerYomi", "speakerGroup", "speakerPosition",
                 "speakerRole", "speech", "startPage", "speechURL")
URL_FIELDS = ("meetingURL", "pdfURL")

#: the API's own wording for the errors this stand-in reproduces
ERR_INPUT = "検索条件の入力に誤りがあります。"
ERR_MAX = "maximumRecordsには1～10の値を指定してください。"
ERR_START = "startRecordには 1から検索件数までの値を指定してください。"
ERR_FROM = "from:開会日付をYYYY-MM-DD形式で入力してください。"
ERR_UNTIL = "until:開会日付をYYYY-MM-DD形式で入力してください。"
ERR_LENGTH = "入力可能文字数を超過しています。検索条件を見直してください。"
MAX_QUERY_BYTES = 2000


def available() -> bool:
    return all(p.is_file() for p in SPEECH_PAGES)


def load_meetings() -> list[dict]:
    """Meeting records (``/api/meeting`` shape), newest first, from the real speech pages."""
    groups: dict[str, dict] = {}
    for page in SPEECH_PAGES:
        for r in json.loads(page.read_text(encoding="utf-8"))["speechRecord"]:
            m = groups.get(r["issueID"])
            if m is None:
                m = groups[r["issueID"]] = {k: r.get(k) for k in MEETING_FIELDS}
                m["speechRecord"] = []
                m.update({k: r.get(k) for k in URL_FIELDS})
            m["speechRecord"].append({k: r.get(k) for k in SPEECH_FIELDS})
    for m in groups.values():
        m["speechRecord"].sort(key=lambda s: int(s["speechOrder"]))
        # the meeting endpoint lists speechRecord before the URLs
        urls = {k: m.pop(k) for k in URL_FIELDS}
        m.update(urls)
    # a real meeting record always has speeches; a group holding only the 会議録情報 header (speechOrder 0)
    # is an artefact of regrouping a speech page, so it is left out
    kept = [m for m in groups.values() if any(int(s["speechOrder"]) > 0 for s in m["speechRecord"])]
    return sorted(kept, key=lambda m: (m["date"], m["issueID"]), reverse=True)


def _matches(m: dict, q: dict[str, str]) -> bool:
    texts = [s.get("speech") or "" for s in m["speechRecord"]]
    if "any" in q and not all(any(w in t for t in texts) for w in q["any"].split(" ")):
        return False
    if "nameOfMeeting" in q and not any(w in m["nameOfMeeting"] for w in q["nameOfMeeting"].split(" ")):
        return False
    if "speaker" in q and not any(w in (s.get("speaker") or "") for w in q["speaker"].split(" ")
                                  for s in m["speechRecord"]):
        return False
    house = q.get("nameOfHouse")
    if house in ("両院", "両院協議会"):
        house = "両院"
    if house in ("衆議院", "参議院", "両院") and m["nameOfHouse"] != house:
        return False
    if "from" in q and m["date"] < q["from"]:
        return False
    if "until" in q and m["date"] > q["until"]:
        return False
    return True


@dataclass
class Fault:
    """What to do instead of answering normally, for one request."""
    status: int = 200
    body: bytes | None = None            # raw body (None: the normal answer)
    headers: dict = field(default_factory=dict)
    cut: bool = False                    # send half the normal body, then close
    hang: threading.Event | None = None  # send half the normal body, then wait for this event


@dataclass
class Request:
    params: dict[str, str]
    headers: dict[str, str]
    at: float                            # clock.monotonic() when it arrived
    raw: str = ""                        # the query string as sent


class FakeKokkaiAPI:
    def __init__(self, meetings: list[dict] | None = None, clock=None):
        self.meetings = load_meetings() if meetings is None else meetings
        self.clock = clock
        self.requests: list[Request] = []
        self.faults: list[tuple[object, Fault]] = []   # (startRecord or None = any, fault), used in order
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    # --- scripting ---
    def fail(self, fault: Fault, start: int | None = None, times: int = 1) -> None:
        """The next ``times`` requests (for ``startRecord == start`` if given) get ``fault``."""
        self.faults += [(start, fault)] * times

    def _take_fault(self, start: int) -> Fault | None:
        for i, (s, f) in enumerate(self.faults):
            if s is None or s == start:
                del self.faults[i]
                return f
        return None

    def starts(self) -> list[int]:
        return [int(r.params.get("startRecord", 1)) for r in self.requests]

    # --- the endpoint ---
    def answer(self, raw_query: str, params: dict[str, str]) -> tuple[int, dict]:
        def error(*details: str) -> tuple[int, dict]:
            return 400, {"message": ERR_INPUT, "details": list(details)}

        if len(raw_query.encode()) > MAX_QUERY_BYTES:
            return 400, {"message": ERR_LENGTH}
        details = []
        try:
            size = int(params.get("maximumRecords", 3))
        except ValueError:
            size = 0
        if not 1 <= size <= 10:
            details.append(ERR_MAX)
        for key, msg in (("from", ERR_FROM), ("until", ERR_UNTIL)):
            v = params.get(key)
            if v is not None and not (len(v) == 10 and v[4] == v[7] == "-" and v.replace("-", "").isdigit()):
                details.append(msg)
        if details:
            return error(*details)
        hits = [m for m in self.meetings if _matches(m, params)]
        start = int(params.get("startRecord", 1))
        if hits and not 1 <= start <= len(hits):
            return error(ERR_START)
        page = hits[start - 1:start - 1 + size]
        nxt = start + len(page) if start - 1 + len(page) < len(hits) else None
        body = {"numberOfRecords": len(hits), "numberOfReturn": len(page), "startRecord": start,
                "nextRecordPosition": nxt}
        if page:
            body["meetingRecord"] = page
        return 200, body


class _Handler(BaseHTTPRequestHandler):
    api: FakeKokkaiAPI

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server naming)
        api = self.server.api
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with api._lock:
            api.in_flight += 1
            api.max_in_flight = max(api.max_in_flight, api.in_flight)
            api.requests.append(Request(params, dict(self.headers.items()),
                                        api.clock.monotonic() if api.clock else time.monotonic(), parts.query))
            fault = api._take_fault(int(params.get("startRecord", 1) or 1))
        try:
            if parts.path.rstrip("/") != "/api/meeting":
                return self._send(404, b'{"message": "Not Found"}')
            status, body = api.answer(parts.query, params)
            data = json.dumps(body, ensure_ascii=False).encode()
            if fault is None:
                return self._send(status, data)
            if fault.cut or fault.hang:
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                if fault.hang is not None:
                    fault.hang.wait(60)
                self.close_connection = True
                return None
            return self._send(fault.status, data if fault.body is None else fault.body, fault.headers)
        except (BrokenPipeError, ConnectionResetError):
            return None
        finally:
            with api._lock:
                api.in_flight -= 1

    def _send(self, status: int, data: bytes, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def serve(api: FakeKokkaiAPI) -> Iterator[str]:
    """Run ``api`` on 127.0.0.1 (a free port); yields the base URL (``http://127.0.0.1:PORT/api``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.api = api
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


class FakeClock:
    """Injectable clock: ``sleep`` records the pause and moves time on; nothing really waits."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
