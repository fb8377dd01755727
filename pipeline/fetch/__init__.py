"""Fetch: pull minutes from public APIs into ``data/raw/`` (``policy-topics fetch SOURCE``).

Not a DVC stage, on purpose: ``dvc repro`` must work offline and give the same result every time.
A fetch adds files to ``data/raw/``; commit them (or ``dvc add`` the folder) and repro reads them.

Sources: ``kokkai`` (国会会議録検索システム API, :mod:`pipeline.fetch.kokkai`).
"""
from __future__ import annotations

import logging

log = logging.getLogger("policy_topics.fetch")

DEFAULT_OUT = "data/raw/kokkai"


def run_fetch_kokkai_cli(args) -> int:
    from pipeline.fetch.kokkai import KokkaiQuery, fetch_kokkai, fetch_settings
    from pipeline.io import QUIET

    query = KokkaiQuery.build(any=args.any, meeting=args.meeting, speaker=args.speaker, house=args.house,
                              from_date=args.from_date, until_date=args.until_date)
    settings = fetch_settings(api_url=args.api_url, pause_seconds=args.pause, max_failures=args.max_failures,
                              timeout_seconds=args.timeout, page_size=args.page_size)
    res = fetch_kokkai(query, args.output, settings, max_meetings=args.max_meetings, show_progress=not QUIET)
    if res.total == 0:
        log.warning("kokkai: no meeting matches %s", query.api_params())
    log.info("kokkai: %d of %d meeting(s) in %s (%d new, %d already saved), %d request(s), %s; manifest %s",
             len(res.files), res.total, res.out_dir, len(res.saved), len(res.skipped), res.requests,
             res.status.replace("_", " "), res.manifest)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("fetch", help="download minutes from a public API into data/raw/ (not a DVC stage)",
                              description="Download minutes into data/raw/. Not part of `dvc repro` (which "
                                          "stays offline): commit the files or `dvc add` the folder.")
    sources = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    k = sources.add_parser(
        "kokkai", help="国会会議録検索システム API (Diet minutes), one {issueID}.json per meeting",
        description="Page through the 国会会議録検索システム meeting endpoint (each meeting whole, with every "
                    "speech) and save one {issueID}.json per meeting, which `policy-topics ingest` reads. "
                    "One request at a time with a pause between requests; re-running the same query "
                    "resumes and skips meetings already saved.")
    q = k.add_argument_group("search conditions (the API's any / nameOfMeeting / speaker / nameOfHouse / from / until)")
    q.add_argument("--any", metavar="WORDS", help="words in the minutes (space-separated: all of them)")
    q.add_argument("--meeting", metavar="NAME", help="meeting name, partial match, e.g. 総務委員会 (space: any of them)")
    q.add_argument("--speaker", metavar="NAME", help="speaker name, partial match (space: any of them)")
    q.add_argument("--house", metavar="HOUSE", help="衆議院, 参議院 or 両院")
    q.add_argument("--from", dest="from_date", metavar="YYYY-MM-DD", help="meetings held on or after this day")
    q.add_argument("--until", dest="until_date", metavar="YYYY-MM-DD", help="meetings held on or before this day")
    k.add_argument("--max-meetings", type=int, metavar="N", help="stop after the first N meetings of the result")
    k.add_argument("-o", "--output", default=DEFAULT_OUT, metavar="DIR",
                   help=f"folder for the {{issueID}}.json files (default {DEFAULT_OUT})")
    k.add_argument("--api-url", metavar="URL",
                   help="API base URL (default $POLICY_TOPICS_KOKKAI_API, else https://kokkai.ndl.go.jp/api)")
    k.add_argument("--pause", type=float, metavar="SECONDS",
                   help="pause after each response before the next request (default 3; at least 1 against "
                        "kokkai.ndl.go.jp)")
    k.add_argument("--max-failures", type=int, metavar="N",
                   help="failed attempts of one request (429, 5xx, time-out, dropped connection) before "
                        "giving up (default 5; retries back off exponentially)")
    k.add_argument("--timeout", type=float, metavar="SECONDS", help="time-out of one request (default 60)")
    k.add_argument("--page-size", type=int, metavar="N", help="meetings per request, 1-10 (default 10, the API's maximum)")
    k.set_defaults(func=run_fetch_kokkai_cli)
