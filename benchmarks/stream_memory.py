"""Peak memory of topics (assign), classify and report on N and 3N meetings: does it grow with the corpus?

Takes a processed state (default: this checkout after ``make run``: ``data/interim/`` sentences,
embeddings, utterances, meetings; ``data/processed/entities.parquet``; ``models/classifier.joblib``;
never modified) and builds, under ``--workdir``, corpora of ``--sizes`` replicated meetings (every meeting
of the state copied under new ids ``{meeting_id}~r{j:03d}``, a week apart, as parse/embed would
write them: one Parquet file per meeting). For each size K:

1. the topic model is fitted once on the first replica (shared by every size, untimed);
2. the first K-1 replicas run topics (assign: the fit's drift limit on added meetings is lifted in
   the work dir's params.yaml), classify (fills its per-meeting cache) and report, untimed;
3. the K-th replica is added and topics, classify and report run again (``dvc.yaml``'s commands, one
   subprocess each, at ``nice -n 19`` if ``--nice``): wall, CPU, peak RSS of the stage process
   (``wait4`` ru_maxrss, the largest single process) and of its process tree (RSS summed, sampled
   every 0.1 s).

Prints one row per (size, stage) and the 3N/N ratios, with the 1-minute load average at each start.
``--src DIR`` runs the stages with another checkout's code (``git archive REV | tar -x -C DIR``) on the
same state: the baseline. The two must not share a work dir (older code writes single files).

    .venv/bin/python benchmarks/stream_memory.py --sizes 10,30 --workdir /tmp/part-mem
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

STAGES = ("topics", "classify", "report")
#: string columns holding ids that start with the meeting id
ID_COLUMNS = ("meeting_id", "utterance_id", "sentence_id")


def _bench_pipeline():
    spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "benchmarks" / "pipeline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _replica(df, mid_map: dict[str, str], date_shift: dict[str, int] | None = None):
    """``df`` with every id column's meeting prefix mapped (and meeting_date shifted by days)."""
    import pandas as pd

    out = df.copy()
    for c in ID_COLUMNS:
        if c in out.columns:
            col = out[c].astype(str)
            for old, new in mid_map.items():
                col = col.where(~col.str.startswith(old), new + col.str.slice(len(old)))
            out[c] = col
    if date_shift and "meeting_date" in out.columns:
        days = next(iter(date_shift.values()))
        d = pd.to_datetime(out["meeting_date"], errors="coerce") + pd.Timedelta(days=days)
        out["meeting_date"] = d.dt.strftime("%Y-%m-%d").where(d.notna(), None)
    return out


def build_corpus(state: Path, work: Path, k: int) -> None:
    """``work/data`` holding ``k`` replicas of the state's meetings (datasets one file per meeting)."""
    import pandas as pd
    import pyarrow as pa

    from pipeline.dataset import DatasetWriter, iter_parts, read_table
    from pipeline.embed import embeddings_table

    interim, processed = work / "data/interim", work / "data/processed"
    for d in (interim / "sentences.parquet", interim / "embeddings.parquet", processed / "entities.parquet"):
        shutil.rmtree(d, ignore_errors=True)
    interim.mkdir(parents=True, exist_ok=True)
    processed.mkdir(parents=True, exist_ok=True)
    meetings = read_table(state / "data/interim/meetings.parquet")
    mids = meetings["meeting_id"].astype(str).tolist()
    maps = [{m: f"{m}~r{j:03d}" for m in mids} for j in range(k)]
    utt = read_table(state / "data/interim/utterances.parquet")
    pd.concat([_replica(utt, mp, {0: 7 * j}) for j, mp in enumerate(maps)], ignore_index=True).to_parquet(
        interim / "utterances.parquet")
    pd.concat([_replica(meetings, mp, {0: 7 * j}) for j, mp in enumerate(maps)], ignore_index=True).to_parquet(
        interim / "meetings.parquet")
    for name, base in (("sentences", interim), ("entities", processed)):
        src = state / ("data/interim" if name == "sentences" else "data/processed") / f"{name}.parquet"
        with DatasetWriter(base / f"{name}.parquet") as w:
            for mp in maps:
                for part in iter_parts(src):
                    w.write(_replica(part, mp))
    src = state / "data/interim/embeddings.parquet"
    with DatasetWriter(interim / "embeddings.parquet", metadata={"backend": _backend(src)}) as w:
        for mp in maps:
            for part in iter_parts(src):
                part = _replica(part, mp)
                vecs = pa.array(part["vector"].tolist()).to_numpy(zero_copy_only=False)
                import numpy as np

                w.write(embeddings_table(part["sentence_id"], np.stack(vecs), str(part["meeting_id"].iloc[0])))


