"""`policy-topics fetch kokkai` against a stand-in API on 127.0.0.1 (tests/kokkai_api.py).

The stand-in serves meetings built from real API pages in ../shared/corpora/external/, pages them
like the real meeting endpoint and can be scripted to fail. Time is an injectable clock, so the
pauses and back-offs are checked without waiting. Nothing here connects outside 127.0.0.1
(:func:`_loopback_only` enforces it for everything in this process).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.fetch.kokkai import API_URL_ENV, MANIFEST_DIR, KokkaiQuery, fetch_kokkai, fetch_settings, is_saved
from pipeline.settings import FetchSettings
from tests.kokkai_api import ERR_INPUT, ERR_LENGTH, FakeClock, FakeKokkaiAPI, Fault, available, serve

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not available(), reason="../shared/corpora/external/ndl-api-v2-* not present")

QUERY = KokkaiQuery(from_date="2026-01-01", until_date="2026-12-31")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Any connection outside 127.0.0.1 from this process fails the test."""
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        assert host in ("127.0.0.1", "::1", "localhost") or isinstance(address, (str, bytes)), \
            f"test tried to connect to {address!r}"
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.delenv(API_URL_ENV, raising=False)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def api(clock):
    return FakeKokkaiAPI(clock=clock)


@pytest.fixture
def url(api):
    with serve(api) as base:
        yield base


def settings(url, **kw):
    return FetchSettings(api_url=url, **{"page_size": 5, "pause_seconds": 1.5, "backoff_seconds": 2.0, **kw})


