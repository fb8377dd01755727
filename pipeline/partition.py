"""Per-partition execution with a content-hash cache.

Heavy stages (ingest, parse, embed) work per partition (one source file / one
meeting). Each partition's result is cached under ``.cache/<stage>/`` keyed by
the hash of its input, the stage parameters and the stage's code, so a re-run
after adding one file only computes that file, and a removed file simply no
longer contributes rows.

Executors: ``local`` (in this process; GiNZA etc. load once). The Dask
executor (``executor: dask`` in params.yaml) is added in issue 8.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import shutil
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import ROOT
from pipeline.io import progress

log = logging.getLogger("policy_topics.partition")

CACHE_DIR = ROOT / ".cache"

Tables = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Partition:
    """One unit of work: ``name`` for logs, ``payload`` for the function, ``digest`` of the input."""

    name: str
    payload: Any
    digest: str


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


def code_digest(*objs: Callable | Hashable) -> str:
    """Hash of the source of the modules defining ``objs``: code changes invalidate the cache."""
    h = hashlib.sha256()
    for obj in objs:
        module = inspect.getmodule(obj)
        src = inspect.getsource(module) if module else repr(obj)
        h.update(src.encode())
    return h.hexdigest()[:16]


def _key(part: Partition, params: dict, code: str) -> str:
    blob = json.dumps({"p": params, "c": code, "d": part.digest}, sort_keys=True, default=str)
    return hash_bytes(blob.encode())[:32]


def _load(dir_: Path) -> Tables:
    return {p.stem: pd.read_parquet(p) for p in sorted(dir_.glob("*.parquet"))}


def _store(dir_: Path, tables: Tables) -> None:
    tmp = dir_.with_name(dir_.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, df in tables.items():
        df.to_parquet(tmp / f"{name}.parquet", index=False)
    shutil.rmtree(dir_, ignore_errors=True)
    tmp.rename(dir_)


def map_partitions(
    func: Callable[[Any], Tables],
    parts: Sequence[Partition],
    *,
    stage: str,
    params: dict | None = None,
    cache: bool = True,
    cache_dir: str | Path | None = None,
) -> list[Tables]:
    """Apply ``func`` to every partition, reusing cached results; results in input order.

    ``func`` must be a module-level function returning ``{table_name: DataFrame}``.
    """
    params = params or {}
    code = code_digest(func)
    root = Path(cache_dir or CACHE_DIR) / stage
    results: list[Tables] = []
    hits = 0
    for part in progress(parts, desc=stage, unit="part"):
        key = _key(part, params, code)
        dir_ = root / key
        if cache and dir_.is_dir():
            results.append(_load(dir_))
            hits += 1
            continue
        tables = func(part.payload)
        if cache:
            _store(dir_, tables)
        results.append(tables)
    log.info("%s: %d partition(s), %d from cache, %d computed", stage, len(parts), hits, len(parts) - hits)
    return results


def concat_tables(results: list[Tables]) -> Tables:
    """Concatenate per-partition tables by name."""
    names: list[str] = []
    for r in results:
        names += [n for n in r if n not in names]
    return {n: pd.concat([r[n] for r in results if n in r], ignore_index=True) for n in names}
