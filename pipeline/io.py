"""Shared I/O: atomic, all-or-nothing outputs (files and directories), JSON-lines input, logging and
stage timing."""
from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError

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


class OutputTransaction:
    """Outputs of one stage run: written to temporary siblings, installed together or not at all.

    Every :func:`atomic_path` (and so :func:`write_parquet`, :func:`write_json`,
    :func:`write_text`) inside ``with output_transaction():`` only *stages* its result;
    when the block ends without an exception, :meth:`commit` installs all of them:
    an existing target (file or directory) is first renamed to a backup beside it, the
    new one renamed into place, and the backups removed at the end. If an install
    fails midway, the targets installed so far are rolled back to their backups, so a
    stage's outputs appear together or not at all. On an exception every temporary
    file/directory is removed and no target is touched.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []   # (temporary, target)
        self.after: list = []                         # callables run once everything is installed
        self.made_dirs: list[Path] = []               # directories created for outputs (removed on abort)
        self.replaceable: set[Path] = set()           # targets a directory may replace even if a file

    def on_commit(self, fn) -> None:
        """Run ``fn()`` after a successful commit (e.g. removing outputs a run no longer makes)."""
        self.after.append(fn)

    def add(self, tmp: Path, target: Path) -> None:
        self.pending = [(t, g) for t, g in self.pending if g != target]  # last write of a target wins
        self.pending.append((tmp, target))

    def abort(self) -> None:
        for tmp, _ in self.pending:
            _remove(tmp)
        self.pending.clear()
        self.after.clear()
        for d in reversed(self.made_dirs):  # no empty output directories left behind either
            _remove_empty_dirs(d)
        self.made_dirs.clear()

    def commit(self) -> None:
        for tmp, target in self.pending:  # cheap checks first: nothing installed yet
            if target not in self.replaceable:
                _check_target(target, tmp.is_dir())
        installed: list[tuple[Path, Path | None]] = []   # (target, backup or None)
        try:
            for tmp, target in self.pending:
                backup = None
                if target.exists() or target.is_symlink():
                    backup = target.with_name(f".{target.name}.{os.getpid()}.old")
                    _remove(backup)
                    os.replace(target, backup)
                try:
                    os.replace(tmp, target)
                except OSError:
                    if backup is not None:
                        os.replace(backup, target)
                    raise
                installed.append((target, backup))
        except OSError as exc:
            for target, backup in reversed(installed):
                _remove(target)
                if backup is not None:
                    with contextlib.suppress(OSError):
                        os.replace(backup, target)
            self.abort()
            raise PipelineError(exc.filename or None, f"cannot write output: {exc.strerror or exc}") from None
        for _, backup in installed:
            if backup is not None:
                _remove(backup)
        self.pending.clear()
        after, self.after = self.after, []
        for fn in after:
            fn()


_TRANSACTION: contextvars.ContextVar[OutputTransaction | None] = contextvars.ContextVar(
    "policy_topics_output_transaction", default=None)


@contextlib.contextmanager
def output_transaction() -> Iterator[OutputTransaction]:
    """All outputs written inside the block appear together, or none does (see
    :class:`OutputTransaction`). Nested blocks join the outermost one."""
    outer = _TRANSACTION.get()
    if outer is not None:
        yield outer
        return
    txn = OutputTransaction()
    token = _TRANSACTION.set(txn)
    try:
        yield txn
    except BaseException:
        txn.abort()
        raise
    finally:
        _TRANSACTION.reset(token)
    txn.commit()


def on_commit(fn) -> None:
    """Run ``fn()`` when the current output transaction commits (at once outside one)."""
    txn = _TRANSACTION.get()
    if txn is None:
        fn()
    else:
        txn.on_commit(fn)


def _remove_empty_dirs(top: Path) -> None:
    if not top.is_dir():
        return
    for root, _, _ in os.walk(top, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(root)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        with contextlib.suppress(OSError):
            p.unlink()


def _check_target(path: Path, is_dir: bool) -> None:
    if path.is_dir() and not is_dir:
        raise PipelineError(path, "output path is a directory")
    if path.exists() and not path.is_dir() and is_dir:
        raise PipelineError(path, "output path is a file, a directory is needed")


def _output_error(path: Path, exc: OSError) -> PipelineError:
    """OSError while preparing/writing an output -> one line naming the output."""
    if isinstance(exc, (NotADirectoryError, FileExistsError)) and not path.parent.is_dir():
        problem = "cannot create output: a parent path is not a directory"
    elif getattr(exc, "errno", None) == errno.ENAMETOOLONG:
        problem = "cannot create output: file name too long"
    else:
        problem = f"cannot write output: {exc.strerror or exc}"
    return PipelineError(path, problem)


@contextlib.contextmanager
def atomic_path(path: str | Path, directory: bool = False, replace_file: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (an empty directory if ``directory``);
    it replaces ``path`` only on success. ``replace_file``: a directory may replace a single file
    left at ``path`` (an output whose layout changed, kept by DVC because it is ``persist``).

    A failing stage therefore never leaves a half-written output behind. Inside
    :func:`output_transaction` the replacement waits until the whole stage succeeded.
    Output-path problems (read-only directory, a parent that is a file, a name too
    long, a directory where a file is wanted) are :class:`PipelineError` naming ``path``.
    """
    path = Path(path)
    try:
        if any(len(part.encode()) > 255 for part in path.parts):
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(path))
        if not (replace_file and directory and path.is_file()):
            _check_target(path, directory)
        missing = next((a for a in reversed(path.parents) if not a.exists()), None)
        path.parent.mkdir(parents=True, exist_ok=True)
        txn_ = _TRANSACTION.get()
        if missing is not None and txn_ is not None:
            txn_.made_dirs.append(missing)
        if directory:
            tmp_path = Path(tempfile.mkdtemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent))
        else:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp_path = Path(tmp)
    except OSError as exc:
        raise _output_error(path, exc) from None
    txn = _TRANSACTION.get()
    try:
        yield tmp_path
        if tmp_path.is_file():  # mkstemp makes 0600 files; outputs get the usual umask mode
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        elif tmp_path.is_dir():
            os.chmod(tmp_path, 0o777 & ~_UMASK)
        if txn is not None:
            txn.add(tmp_path, path)
            if replace_file:
                txn.replaceable.add(path)
        else:
            single = OutputTransaction()
            single.add(tmp_path, path)
            if replace_file:
                single.replaceable.add(path)
            single.commit()
    except OSError as exc:
        _remove(tmp_path)
        raise _output_error(path, exc) from None
    except BaseException:
        _remove(tmp_path)
        raise


