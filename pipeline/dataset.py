"""Partitioned Parquet datasets: the on-disk form of the large stage outputs.

A big table (parse's sentences / tokens / entities, embed's embeddings, topics'
sentence_topics, classify's sentences and utterances) is a *directory* named like the old single
file (``sentences.parquet/``) holding one Parquet file per partition, normally one meeting::

    data/interim/sentences.parquet/
        part-00000.parquet      # first meeting (input order)
        part-00001.parquet
        ...

Files are written as partitions finish (:class:`DatasetWriter`), so a stage holds
one partition's rows at a time, never the whole table. Row order = file order, then
row order inside a file, i.e. the same order the single file had. Readers see the
same columns as before (the table contracts in docs/ARCHITECTURE.md are unchanged):
``pd.read_parquet(dir)``, :func:`read_table` (file by file, with column projection
and filters), :func:`iter_parts` (one partition at a time), :class:`MeetingTable` (one
meeting's file, found from file metadata: :func:`partitions`) or DuckDB
(``read_parquet('sentences.parquet/*.parquet')``). Single-file tables written by older
versions are read the same way.

All-or-nothing: a writer fills a hidden temporary directory next to the target
(:func:`pipeline.io.atomic_path` with ``directory=True``) that replaces the target only when
the stage succeeds; a stage that fails leaves the previous output (or none) untouched.
Several outputs of one stage are installed together (:func:`open_datasets`, one
:func:`pipeline.io.output_transaction`).
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.errors import PipelineError

PART = "part-{:05d}.parquet"
#: file metadata key naming a part's partition (meeting id), see :meth:`DatasetWriter.write`
PARTITION_KEY = b"partition"

_UMASK = os.umask(0)
os.umask(_UMASK)


def _strip(schema: pa.Schema) -> pa.Schema:
    return schema.remove_metadata()


class DatasetWriter:
    """Write a table partition by partition into ``path`` (a directory of Parquet files).

    ``write(df)`` adds one file (empty frames are skipped; if nothing but empty frames
    came, :meth:`finalize` writes one empty file so readers still get the columns).
    Files whose column types differ from the others (a column that is all-null in one
    meeting) are rewritten at :meth:`finalize` with the unified schema, so every reader
    (pandas, pyarrow, DuckDB) sees one consistent schema.

    The files go to a temporary directory from :func:`pipeline.io.atomic_path` (``directory=True``);
    :meth:`commit` installs it, or stages it in the surrounding
    :func:`pipeline.io.output_transaction`, which installs every output of the stage together.
    """

    def __init__(self, path: str | Path, metadata: dict[str, str] | None = None, replace_file: bool = False):
        from pipeline.io import atomic_path

        self.path = Path(path)
        self._ctx = atomic_path(self.path, directory=True, replace_file=replace_file)
        self.tmp = Path(self._ctx.__enter__())
        self.metadata = {k.encode(): str(v).encode() for k, v in (metadata or {}).items()}
        self.files: list[Path] = []
        self.schemas: list[pa.Schema] = []
        self.rows = 0
        self.kept = 0
        self._kept: set[Path] = set()
        self._empty: pa.Table | None = None
        self._final = False

    def write(self, data: pd.DataFrame | pa.Table, partition: str | None = None) -> None:
        """Add one file. ``partition``: the key of this file's rows (normally its meeting id), stored in
        the file's metadata (``partition``) so readers find a meeting's file without scanning rows
        (:func:`partitions`) and a later run can keep it (:meth:`keep`)."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        if table.num_rows == 0:
            if self._empty is None or table.num_columns > self._empty.num_columns:
                self._empty = table
            return
        f = self.tmp / PART.format(len(self.files))
        extra = {PARTITION_KEY: str(partition).encode()} if partition is not None else {}
        pq.write_table(self._with_meta(table, extra), f)
        self.files.append(f)
        self.schemas.append(table.schema)
        self.rows += table.num_rows

    def keep(self, existing: str | Path) -> None:
        """Add an existing part file of the previous output unchanged (same bytes, same mtime: a
        hard link where the file system allows, else a copy keeping the mtime), e.g. a meeting whose
        rows did not change. Its rows count like written ones."""
        existing = Path(existing)
        f = self.tmp / PART.format(len(self.files))
        try:
            os.link(existing, f)
        except OSError:
            shutil.copy2(existing, f)
        md = pq.ParquetFile(f).metadata
        self.files.append(f)
        self.schemas.append(md.schema.to_arrow_schema())
        self.rows += md.num_rows
        self.kept += 1
        self._kept.add(f)

    def _with_meta(self, table: pa.Table, extra: dict[bytes, bytes] | None = None) -> pa.Table:
        if not self.metadata and not extra:
            return table
        return table.replace_schema_metadata({**(table.schema.metadata or {}), **self.metadata, **(extra or {})})

    def finalize(self) -> None:
        """Make the files one consistent dataset (called by :meth:`commit`)."""
        if self._final:
            return
        if not self.files:
            empty = self._empty if self._empty is not None else pa.table({})
            pq.write_table(self._with_meta(empty), self.tmp / PART.format(0))
            self.files.append(self.tmp / PART.format(0))
        elif any(not _strip(s).equals(_strip(self.schemas[0])) for s in self.schemas):
            target = _strip(pa.unify_schemas([_strip(s) for s in self.schemas], promote_options="permissive"))
            for f, s in zip(self.files, self.schemas):
                if not _strip(s).equals(target):
                    t = pq.read_table(f)
                    t = t.select(target.names).cast(target).replace_schema_metadata(t.schema.metadata)
                    f.unlink()  # a kept part is a hard link to the previous output: never write through it
                    pq.write_table(t, f)
                    self._kept.discard(f)
        for f in self.files:
            if f not in self._kept:  # a kept part keeps its inode's mode (it may be a DVC cache link)
                os.chmod(f, 0o666 & ~_UMASK)
        self._final = True

    def commit(self) -> Path:
        """Finalize, then install the dataset in place of ``path`` (now, or with the surrounding
        output transaction)."""
        try:
            self.finalize()
        except BaseException:
            self.abort()
            raise
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            ctx.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        """Drop the temporary directory; ``path`` is left as it was."""
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            err = RuntimeError(f"{self.path}: dataset write aborted")
            ctx.__exit__(RuntimeError, err, None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@contextlib.contextmanager
def open_datasets(paths: dict[str, str | Path], metadata: dict[str, dict] | None = None
                  ) -> Iterator[dict[str, DatasetWriter]]:
    """Writers for several outputs of one stage, installed together only if the block succeeds
    (one :func:`pipeline.io.output_transaction`; other outputs written inside the same
    transaction, e.g. the stage's metrics JSON, join it)."""
    from pipeline.io import output_transaction

    with output_transaction():
        writers: dict[str, DatasetWriter] = {}
        try:
            for name, p in paths.items():
                writers[name] = DatasetWriter(p, (metadata or {}).get(name))
            yield writers
            for w in writers.values():
                w.finalize()
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        for w in writers.values():
            w.commit()


def key_runs(keys: Sequence | None, n: int) -> list[tuple[str | None, int, int]]:
    """(key, start, stop) of each run of consecutive rows with the same key, in row order (one run
    per meeting in a parse output); one run ``(None, 0, n)`` without keys or rows."""
    if keys is None or not n:
        return [(None, 0, n)]
    k = pd.Series(keys).astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    stops = np.r_[starts[1:], len(k)]
    return [(str(k[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def write_dataset(df: pd.DataFrame, path: str | Path, by: str | Sequence | None = "meeting_id", *,
                  keep: bool = False, replace_file: bool = False) -> dict:
    """Write a whole frame as a dataset in row order: one file per run of consecutive rows with the
    same key (``by``: a column of ``df``, or one key per row, e.g. the meeting ids of the frame the
    rows belong to; None or a missing column: one file), the key in the file's metadata
    (:func:`partitions`).

    With ``keep`` (a stage that re-runs over mostly unchanged meetings), a key whose rows equal its
    file in the previous dataset at ``path`` keeps that file as it is (same bytes and mtime,
    :meth:`DatasetWriter.keep`): only new or changed keys' files are written. ``replace_file``: a
    single file at ``path`` (an older version's layout) is replaced instead of being an error.
    Returns {"written": files written, "kept": files kept}."""
    keys = df[by].to_numpy() if isinstance(by, str) and by in df.columns else None if isinstance(by, str) else by
    runs = key_runs(keys, len(df))
    old = _previous_parts(path) if keep else {}
    n_runs: dict[str | None, int] = {}
    for k, _, _ in runs:
        n_runs[k] = n_runs.get(k, 0) + 1
    with DatasetWriter(path, replace_file=replace_file) as w:
        for k, a, b in runs:
            part = pa.Table.from_pandas(df.iloc[a:b], preserve_index=False)
            prev = old.get(k) if k is not None and n_runs[k] == 1 else None
            if prev is not None and len(prev) == 1 and _same_rows(prev[0], part):
                w.keep(prev[0])
            else:
                w.write(part, partition=k)
    return {"written": len(w.files) - w.kept, "kept": w.kept}


def _previous_parts(path: str | Path) -> dict[str, list[Path]]:
    """Key -> files of the dataset at ``path`` ({} if there is none, or it is unreadable)."""
    old: dict[str, list[Path]] = {}
    if Path(path).is_dir():
        try:
            for k, f in partitions(path):
                old.setdefault(str(k), []).append(f)
        except PipelineError:
            return {}
    return old


def _same_rows(f: Path, table: pa.Table) -> bool:
    try:
        return pq.read_table(f).equals(table)
    except (pa.ArrowException, OSError):
        return False


# --------------------------------------------------------------------------- reading

def part_files(path: str | Path) -> list[Path]:
    """The Parquet files of a table: the file itself, or the dataset directory's parts in order."""
    p = Path(path)
    if not p.exists():
        raise PipelineError(p, "file not found")
    if p.is_dir():
        return sorted(f for f in p.glob("*.parquet") if not f.name.startswith((".", "_")))
    return [p]


def dataset(path: str | Path) -> ds.Dataset:
    """A ``pyarrow.dataset`` over a table (single file or dataset directory), in row order."""
    files = part_files(path)
    try:
        if len(files) == 1:
            return ds.dataset(str(files[0]), format="parquet")
        schemas = [pq.read_schema(f) for f in files]
        schema = pa.unify_schemas(schemas, promote_options="permissive")
        return ds.dataset([str(f) for f in files], schema=schema, format="parquet")
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(path, f"cannot read parquet ({exc})") from exc


def columns_of(path: str | Path) -> list[str]:
    return list(dataset(path).schema.names)


def _unified(path, files: list[Path]) -> pa.Schema:
    try:
        schemas = [pq.read_schema(f) for f in files]
        return schemas[0] if len(schemas) == 1 else pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(path, f"cannot read parquet ({exc})") from exc


def read_table(path: str | Path, columns: Sequence[str] | None = None, filter: Any = None,
               arrow: bool = False) -> pd.DataFrame | pa.Table:
    """Read a table (or only ``columns`` / rows matching a pyarrow ``filter`` expression).

    Part by part (``pyarrow.parquet.read_table`` on each file, then one concatenation with the
    schemas promoted to their union): file order is row order, and it is faster than scanning a
    ``pyarrow.dataset`` fragment by fragment cast to the unified schema (``benchmarks/dataset_read.py``).
    Columns asked for but absent are an error naming the file; a column missing from some parts is
    null there.
    """
    files = part_files(path)
    if not files:
        raise PipelineError(path, "cannot read parquet (a dataset directory without parts)")
    try:
        try:  # the common case: every part has every column asked for
            tables = [pq.read_table(f, columns=columns, filters=filter) for f in files]
        except pa.ArrowInvalid:  # a column absent from some part (or from all: the error below)
            tables = None
        schemas = [t.schema for t in tables] if tables is not None else [pq.read_schema(f) for f in files]
        schema = schemas[0] if len(schemas) == 1 else pa.unify_schemas(schemas, promote_options="permissive")
        if tables is None:
            missing = [c for c in columns or () if c not in schema.names]
            if missing:
                raise PipelineError(path, f"table lacks column(s) {missing}")
            tables = [pq.read_table(f, columns=[c for c in columns if c in sch.names], filters=filter)
                      for f, sch in zip(files, schemas)]
        names = list(columns) if columns is not None else schema.names
        if len(tables) == 1 and tables[0].column_names == names:
            return tables[0] if arrow else tables[0].to_pandas()
        t = pa.concat_tables(tables, promote_options="permissive").select(names)
        meta = {k: v for k, v in (schema.metadata or {}).items() if k != PARTITION_KEY}  # not one part's key
        target = pa.schema([schema.field(n) for n in names], metadata=meta)
        t = t.cast(target) if not t.schema.equals(target, check_metadata=False) else t.replace_schema_metadata(meta)
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(path, f"cannot read parquet ({exc})") from exc
    return t if arrow else t.to_pandas()


def iter_parts(path: str | Path, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """One DataFrame per file of the dataset (one meeting each when written by a stage)."""
    d = dataset(path)
    for frag in d.get_fragments():
        for_cols = [c for c in columns if c in d.schema.names] if columns is not None else None
        yield frag.to_table(columns=for_cols, schema=d.schema).to_pandas()


def partitions(path: str | Path) -> list[tuple[str | None, Path]]:
    """(partition key, file) of every part in order, from file metadata only (no rows read): the key
    a stage wrote (:meth:`DatasetWriter.write`), else the meeting id when the part's ``meeting_id``
    statistics say it holds one meeting, else None (several meetings, or unknown)."""
    out: list[tuple[str | None, Path]] = []
    for f in part_files(path):
        try:
            md = pq.ParquetFile(f).metadata
        except (pa.ArrowException, OSError) as exc:
            raise PipelineError(f, f"cannot read parquet ({exc})") from exc
        meta = md.metadata or {}
        key = meta.get(PARTITION_KEY)
        if key is not None:
            out.append((key.decode(), f))
            continue
        out.append((_single_meeting(md), f))
    return out


def _single_meeting(md) -> str | None:
    if md.num_row_groups == 0:
        return None
    rg = md.row_group(0)
    j = next((k for k in range(rg.num_columns) if rg.column(k).path_in_schema == "meeting_id"), None)
    if j is None:
        return None
    lo = hi = None
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(j).statistics
        if st is None or not st.has_min_max or st.null_count:
            return None
        lo = st.min if lo is None else min(lo, st.min)
        hi = st.max if hi is None else max(hi, st.max)
    return str(lo) if lo == hi and lo is not None else None


class MeetingTable:
    """A table read one meeting at a time, by meeting id: ``get(meeting_id, columns)``.

    A dataset written one meeting per file reads only that meeting's file(s) (found from file
    metadata, :func:`partitions`). A single file, or parts holding several meetings, is read once
    (only ``columns``) and kept: the legacy layout, where the memory bound does not hold."""

    def __init__(self, path: str | Path, columns: Sequence[str] | None = None):
        self.path = Path(path)
        self.columns = list(columns) if columns is not None else None
        self.schema = _unified(self.path, part_files(self.path))
        if self.columns is not None:
            self.columns = [c for c in self.columns if c in self.schema.names]
        self.by_meeting: dict[str, list[Path]] = {}
        self._whole: pd.DataFrame | None = None
        self._rows: dict[str, np.ndarray] = {}
        parts = partitions(self.path) if self.path.is_dir() else [(None, self.path)]
        self.indexed = all(k is not None for k, _ in parts)
        if self.indexed:
            for k, f in parts:
                self.by_meeting.setdefault(str(k), []).append(f)

    @property
    def meetings(self) -> list[str]:
        """Meeting ids in stored order."""
        if self.indexed:
            return list(self.by_meeting)
        self._all()
        return list(self._rows)

    def _all(self) -> pd.DataFrame:
        if self._whole is None:
            whole = read_table(self.path, columns=self.columns)
            if "meeting_id" not in whole.columns:
                raise PipelineError(self.path, "table lacks column 'meeting_id'")
            codes, uniq = pd.factorize(whole["meeting_id"].astype(str), sort=False)
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(len(uniq) + 1))
            self._rows = {str(m): order[bounds[i]:bounds[i + 1]] for i, m in enumerate(uniq)}
            self._whole = whole
        return self._whole

    def get(self, meeting_id: str) -> pd.DataFrame:
        """The meeting's rows in stored order (an empty frame with the table's columns if none)."""
        names = self.columns if self.columns is not None else self.schema.names
        if self.indexed:
            files = self.by_meeting.get(str(meeting_id), [])
            if not files:
                return self.schema.empty_table().select(names).to_pandas()
            try:
                tables = [pq.read_table(f, columns=[c for c in names if c in pq.read_schema(f).names]) for f in files]
                t = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
            except (pa.ArrowException, OSError) as exc:
                raise PipelineError(self.path, f"cannot read parquet ({exc})") from exc
            return t.to_pandas()
        whole = self._all()
        rows = self._rows.get(str(meeting_id), np.zeros(0, dtype=int))
        return whole.iloc[rows].reset_index(drop=True)


def select_meetings(df: pd.DataFrame, meetings: Sequence[str], source: str | Path, missing: str) -> pd.DataFrame:
    """The rows of ``df`` whose ``meeting_id`` is one of ``meetings``. A meeting with no row is a
    one-line error naming ``source``: ``missing.format(repr(meeting_id))``."""
    ids = df["meeting_id"].astype(str)
    absent = sorted(set(meetings) - set(ids))
    if absent:
        raise PipelineError(source, missing.format(repr(absent[0])))
    return df[ids.isin(meetings).to_numpy()].reset_index(drop=True)


def count_rows(path: str | Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in part_files(path))


def schema_metadata(path: str | Path) -> dict[str, str]:
    """Key/value metadata of the first file (e.g. the embedding backend)."""
    md = pq.read_schema(part_files(path)[0]).metadata or {}
    return {k.decode(): v.decode() for k, v in md.items() if k != b"pandas"}
