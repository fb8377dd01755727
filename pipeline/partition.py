"""Per-partition execution with a content-hash cache, locally or on Dask.

Heavy stages (ingest, parse, embed) work per partition (one source file / one meeting). Each
partition's result is cached under ``.cache/<stage>/`` keyed by the hash of its input, the stage
parameters and the stage's code and libraries (:func:`pipeline.sources.code_digest`), so a re-run
after adding one file only computes that file; a removed file no longer contributes rows.

Executors (``scale:`` section of params.yaml, or keyword arguments):

* ``local`` with ``n_workers: 1`` (default): in this process, sequentially; models load once
  (the stage's module-level cached loader).
* ``local`` with ``n_workers: N > 1``: a pool of N worker processes; each process loads the
  model once and keeps it for all its partitions.
* ``dask``: a ``dask.distributed`` cluster. ``scheduler_address`` (e.g. ``tcp://host:8786``)
  connects to an existing cluster; empty starts an in-process ``LocalCluster`` with
  ``n_workers`` single-threaded worker processes (long-lived: each loads the model once).

Whatever the executor, functions must be module-level (picklable), take one partition payload
and return ``{table_name: DataFrame}``; cache reads and writes happen here, on the client side,
so workers need no access to ``.cache/``. Results are streamed: at most a few partitions are in
flight at once and, when caching, finished partitions are spilled to the cache and read back in
input order (:func:`iter_partitions`), so memory does not grow with the corpus.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import ROOT
from pipeline.errors import MultiFileError, PipelineError
from pipeline.io import progress
from pipeline.settings import default, load_settings
from pipeline.sources import code_digest

log = logging.getLogger("policy_topics.partition")

CACHE_DIR = ROOT / ".cache"
EXECUTORS = ("local", "dask")

Tables = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Partition:
    """One unit of work: ``name`` for logs, ``payload`` for the function, ``digest`` of the input."""

    name: str
    payload: Any
    digest: str


@dataclass
class RunStats:
    """What one :func:`map_partitions` call did (also in ``last_run_stats[stage]``)."""

    stage: str
    executor: str = default("scale.executor")
    n_workers: int = default("scale.n_workers")
    n_partitions: int = 0
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    compute_seconds: float = 0.0  # sum of per-partition function time (over all workers)
    worker_pids: list[int] = field(default_factory=list)  # processes that computed partitions

    @property
    def n_computed(self) -> int:
        return len(self.computed)

    def finish(self, seconds: float, stats: dict | None = None) -> None:
        """Record the wall time, copy into ``stats`` and log one summary line."""
        self.seconds, self.compute_seconds = round(seconds, 3), round(self.compute_seconds, 3)
        if stats is not None:
            stats.update(asdict(self))
        shown = ", ".join(self.computed[:10]) + (" ..." if len(self.computed) > 10 else "")
        log.info("%s: %d partition(s), %d from cache, %d computed [%s x%d] in %.1fs%s", self.stage,
                 self.n_partitions, self.n_cached, self.n_computed, self.executor, self.n_workers, self.seconds,
                 f": {shown}" if shown else "")

    @property
    def n_cached(self) -> int:
        return len(self.cached)


#: stats of the most recent run of each stage in this process, e.g. ``last_run_stats["parse"].computed``
last_run_stats: dict[str, RunStats] = {}


# --------------------------------------------------------------------------- hashing

def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_frame(df: pd.DataFrame) -> str:
    """Content hash of a DataFrame (values + column names, order-sensitive)."""
    h = hashlib.sha256(",".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df.astype(str), index=False).values.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- partition helpers

def file_partitions(paths: Iterable[str | Path], root: str | Path | None = None) -> list[Partition]:
    """One partition per file: name = path relative to ``root``, payload = the path, digest = content hash.

    The name is part of the digest, so renaming a file recomputes it (its ids change).
    """
    out = []
    for p in sorted(Path(x) for x in paths):
        name = str(p.relative_to(root)) if root else p.name
        out.append(Partition(name=name, payload=str(p), digest=hash_bytes(f"{name}\0{hash_file(p)}".encode())))
    return out


def frame_partitions(df: pd.DataFrame, by: str = "meeting_id") -> list[Partition]:
    """One partition per value of ``by`` (first-appearance order); payload = that slice, digest = its hash."""
    out = []
    for key, part in df.groupby(by, sort=False, dropna=False):
        part = part.reset_index(drop=True)
        out.append(Partition(name=str(key), payload=part, digest=hash_frame(part)))
    return out


def payload_weight(payload: Any) -> float:
    """Rough work estimate of a payload, for scheduling only: characters of a ``text`` column
    (else rows) of the DataFrames in it, or the size of a file path in it."""
    if isinstance(payload, pd.DataFrame):
        if "text" in payload.columns:
            return float(payload["text"].fillna("").astype(str).str.len().sum())
        return float(len(payload))
    if isinstance(payload, dict):
        return sum(payload_weight(v) for v in payload.values())
    if isinstance(payload, (tuple, list)) and len(payload) <= 8:
        return sum(payload_weight(v) for v in payload)
    if isinstance(payload, (str, Path)) and len(str(payload)) < 4096:
        try:
            p = Path(payload)
            return float(p.stat().st_size) if p.is_file() else 0.0
        except (OSError, ValueError):
            return 0.0
    return 0.0


# --------------------------------------------------------------------------- cache

def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: argument, else $POLICY_TOPICS_CACHE_DIR, else ``scale.cache_dir``, else .cache/."""
    if cache_dir:
        return Path(cache_dir)
    env = os.environ.get("POLICY_TOPICS_CACHE_DIR")
    if env:
        return Path(env)
    conf = _scale_params().get("cache_dir")
    if conf:
        p = Path(conf)
        return p if p.is_absolute() else ROOT / p
    return CACHE_DIR