def read_json_lines(path: Path, ok, needs: str, hint: str = "") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a UTF-8 JSON-lines file (a byte-order
    mark, as Windows editors write, is skipped). A line that
    is not JSON, or an object ``ok(obj)`` rejects, is a one-line error naming the file and line
    (``needs`` says what a line must hold; ``hint`` is appended to the invalid-JSON message)."""
    with Path(path).open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PipelineError(path, f"line {n}: invalid JSON ({exc.msg}){hint}") from None
            if not isinstance(rec, dict) or not ok(rec):
                raise PipelineError(path, f"line {n}: {needs}")
            yield n, rec


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_json(obj: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, default=_json_default) + "\n",
                       encoding="utf-8")
    return Path(path)


#: metric keys that differ on every run (wall times, cache hits): kept out of DVC-tracked metrics
_RUN_KEYS = re.compile(r"(^|_)seconds$|^partitions$")


def split_run_facts(obj: Any) -> tuple[Any, Any]:
    """``obj`` -> (the same without run-dependent keys, only those keys), recursively."""
    if not isinstance(obj, dict):
        return obj, None
    keep, facts = {}, {}
    for k, v in obj.items():
        if _RUN_KEYS.search(str(k)):
            facts[k] = v
            continue
        kept, sub = split_run_facts(v)
        keep[k] = kept
        if sub:
            facts[k] = sub
    return keep, facts


def timings_path(metrics_path: str | Path) -> Path:
    """Where the run facts of ``metrics/x.json`` go: ``metrics/timings/x.json`` (not a DVC output,
    not in git), so a rerun leaves dvc.lock and ``dvc status`` unchanged."""
    p = Path(metrics_path)
    return p.parent / "timings" / p.name


def write_metrics(metrics: dict, path: str | Path) -> Path:
    """Write DVC-tracked metrics that are the same on every run of the same inputs (byte for byte)
    and the run's timings/cache facts beside them in :func:`timings_path`."""
    clean, facts = split_run_facts(metrics)
    write_json(clean, path)
    if facts:
        write_json(facts, timings_path(path))
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