def _backend(path: Path) -> str:
    from pipeline.dataset import schema_metadata

    return schema_metadata(path).get("backend", "use_multilingual")


def prepare_workdir(state: Path, work: Path) -> None:
    import yaml

    work.mkdir(parents=True, exist_ok=True)
    for name in ("configs",):
        if not (work / name).exists():
            (work / name).symlink_to(ROOT / name)
    (work / "data").mkdir(exist_ok=True)
    if not (work / "data/labels").exists():
        (work / "data/labels").symlink_to(ROOT / "data/labels")
    (work / "models").mkdir(exist_ok=True)
    shutil.copy(state / "models/classifier.joblib", work / "models/classifier.joblib")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params.setdefault("topics", {}).setdefault("incremental", {})["max_new_meeting_share"] = 1e9  # assign, never refit
    (work / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")


def stage_argv() -> dict[str, list[str]]:
    import shlex

    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {s: shlex.split(stages[s]["cmd"])[1:] for s in STAGES}


def run_stage(name: str, argv: list[str], work: Path, src: Path | None, nice: bool, peak_cls) -> dict:
    env = {**os.environ, "POLICY_TOPICS_ROOT": str(work), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(src) if src else str(ROOT)
    cmd = [sys.executable, "-m", "pipeline.cli", "-q", *argv]
    if nice:
        cmd = ["nice", "-n", "19", *cmd]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with peak_cls(p.pid, interval=0.1) as peak:
        _, status, ru = os.wait4(p.pid, 0)
    err = p.stderr.read()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise RuntimeError(f"{name} failed ({p.returncode}): {err[-2000:]}")
    return {"seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 2),
            "max_rss_mb": round(ru.ru_maxrss / 1024, 1), "tree_rss_mb": round(peak.peak_rss / 2**20, 1),
            "load": round(load, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", type=Path, default=ROOT, help="processed state (a project dir after make run)")
    ap.add_argument("--sizes", default="10,30", help="replicas per corpus, comma-separated (N,3N)")
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--src", type=Path, default=None, help="code to run the stages with (default: this checkout)")
    ap.add_argument("--nice", action="store_true", help="run every stage at nice -n 19")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    peak_cls = _bench_pipeline().PeakMemory
    cmds = stage_argv()
    base = args.workdir / "fit"
    if not (base / "models/topics").exists():  # the one fit every size starts from
        prepare_workdir(args.state, base)
        build_corpus(args.state, base, 1)
        run_stage("topics", cmds["topics"], base, args.src, args.nice, peak_cls)
    rows = []
    for k in sizes:
        work = args.workdir / f"k{k}"
        shutil.rmtree(work, ignore_errors=True)
        prepare_workdir(args.state, work)
        shutil.copytree(base / "models/topics", work / "models/topics")
        build_corpus(args.state, work, k - 1)
        for s in STAGES:  # the processed corpus: untimed
            run_stage(s, cmds[s], work, args.src, args.nice, peak_cls)
        build_corpus(args.state, work, k)  # + one meeting
        for s in STAGES:
            r = {"meetings": k, "stage": s, **run_stage(s, cmds[s], work, args.src, args.nice, peak_cls)}
            rows.append(r)
            print(json.dumps(r), flush=True)
        shutil.rmtree(work / ".cache", ignore_errors=True)
    print(f"\n{'stage':9s} " + " ".join(f"{'K=' + str(k):>22s}" for k in sizes) + "   ratio (last/first)")
    for s in STAGES:
        rs = [r for r in rows if r["stage"] == s]
        cells = " ".join(f"{r['max_rss_mb']:8.1f} / {r['tree_rss_mb']:7.1f} MB" for r in rs)
        ratio = rs[-1]["max_rss_mb"] / rs[0]["max_rss_mb"]
        tree = rs[-1]["tree_rss_mb"] / max(rs[0]["tree_rss_mb"], 1e-9)
        print(f"{s:9s} {cells}   {ratio:.2f} / {tree:.2f}")
    print("(process max RSS / process-tree RSS; loads at stage start: "
          + ", ".join(f"{r['stage']}@{r['meetings']}={r['load']}" for r in rows) + ")")
    if args.out:
        args.out.write_text(json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                                        "sizes": sizes, "src": str(args.src or "this checkout"), "rows": rows},
                                       indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
