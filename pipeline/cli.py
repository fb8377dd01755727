"""`policy-topics` console script: argument parsing only.

Each stage module registers its own subcommands through ``register(subparsers)``
and keeps heavy imports (GiNZA, BERTopic, ...) inside its functions, so
``policy-topics ingest`` never pays for BERTopic's import.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pipeline import __version__
from pipeline.errors import MultiFileError, PipelineError
from pipeline.io import setup_logging

#: modules that register subcommands, in pipeline order
COMMAND_MODULES = [
    "pipeline.fetch",
    "pipeline.ingest",
    "pipeline.parse",
    "pipeline.embed",
    "pipeline.topics",
    "pipeline.classify",
    "pipeline.report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="policy-topics",
        description="Japanese meeting minutes -> utterances, sentences, entities, topics, policy themes, reports.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a stage still under construction
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(-1 if args.quiet else 1 if args.verbose else 0)
    try:
        result = args.func(args)
    except MultiFileError as exc:
        for line in exc.lines():
            print(f"policy-topics: error: {line}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"policy-topics: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        logging.getLogger("policy_topics").warning("interrupted")
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
