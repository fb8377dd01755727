"""Ingest benchmark: throughput per format, cold vs cached, peak memory.

Reads the sample (text, CP932 copy, PDF built from it), the Tokyo Assembly
corpus (``../shared/corpora/tokyo-assembly``) and the real minutes of ``../shared/corpora/external`` with a cold and then a warm
partition cache in a temporary directory; prints a table and writes
``metrics/bench_ingest.json`` when ``--out`` is given.

    .venv/bin/python benchmarks/ingest.py [--out metrics/bench_ingest.json]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pipeline.ingest import ingest_paths  # noqa: E402

SAMPLE = ROOT / "data" / "raw" / "mic-chiiki-ict-06_2024-04-24.txt"
TOKYO = ROOT.parent / "shared" / "corpora" / "tokyo-assembly"
EXTERNAL = ROOT.parent / "shared" / "corpora" / "external"


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(name: str, paths, cache_dir: Path) -> dict:
    out = {"input": name}
    for phase in ("cold", "cached"):
        t0 = time.perf_counter()
        res = ingest_paths(paths, cache=True, cache_dir=cache_dir)
        sec = time.perf_counter() - t0
        out[f"{phase}_seconds"] = round(sec, 3)
    tot = res.report["totals"]
    out.update(files=res.report["files"], meetings=res.report["meetings"], speech_turns=res.report["speech_turns"],
               chars_in=tot["chars_in"], chars_per_second_cold=int(tot["chars_in"] / max(out["cold_seconds"], 1e-9)),
               accounting_ok=res.report["accounting_ok"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cp = tmp / "cp932"
        cp.mkdir()
        (cp / SAMPLE.name).write_bytes(SAMPLE.read_text(encoding="utf-8").encode("cp932"))
        pdf_dir = tmp / "pdf"
        pdf_dir.mkdir()
        from test_ingest_formats import build_pdf

        build_pdf(SAMPLE.read_text(encoding="utf-8"), pdf_dir / (SAMPLE.stem + ".pdf"))
        rows.append(run("sample text (utf-8)", [SAMPLE], tmp / "c1"))
        rows.append(run("sample text (cp932)", [cp], tmp / "c2"))
        rows.append(run("sample PDF (30 pages)", [pdf_dir], tmp / "c3"))
        if TOKYO.is_dir():
            rows.append(run("Tokyo Assembly JSON (3 files, 66 meetings)", [TOKYO], tmp / "c4"))
        if EXTERNAL.is_dir():   # every source folder (SOURCES.md itself is not minutes)
            folders = sorted(d for d in EXTERNAL.iterdir() if d.is_dir())
            rows.append(run(f"external real minutes ({len(folders)} systems)", folders, tmp / "c5"))
    print(f"{'input':45} {'cold s':>8} {'cached s':>9} {'chars':>10} {'chars/s':>10} {'turns':>6}")
    for r in rows:
        print(f"{r['input']:45} {r['cold_seconds']:8.2f} {r['cached_seconds']:9.2f} {r['chars_in']:10d} "
              f"{r['chars_per_second_cold']:10d} {r['speech_turns']:6d}")
    print(f"peak RSS {_peak_mb():.0f} MB")
    if args.out:
        from pipeline.io import write_json

        write_json({"runs": rows, "peak_rss_mb": round(_peak_mb())}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
