"""``pipeline.dataset.read_table`` against the two readers it replaced, on a many-part dataset.

Builds a dataset of ``--parts`` files (default 67, the parts of full Tokyo) by copying the parts of
``--source`` (a stage output such as ``data/interim/sentences.parquet`` after ``make run``) under new
meeting ids, then times, interleaved ``--repeat`` times in this process:

- ``read_table``: this checkout (file by file, one concatenation);
- ``read_parts``: the removed ``pipeline.io.read_parts`` (file by file, copied here as it was);
- ``fragment_scan``: the old ``read_table`` (pyarrow dataset fragments cast to the unified schema).

Prints the medians and ratios and checks the three give the same table.

    .venv/bin/python benchmarks/dataset_read.py --source data/interim/sentences.parquet --parts 67
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def read_parts(path, columns=None):
    """``pipeline.io.read_parts`` as it was before it was folded into ``dataset.read_table``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    files = sorted(f for f in p.glob("*.parquet") if not f.name.startswith((".", "_"))) if p.is_dir() else [p]
    tables = [pq.read_table(f, columns=columns) for f in files]
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def fragment_scan(path, columns=None):
    """The old ``dataset.read_table``: fragment by fragment, cast to the unified schema."""
    import pyarrow as pa

    from pipeline.dataset import dataset

    d = dataset(path)
    return pa.concat_tables([frag.to_table(schema=d.schema, columns=columns) for frag in d.get_fragments()])


def build(source: Path, parts: int, out: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.dataset import DatasetWriter, part_files

    srcs = [pq.read_table(f) for f in part_files(source)]
    with DatasetWriter(out) as w:
        for i in range(parts):
            t = srcs[i % len(srcs)]
            if "meeting_id" in t.column_names:
                j = t.column_names.index("meeting_id")
                t = t.set_column(j, "meeting_id", pa.array([f"r{i:03d}"] * t.num_rows, type=pa.string()))
            w.write(t, partition=f"r{i:03d}")
    return out


def main(argv: list[str] | None = None) -> int:
    from pipeline.dataset import read_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=ROOT / "data/interim/sentences.parquet")
    ap.add_argument("--parts", type=int, default=67)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--columns", default="", help="comma-separated projection (default: every column)")
    args = ap.parse_args(argv)
    cols = [c for c in args.columns.split(",") if c] or None
    with tempfile.TemporaryDirectory(prefix="part-dataset-read-") as tmp:
        path = build(args.source, args.parts, Path(tmp) / "t.parquet")
        readers = {"read_table": lambda: read_table(path, columns=cols, arrow=True),
                   "read_parts": lambda: read_parts(path, columns=cols),
                   "fragment_scan": lambda: fragment_scan(path, columns=cols)}
        tables = {k: f() for k, f in readers.items()}  # warm the page cache, check equality
        same = all(t.equals(tables["read_table"]) for t in tables.values())
        times: dict[str, list[float]] = {k: [] for k in readers}
        for _ in range(args.repeat):
            for k, f in readers.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        n = tables["read_table"].num_rows
        print(f"{args.parts} parts, {n:,} rows, columns={cols or 'all'}; median of {args.repeat} (s):")
        for k, v in med.items():
            print(f"  {k:14s} {v:.4f}  ({v / med['read_table']:.2f}x read_table)")
        print(f"same table from all three readers: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