def _key(part: Partition, params: dict, code: str) -> str:
    blob = json.dumps({"p": params, "c": code, "d": part.digest}, sort_keys=True, default=str)
    return hash_bytes(blob.encode())[:32]


def _load(dir_: Path) -> Tables:
    return {p.stem: pd.read_parquet(p) for p in sorted(dir_.glob("*.parquet"))}


def _store(dir_: Path, tables: Tables) -> None:
    tmp = dir_.with_name(f"{dir_.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, df in tables.items():
        df.to_parquet(tmp / f"{name}.parquet", index=False)
    shutil.rmtree(dir_, ignore_errors=True)
    tmp.rename(dir_)


# --------------------------------------------------------------------------- worker side

@dataclass
class _Failure:
    """A PipelineError raised in a worker, carried back in picklable form."""

    errors: list[tuple[str | None, str]]


@dataclass
class _Outcome:
    tables: Tables | None
    failure: _Failure | None
    seconds: float
    pid: int


def _run_one(func: Callable[[Any], Tables], payload: Any) -> _Outcome:
    """Executed on the worker: call ``func`` and time it; PipelineErrors come back as data."""
    t0 = time.perf_counter()
    try:
        tables = func(payload)
        failure = None
    except MultiFileError as exc:
        tables, failure = None, _Failure([(e.path, e.problem) for e in exc.errors])
    except PipelineError as exc:
        tables, failure = None, _Failure([(exc.path, exc.problem)])
    if tables is not None and not isinstance(tables, dict):
        raise TypeError(f"{func.__qualname__} must return a dict of DataFrames, got {type(tables).__name__}")
    return _Outcome(tables, failure, time.perf_counter() - t0, os.getpid())


# --------------------------------------------------------------------------- executors

def _scale_params() -> dict:
    """params.yaml ``scale`` (validated; defaults when the project has no params.yaml)."""
    return load_settings().scale.model_dump()


def resolve_executor(executor: str | None = None, n_workers: int | None = None,
                     scheduler_address: str | None = None) -> tuple[str, int, str]:
    """Arguments win, then $POLICY_TOPICS_EXECUTOR / $POLICY_TOPICS_SCHEDULER, then params.yaml ``scale``."""
    conf = _scale_params()
    executor = executor or os.environ.get("POLICY_TOPICS_EXECUTOR") or conf["executor"]
    if executor not in EXECUTORS:
        raise PipelineError(ROOT / "params.yaml", f"scale.executor must be one of {EXECUTORS}, got {executor!r}")
    if n_workers is None:
        n_workers = int(os.environ.get("POLICY_TOPICS_N_WORKERS") or conf["n_workers"])
    if scheduler_address is None:
        scheduler_address = os.environ.get("POLICY_TOPICS_SCHEDULER") or conf["scheduler_address"]
    return executor, max(1, int(n_workers)), str(scheduler_address or "")


def _imap_inline(func, items) -> Iterator[tuple[int, _Outcome]]:
    for i, payload in items:
        yield i, _run_one(func, payload)


def _single_threaded_worker() -> None:
    """Pool initializer: one BLAS/OpenMP thread per worker process (N workers on N cores, no
    oversubscription; Dask's nanny does the same for its workers)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # pragma: no cover - threadpoolctl missing: env vars below still apply
        pass


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _imap_pool(func, items, n_workers: int, window: int) -> Iterator[tuple[int, _Outcome]]:
    """A process pool; each worker process keeps its loaded models for all its partitions."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    items = iter(items)
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})  # inherited by the spawned workers only
    try:
        pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=mp.get_context("spawn"),
                                   initializer=_single_threaded_worker)
        for _ in range(n_workers):  # start the workers now, while the variables are set
            pool.submit(int)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with pool:
        pending: dict = {}
        for i, payload in items:
            pending[pool.submit(_run_one, func, payload)] = i
            if len(pending) >= window:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                yield i, fut.result()
                nxt = next(items, None)
                if nxt is not None:
                    pending[pool.submit(_run_one, func, nxt[1])] = nxt[0]


