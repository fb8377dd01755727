"""Shared I/O: atomic writes (no partial outputs), logging and stage timing."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger("policy_topics")

#: set by the CLI (--quiet); stages pass it to tqdm(disable=...)
QUIET = False

_UMASK = os.umask(0)
os.umask(_UMASK)


def setup_logging(verbosity: int = 0) -> None:
    """verbosity: -1 quiet (warnings only), 0 info, 1 debug."""
    global QUIET
    QUIET = verbosity < 0
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
                        datefmt="%H:%M:%S", force=True)
    for noisy in ("numba", "urllib3", "matplotlib", "asyncio", "fsspec", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress(iterable=None, **kwargs):
    """tqdm progress bar that respects --quiet."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", QUIET)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only on success.

    A failing stage therefore never leaves a half-written output behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes 0600 files; outputs get the usual umask mode
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:  # callers may replace the temp file by a directory (saved models)
        if tmp_path.is_dir():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_json(obj: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, default=_json_default) + "\n",
                       encoding="utf-8")
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


@contextlib.contextmanager
def stage_timer(stage: str) -> Iterator[dict]:
    """Log a stage's start/end with seconds; yields a dict the stage fills with counts."""
    stats: dict[str, Any] = {}
    logger = logging.getLogger(f"policy_topics.{stage}")
    logger.info("start")
    t0 = time.perf_counter()
    yield stats
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    logger.info("done in %.1fs: %s", stats["seconds"],
                ", ".join(f"{k}={v}" for k, v in stats.items() if k != "seconds"))