def saved_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def manifest(out: Path) -> dict:
    (path,) = (out / MANIFEST_DIR).glob("kokkai-*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def test_pages_to_the_end_and_ingest_reads_every_meeting(tmp_path, api, url, clock):
    from pipeline.ingest import ingest_paths

    out = tmp_path / "kokkai"
    res = fetch_kokkai(QUERY, out, settings(url), clock=clock, show_progress=False)
    served = [m["issueID"] for m in api.meetings]
    assert len(served) == 13
    # three pages of 5, 5, 3, one request at a time, the API's parameters
    assert api.starts() == [1, 6, 11]
    assert [r.params["maximumRecords"] for r in api.requests] == ["5", "5", "5"]
    assert all(r.params["recordPacking"] == "json" and r.params["from"] == "2026-01-01" for r in api.requests)
    assert api.max_in_flight == 1
    assert all(r.headers["User-Agent"].startswith("policy-topics/") for r in api.requests)
    # exactly the meetings served, one file each, in the API's shape, nothing else visible
    assert saved_files(out) == sorted(f"{i}.json" for i in served)
    assert res.files == [f"{i}.json" for i in served] and res.status == "complete" and res.total == 13
    for m in api.meetings:
        data = json.loads((out / f"{m['issueID']}.json").read_text(encoding="utf-8"))
        assert data["numberOfRecords"] == 1 and data["meetingRecord"] == [m]
    man = manifest(out)
    assert man["query"] == {"from": "2026-01-01", "until": "2026-12-31"} and man["status"] == "complete"
    assert [e["file"] for e in man["files"]] == res.files and man["started_at"] and man["finished_at"]

    # ingest reads the folder as it is: one meeting per file, every turn with its speaker
    result = ingest_paths(out, cache=False)
    utts = result.utterances
    assert sorted(result.meetings["meeting_id"]) == sorted(served)
    for m in api.meetings:
        speeches = [s for s in m["speechRecord"] if int(s["speechOrder"]) > 0]
        turns = utts[(utts["meeting_id"] == m["issueID"]) & (utts["kind"] == "speech")]
        assert len(turns) == len(speeches)
        assert list(turns["speaker_name"]) == [s["speaker"] for s in speeches]
        # the label as printed (○松下委員　…) is the turn's speaker_raw; the text is kept
        assert all(s["speech"].startswith(f"○{raw}") for raw, s in zip(turns["speaker_raw"], speeches))
        assert turns["text"].str.len().gt(0).all()
    assert result.report["accounting_ok"]          # every character of every file accounted for


def test_max_meetings_stops_early_and_a_rerun_continues(tmp_path, api, url, clock):
    out = tmp_path / "kokkai"
    res = fetch_kokkai(QUERY, out, settings(url), max_meetings=7, clock=clock, show_progress=False)
    first7 = [f"{m['issueID']}.json" for m in api.meetings[:7]]
    assert res.files == first7 and saved_files(out) == sorted(first7) and res.status == "limit_reached"
    assert [(r.params["startRecord"], r.params["maximumRecords"]) for r in api.requests] == [("1", "5"), ("6", "2")]
    # the same limit again: nothing left to do, no request
    n = len(api.requests)
    again = fetch_kokkai(QUERY, out, settings(url), max_meetings=7, clock=clock, show_progress=False)
    assert len(api.requests) == n and again.files == first7 and again.saved == []
    # no limit: goes on from the 8th meeting, never downloads the first seven into place again
    rest = fetch_kokkai(QUERY, out, settings(url), clock=clock, show_progress=False)
    assert api.starts()[n:] == [8, 13] and len(rest.saved) == 6 and rest.status == "complete"
    assert rest.files == [f"{m['issueID']}.json" for m in api.meetings]
    # a re-run of a finished query pages again (new meetings may exist) and skips every saved file
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    final = fetch_kokkai(QUERY, out, settings(url), clock=clock, show_progress=False)
    assert final.saved == [] and len(final.skipped) == 13
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.json")} == stamp


def test_search_conditions_as_the_api_names_them(tmp_path, api, url, clock):
    q = KokkaiQuery(meeting="総務委員会\u3000特別委員会", any="地方", house="衆議院", from_date="2026-01-01")
    res = fetch_kokkai(q, tmp_path / "k", settings(url), clock=clock, show_progress=False)
    first = api.requests[0]
    assert first.params["nameOfMeeting"] == "総務委員会 特別委員会" and first.params["nameOfHouse"] == "衆議院"
    assert "%20" in first.raw and "+" not in first.raw          # the OR separator is an encoded space
    want = [m["issueID"] for m in api.meetings if m["nameOfHouse"] == "衆議院"
            and ("総務委員会" in m["nameOfMeeting"] or "特別委員会" in m["nameOfMeeting"])
            and any("地方" in s["speech"] for s in m["speechRecord"])]
    assert 0 < len(want) < 13 and res.files == [f"{i}.json" for i in want]


def test_pause_between_requests_with_an_injected_clock(tmp_path, api, url, clock):
    fetch_kokkai(QUERY, tmp_path / "k", settings(url, pause_seconds=3.0), clock=clock, show_progress=False)
    arrivals = [r.at for r in api.requests]
    assert len(arrivals) == 3
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(g >= 3.0 - 1e-9 for g in gaps)
    assert clock.sleeps == pytest.approx([3.0, 3.0])   # no pause before the first request, one after each


def test_retry_with_backoff_then_success(tmp_path, api, url, clock):
    api.fail(Fault(status=503), start=6)
    api.fail(Fault(status=429, headers={"Retry-After": "7"}), start=6)
    api.fail(Fault(cut=True), start=6)                # connection dropped mid-body
    out = tmp_path / "k"
    res = fetch_kokkai(QUERY, out, settings(url, max_failures=5), clock=clock, show_progress=False)
    assert api.starts() == [1, 6, 6, 6, 6, 11]
    assert res.status == "complete" and len(res.saved) == 13 and res.requests == 6
    # pause 1.5 after page 1; back-off 2, then Retry-After 7 over 4, then 8; never less than the pause
    assert clock.sleeps == pytest.approx([1.5, 2.0, 7.0, 8.0, 1.5])
    gaps = [b.at - a.at for a, b in zip(api.requests, api.requests[1:])]
    assert min(gaps) >= 1.5


def test_retries_exhausted_stop_with_one_line_and_keep_what_was_saved(tmp_path, api, url, clock):
    api.fail(Fault(status=502, body=b"<html>Bad Gateway</html>"), start=6, times=10)
    out = tmp_path / "k"
    with pytest.raises(PipelineError) as err:
        fetch_kokkai(QUERY, out, settings(url, max_failures=3), clock=clock, show_progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"GET {url}/meeting?from=2026-01-01&until=2026-12-31&startRecord=6")
    assert "HTTP 502" in msg and "gave up after 3 failed attempt(s)" in msg
    assert api.starts() == [1, 6, 6, 6] and clock.sleeps == pytest.approx([1.5, 2.0, 4.0])
    page1 = [f"{m['issueID']}.json" for m in api.meetings[:5]]
    assert saved_files(out) == sorted(page1)
    assert all(is_saved(out / f, f[:-5]) for f in page1)
    man = manifest(out)
    assert man["status"] == "failed" and man["next_record_position"] == 6
    # once the API is back, the same query continues at the failed page
    api.faults.clear()
    res = fetch_kokkai(QUERY, out, settings(url), clock=clock, show_progress=False)
    assert api.starts()[4:] == [6, 11] and len(res.saved) == 8 and len(saved_files(out)) == 13


def test_api_error_is_reported_in_its_words(tmp_path, url, capsys):
    out = tmp_path / "k"
    words = "光ファイバ" * 60                     # > 2000 bytes once URL-encoded: the API refuses it
    rc = main(["-q", "fetch", "kokkai", "--any", words, "-o", str(out), "--api-url", url, "--pause", "0"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == 1
    assert lines[0].startswith(f"policy-topics: error: GET {url}/meeting?any=光ファイバ")
    assert lines[0].endswith(f"HTTP 400: the API says: {ERR_LENGTH}")
    assert saved_files(out) == []


@pytest.mark.parametrize("status", [400, 200])   # an error body is the API's refusal whatever the status
def test_api_error_details_are_kept(tmp_path, api, url, clock, status):
    api.fail(Fault(status=status, body=json.dumps({"message": ERR_INPUT, "details": ["詳細1", "詳細2"]},
                                                  ensure_ascii=False).encode()))
    with pytest.raises(PipelineError, match=f"HTTP {status}: the API says: {ERR_INPUT} \\(詳細1 / 詳細2\\)$"):
        fetch_kokkai(QUERY, tmp_path / "k", settings(url), clock=clock, show_progress=False)
    assert len(api.requests) == 1          # a refused query is not retried


@pytest.mark.parametrize("body, problem", [
    (b"<!DOCTYPE html><html><body>maintenance</body></html>", "not JSON"),
    (json.dumps({"numberOfRecords": 13, "numberOfReturn": 1, "startRecord": 6, "nextRecordPosition": 7,
                 "meetingRecord": [{"issueID": "../../etc/passwd", "speechRecord": []}]}).encode(),
     "meetingRecord.0.issueID"),
    (json.dumps({"numberOfRecords": 13, "numberOfReturn": 5, "startRecord": 6, "nextRecordPosition": 11,
                 "meetingRecord": []}).encode(), "numberOfReturn is 5 but meetingRecord holds 0"),
])
def test_malformed_response_one_line_nothing_saved(tmp_path, api, url, clock, body, problem):
    api.fail(Fault(status=200, body=body), start=6)
    out = tmp_path / "k"
    with pytest.raises(PipelineError) as err:
        fetch_kokkai(QUERY, out, settings(url), clock=clock, show_progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "startRecord=6" in msg and "malformed response" in msg and problem in msg
    # nothing from the bad page; the good page before it is intact; nothing outside the folder
    assert saved_files(out) == sorted(f"{m['issueID']}.json" for m in api.meetings[:5])
    assert not (tmp_path / "etc").exists()


def test_resume_after_the_process_is_killed_mid_page(tmp_path, api, url, clock):
    """A real `policy-topics fetch kokkai` process is killed while page 2 is arriving."""
    from pipeline.ingest import ingest_paths

    out = tmp_path / "kokkai"
    release = threading.Event()
    api.fail(Fault(hang=release), start=6)   # half of page 2, then silence
    env = {**os.environ, API_URL_ENV: url}   # the base URL from the environment, not --api-url
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "-q", "fetch", "kokkai", "--from", "2026-01-01",
                             "--until", "2026-12-31", "-o", str(out), "--pause", "0", "--page-size", "5"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while 6 not in api.starts() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert 6 in api.starts(), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    page1 = [f"{m['issueID']}.json" for m in api.meetings[:5]]
    # every visible file is complete; page 2 left nothing
    assert saved_files(out) == sorted(page1) and all(is_saved(out / f, f[:-5]) for f in page1)
    man = manifest(out)
    assert man["status"] == "running" and man["next_record_position"] == 6
    # what a kill during a write leaves behind: a hidden temporary file (ingest skips it, the next run removes it)
    stale = out / f".{api.meetings[5]['issueID']}.json.x1y2.tmp"
    stale.write_text('{"numberOfRecords": 1, "meetingRec', encoding="utf-8")

    n = len(api.requests)
    res = fetch_kokkai(QUERY, out, settings(url), clock=clock, show_progress=False)
    assert api.starts()[n:] == [6, 11]                    # resumed at the interrupted page
    assert res.saved == [f"{m['issueID']}.json" for m in api.meetings[5:]]
    assert res.files == [f"{m['issueID']}.json" for m in api.meetings]   # no duplicate, none missing
    assert not stale.exists() and saved_files(out) == sorted(res.files)
    assert manifest(out)["status"] == "complete"
    assert ingest_paths(out, cache=False).report["meetings"] == 13


def test_settings_and_query_are_checked_before_any_request(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(API_URL_ENV, "http://127.0.0.1:9/mirror/api/")
    assert fetch_settings().api_url == "http://127.0.0.1:9/mirror/api"
    assert fetch_settings(api_url="http://127.0.0.1:8/api").api_url == "http://127.0.0.1:8/api"
    monkeypatch.delenv(API_URL_ENV)
    assert fetch_settings().api_url == "https://kokkai.ndl.go.jp/api"
    assert FetchSettings().pause_seconds >= 1 and FetchSettings().page_size == 10
    cases = [(["--any", "x", "--pause", "0.5"], "--pause"),     # too fast for the official host
             (["--house", "県議会", "--any", "x"], "--house: must be one of"),
             (["--from", "2024-02-30"], "--from: no such date"),
             (["--from", "2024/01/01"], "--from: not a YYYY-MM-DD date"),
             (["--from", "2024-05-01", "--until", "2024-04-01"], "is after --until"),
             (["--house", "衆議院"], "give at least one of"),
             (["--any", "x", "--page-size", "11", "--api-url", "http://127.0.0.1:9/api"], "--page-size"),
             (["--any", "x", "--max-meetings", "0", "--api-url", "http://127.0.0.1:9/api"], "--max-meetings")]
    for args, expected in cases:
        rc = main(["-q", "fetch", "kokkai", "-o", str(tmp_path / "k"), *args])
        lines = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and expected in lines[0], (args, lines)
    assert not (tmp_path / "k").exists()


def test_resume_point_gone_pages_again_from_the_first(tmp_path, api, url, clock):
    out = tmp_path / "k"
    fetch_kokkai(QUERY, out, settings(url), max_meetings=7, clock=clock, show_progress=False)
    assert manifest(out)["next_record_position"] == 8
    api.meetings = api.meetings[:6]           # meetings withdrawn: record 8 no longer exists
    n = len(api.requests)
    res = fetch_kokkai(QUERY, out, settings(url), clock=clock, show_progress=False)
    assert api.starts()[n:] == [8, 1, 6]      # refused at the checkpoint, then from the first
    assert res.status == "complete" and res.files == [f"{m['issueID']}.json" for m in api.meetings]
    assert res.saved == [] and len(res.skipped) == 6


def test_total_changed_since_the_checkpoint_pages_again(tmp_path, api, url, clock):
    out = tmp_path / "k"
    fetch_kokkai(QUERY, out, settings(url), max_meetings=5, clock=clock, show_progress=False)
    newest = json.loads(json.dumps(api.meetings[0]))
    newest["issueID"], newest["date"] = "122104601X01220261201", "2026-12-01"   # a new meeting, listed first
    api.meetings.insert(0, newest)
    n = len(api.requests)
    res = fetch_kokkai(QUERY, out, settings(url), clock=clock, show_progress=False)
    assert api.starts()[n:] == [6, 1, 6, 11]
    assert res.files == [f"{m['issueID']}.json" for m in api.meetings] and res.saved[0] == "122104601X01220261201.json"
    assert len(set(res.files)) == 14 == len(saved_files(out))


def test_time_out_is_retried(tmp_path, api, url, clock):
    release = threading.Event()
    api.fail(Fault(hang=release), start=1)
    try:
        res = fetch_kokkai(QUERY, tmp_path / "k", settings(url, timeout_seconds=0.3), clock=clock,
                           show_progress=False)
    finally:
        release.set()
    assert api.starts()[:2] == [1, 1] and res.status == "complete" and clock.sleeps[0] == pytest.approx(2.0)


def test_ctrl_c_leaves_a_checkpoint(tmp_path, api, url):
    class InterruptingClock(FakeClock):
        def sleep(self, seconds):
            raise KeyboardInterrupt   # Ctrl-C during the pause after page 1

    out = tmp_path / "k"
    with pytest.raises(KeyboardInterrupt):
        fetch_kokkai(QUERY, out, settings(url), clock=InterruptingClock(), show_progress=False)
    man = manifest(out)
    assert man["status"] == "interrupted" and man["next_record_position"] == 6 and len(man["files"]) == 5
    assert len(saved_files(out)) == 5


def test_wrong_base_url_is_one_line(tmp_path, url, clock):
    with pytest.raises(PipelineError, match=r"^GET http://127\.0\.0\.1:\d+/nothing/meeting\?.*: HTTP 404"):
        fetch_kokkai(QUERY, tmp_path / "k", settings(url.replace("/api", "/nothing")), clock=clock,
                     show_progress=False)


def test_records_that_are_not_minutes_are_listed_not_saved(tmp_path, api, url, clock):
    index = json.loads(json.dumps(api.meetings[2]))
    index["issueID"], index["imageKind"] = "122105367X00020260521", "索引"   # an index volume of the same committee
    index["speechRecord"] = index["speechRecord"][:1]
    api.meetings.insert(3, index)
    header_only = next(json.loads(json.dumps(m)) for m in api.meetings if m["speechRecord"][0]["speechOrder"] == 0)
    header_only["issueID"], header_only["speechRecord"] = "122115382X00920260424", header_only["speechRecord"][:1]
    api.meetings.insert(5, header_only)
    out = tmp_path / "k"
    res = fetch_kokkai(QUERY, out, settings(url), clock=clock, show_progress=False)
    assert res.not_saved == ["122105367X00020260521", "122115382X00920260424"] and len(res.files) == 13
    assert not {"122105367X00020260521.json", "122115382X00920260424.json"} & set(saved_files(out))
    reasons = [e["reason"] for e in manifest(out)["not_saved"]]
    assert "imageKind 索引" in reasons[0] and "only the 会議録情報 header" in reasons[1]


def test_progress_bar_counts_meetings_against_the_api_total(tmp_path, api, url, clock, capsys, monkeypatch):
    import pipeline.io

    monkeypatch.setattr(pipeline.io, "QUIET", False)
    fetch_kokkai(QUERY, tmp_path / "k", settings(url), max_meetings=12, clock=clock)
    err = capsys.readouterr().err
    assert "kokkai" in err and "12/12" in err and "meeting" in err   # total: min(numberOfRecords 13, limit)