_CLIENTS: dict[tuple[str, int], Any] = {}


def get_client(scheduler_address: str = default("scale.scheduler_address"),
               n_workers: int = default("scale.n_workers")):
    """A (cached) ``dask.distributed.Client`` to ``scheduler_address`` or a new LocalCluster (defaults: ``scale``)."""
    key = (scheduler_address, n_workers if not scheduler_address else 0)
    client = _CLIENTS.get(key)
    if client is not None and client.status == "running":
        return client
    from dask.distributed import Client, LocalCluster

    if not log.isEnabledFor(logging.DEBUG):  # keep `policy-topics` output to our own log lines
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler_address:
        client = Client(scheduler_address)
        log.info("dask: connected to %s (%d workers)", scheduler_address,
                 len(client.scheduler_info().get("workers", {})))
    else:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
        log.info("dask: started LocalCluster with %d worker process(es)", n_workers)
    _CLIENTS[key] = client
    return client


def close_clients() -> None:
    """Close every Client (and LocalCluster) this process opened."""
    while _CLIENTS:
        _, client = _CLIENTS.popitem()
        cluster = getattr(client, "cluster", None)
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # pragma: no cover - best effort at shutdown
            pass


atexit.register(close_clients)


def _imap_dask(func, items, client, window: int, stage: str) -> Iterator[tuple[int, _Outcome]]:
    from dask.distributed import as_completed

    items = iter(items)
    index: dict[str, int] = {}

    def submit(i, payload):
        fut = client.submit(_run_one, func, payload, pure=False, key=f"{stage}-{i}-{os.urandom(4).hex()}")
        index[fut.key] = i
        return fut

    first = [submit(i, p) for i, p in (x for _, x in zip(range(window), items))]
    ac = as_completed(first)
    for fut in ac:
        i = index.pop(fut.key)
        outcome = fut.result()
        fut.release()
        yield i, outcome
        nxt = next(items, None)
        if nxt is not None:
            ac.add(submit(*nxt))


def _start(func, parts: list[Partition], todo: list[int], stage: str, executor: str, n_workers: int,
           address: str) -> Iterator[tuple[int, _Outcome]]:
    """Outcomes of the partitions ``todo`` (indices into ``parts``), as they finish, on the executor."""
    window = max(2 * n_workers, 2)
    if n_workers > 1 and len(todo) > n_workers:
        # largest first, so the last partition to finish is a small one (results are still yielded in order)
        todo = sorted(todo, key=lambda i: -payload_weight(parts[i].payload))
    items = ((i, parts[i].payload) for i in todo)
    if not todo:
        return iter(())
    if executor == "dask":
        return _imap_dask(func, items, get_client(address, n_workers), window, stage)
    if n_workers > 1 and len(todo) > 1:
        return _imap_pool(func, items, min(n_workers, len(todo)), window)
    return _imap_inline(func, items)


# --------------------------------------------------------------------------- map

def iter_partitions(
    func: Callable[[Any], Tables],
    parts: Sequence[Partition],
    *,
    stage: str,
    params: dict | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    executor: str | None = None,
    n_workers: int | None = None,
    scheduler_address: str | None = None,
    stats: dict | None = None,
    libraries: Iterable[str] = (),
) -> Iterator[tuple[Partition, Tables]]:
    """Yield ``(partition, tables)`` in input order, computing only partitions missing from the cache.

    Streaming version of :func:`map_partitions`: a caller that writes each
    partition out (e.g. as a Parquet row group) keeps memory bounded. All
    partitions are attempted; PipelineErrors are collected and raised at the
    end (one error as itself, several as MultiFileError).
    """
    t0 = time.perf_counter()
    params = params.model_dump(mode="json") if hasattr(params, "model_dump") else (params or {})
    parts = list(parts)
    executor, n_workers, address = resolve_executor(executor, n_workers, scheduler_address)
    code = code_digest(func, libraries=libraries)
    root = cache_root(cache_dir) / stage
    keys = [_key(p, params, code) for p in parts]
    hit = [cache and (root / k).is_dir() for k in keys]
    todo = [i for i, h in enumerate(hit) if not h]
    run = RunStats(stage=stage, executor=executor, n_workers=n_workers, n_partitions=len(parts))
    last_run_stats[stage] = run

    outcomes = _start(func, parts, todo, stage, executor, n_workers, address)
    ready: dict[int, Tables | None] = {}  # finished out of order (None: spilled to the cache)
    errors: list[PipelineError] = []
    failed: set[int] = set()
    bar = progress(total=len(parts), desc=stage, unit="part")
    try:
        for i, part in enumerate(parts):
            if hit[i]:
                run.cached.append(part.name)
                bar.update(1)
                yield part, _load(root / keys[i])
                continue
            while i not in ready:
                j, out = next(outcomes)
                run.compute_seconds += out.seconds
                if out.pid not in run.worker_pids:
                    run.worker_pids.append(out.pid)
                if out.failure is not None:
                    run.failed.append(parts[j].name)
                    failed.add(j)
                    errors += [PipelineError(p, m) for p, m in out.failure.errors]
                    ready[j] = {}
                    continue
                if cache:
                    _store(root / keys[j], out.tables)
                ready[j] = out.tables if (j == i or not cache) else None
                log.debug("%s: computed %s in %.1fs (pid %d)", stage, parts[j].name, out.seconds, out.pid)
            tables = ready.pop(i)
            bar.update(1)
            if i in failed:
                continue
            run.computed.append(part.name)
            yield part, (tables if tables is not None else _load(root / keys[i]))
    finally:
        bar.close()
        getattr(outcomes, "close", lambda: None)()
        run.finish(time.perf_counter() - t0, stats)
    if errors:
        raise errors[0] if len(errors) == 1 else MultiFileError(errors)


def map_partitions(
    func: Callable[[Any], Tables],
    parts: Sequence[Partition],
    *,
    stage: str,
    params: dict | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    executor: str | None = None,
    n_workers: int | None = None,
    scheduler_address: str | None = None,
    stats: dict | None = None,
    libraries: Iterable[str] = (),
) -> list[Tables]:
    """Apply ``func`` to every partition, reusing cached results; results in input order.

    ``func`` must be a module-level function returning ``{table_name: DataFrame}``.
    ``executor``/``n_workers``/``scheduler_address`` default to params.yaml ``scale``;
    ``stats`` (a dict) is filled with a :class:`RunStats` summary, which is also
    kept in ``last_run_stats[stage]``. ``params`` (the stage settings that change results)
    and ``libraries`` (distributions whose version changes results) are part of the cache key
    (see :func:`code_digest`).
    """
    return [tables for _, tables in iter_partitions(
        func, parts, stage=stage, params=params, cache=cache, cache_dir=cache_dir, executor=executor,
        n_workers=n_workers, scheduler_address=scheduler_address, stats=stats, libraries=libraries)]


def concat_tables(results: Iterable[Tables]) -> Tables:
    """Concatenate per-partition tables by name."""
    results = list(results)
    names: list[str] = []
    for r in results:
        names += [n for n in r if n not in names]
    return {n: pd.concat([r[n] for r in results if n in r], ignore_index=True) for n in names}
