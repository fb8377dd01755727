"""Adding one meeting to a processed corpus: topics + classify + report, baseline code vs this code.

Takes a processed state (a ``benchmarks/pipeline.py --workdir`` run dir such as ``W/x1``: ``raw/``,
``data/``, ``models/``, ``cache/``; never modified, it is copied), and for each code version
(``--baseline REV``: a ``git archive`` of that commit on ``PYTHONPATH``; then this checkout):

1. copies the state into the work dir, removes the meeting an earlier incremental step added
   (``raw/added-*.json``: the saved model was fitted without it) and re-runs every stage once
   (untimed: a code version whose topics code differs from the one that fitted the saved model
   refits here, on the same meetings, and the classify cache fills for its model, as ``dvc
   repro`` would after a code change);
2. adds one meeting under a new file name (the meeting of the corpus whose speech is closest to
   the mean, as ``benchmarks/pipeline.py`` does; ``--added-file`` for another) and runs ingest,
   parse and embed (untimed: that meeting's own cost);
3. times topics, classify and report (the stage commands of ``dvc.yaml``, one subprocess each,
   as ``benchmarks/pipeline.py`` runs them): wall, CPU seconds of the process tree, peak RSS,
   and the 1-minute load average at the start of each stage.

The versions alternate ``--repeat`` times on fresh copies of their prepared state, so both see
the same load; the printed table and ``--out`` JSON hold every run, the medians and the
this/baseline ratios. After the timed runs the outputs of the two versions are compared (topics
of every sentence, classify's tables, the label queue, report.md).

    .venv/bin/python benchmarks/incremental.py --state W/x1 --baseline main --repeat 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import (  # noqa: E402  (path set above)
    CLI,
    DEFAULT_CORPUS,
    _uptime,
    run_stage,
    stage_commands,
    write_typical_meeting,
)

TIMED = ("topics", "classify", "report")
OWN = ("ingest", "parse", "embed")


def snapshot(rev: str, dest: Path) -> Path:
    """``git archive`` of ``rev`` (its ``pipeline/`` is what runs: PYTHONPATH)."""
    dest.mkdir(parents=True, exist_ok=True)
    arch = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arch, check=True)
    return dest


def _env(code: Path | None, work: Path) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1",
           "POLICY_TOPICS_CACHE_DIR": str(work / "cache")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if code is not None:
        env["PYTHONPATH"] = f"{code}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def _argv(name: str, work: Path, code: Path | None) -> list[str]:
    argv = dict(stage_commands(work, work / "raw", (name,)))[name]
    if code is not None:  # the snapshot on PYTHONPATH; -P: not the checkout in the working directory
        argv = [sys.executable, "-P", "-m", "pipeline.cli", *argv[len(CLI):]]
    return argv


def run_stages(names, work: Path, code: Path | None, log_dir: Path, tag: str) -> dict:
    out = {}
    for name in names:
        res = run_stage(f"{tag}-{name}", _argv(name, work, code), _env(code, work), log_dir)
        if res["returncode"] != 0:
            raise SystemExit(f"{tag}: stage {name} failed; log {log_dir / f'{tag}-{name}.log'}")
        out[name] = res
    return out


def _secs(res: dict) -> str:
    return ", ".join(f"{k} {v['seconds']:.0f}s" for k, v in res.items())


def prepare(state: Path, dest: Path, code: Path | None, added: Path, log_dir: Path, tag: str) -> Path:
    """State settled for this code version, with the new meeting ingested, parsed and embedded."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(state, dest, symlinks=True)
    for f in (dest / "raw").glob("added-*.json"):  # an earlier incremental step's meeting: the saved model
        f.unlink()                                  # was fitted without it, a refit here fits without it too
    settle = run_stages((*OWN, *TIMED), dest, code, log_dir, f"{tag}-settle")
    print(f"  {tag}: settled ({_secs(settle)})", flush=True)
    shutil.copy2(added, dest / "raw" / added.name)
    own = run_stages(OWN, dest, code, log_dir, f"{tag}-own")
    print(f"  {tag}: new meeting ingested/parsed/embedded "
          f"({_secs(own)})", flush=True)
    return dest


def timed_run(prepared: Path, run_dir: Path, code: Path | None, log_dir: Path, tag: str) -> dict:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    shutil.copytree(prepared, run_dir, symlinks=True)
    res = run_stages(TIMED, run_dir, code, log_dir, tag)
    total = {"seconds": round(sum(r["seconds"] for r in res.values()), 2),
             "cpu_seconds": round(sum(r["cpu_seconds"] for r in res.values()), 1)}
    tm = run_dir / "metrics" / "topics.json"
    model = json.loads(tm.read_text(encoding="utf-8")).get("model", {}) if tm.exists() else {}
    return {"stages": res, "total": total, "topics_mode": model.get("mode"), "reason": model.get("reason")}


def compare(a: Path, b: Path) -> dict:
    """Outputs of two runs on the same inputs: equal topics, classify tables, queue, report.md."""
    import numpy as np
    import pandas as pd

    from pipeline.dataset import read_table

    out: dict = {}
    ta = read_table(a / "data/interim/sentence_topics.parquet").set_index("sentence_id").sort_index()
    tb = read_table(b / "data/interim/sentence_topics.parquet").set_index("sentence_id").sort_index()
    out["sentence_topics_same_ids"] = ta.index.equals(tb.index)
    if out["sentence_topics_same_ids"]:
        out["topic_id_equal_share"] = float((ta["topic_id"] == tb["topic_id"]).mean())
        out["topic_prob_max_abs_diff"] = float(np.abs(ta["topic_prob"] - tb["topic_prob"]).max())
    for name in ("sentences", "utterances"):
        pa = read_table(a / f"data/processed/{name}.parquet")
        pb = read_table(b / f"data/processed/{name}.parquet")
        key = "sentence_id" if name == "sentences" else "utterance_id"
        pa, pb = pa.set_index(key).sort_index(), pb.set_index(key).sort_index()
        cols = [c for c in pa.columns if c in pb.columns and c not in ("topic_prob",)]
        same = pa.index.equals(pb.index) and all(
            pa[c].astype(str).equals(pb[c].astype(str)) for c in cols)
        out[f"processed_{name}_equal"] = bool(same)
    for f in ("data/processed/label_queue.csv", "reports/report.md"):
        out[f"{Path(f).name}_equal"] = (a / f).read_bytes() == (b / f).read_bytes()
    for name in ("topic_info", "topics_per_class", "topics_over_time"):
        pa = pd.read_parquet(a / f"data/processed/{name}.parquet")
        pb = pd.read_parquet(b / f"data/processed/{name}.parquet")
        out[f"{name}_equal"] = bool(pa.astype(str).reset_index(drop=True).equals(pb.astype(str).reset_index(drop=True)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", type=Path, required=True, help="processed run dir (raw/, data/, models/, cache/)")
    ap.add_argument("--baseline", default="main", help="git revision timed as the baseline ('' = none)")
    ap.add_argument("--this", default="", help="git revision (or a directory with pipeline/) timed as 'this' "
                                               "(default: the working tree)")
    ap.add_argument("--reuse", action="store_true", help="reuse prepared-* states left in --workdir by a run "
                                                         "with the same code")
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per code version (alternating)")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--added-file", type=Path, help="the meeting file to add (default: a typical meeting)")
    ap.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir, removed)")
    ap.add_argument("--out", type=Path, help="JSON with every run, the medians and the ratios")
    args = ap.parse_args(argv)

    w = args.workdir or Path(tempfile.mkdtemp(prefix="policy-topics-incr-"))
    w.mkdir(parents=True, exist_ok=True)
    logs = w / "logs"
    if args.added_file:
        added = w / f"added-bench-{args.added_file.name}"
        shutil.copy2(args.added_file, added)
    else:
        tmp_raw = w / "pick"
        tmp_raw.mkdir(exist_ok=True)
        for f in (args.state / "raw").glob("*.json"):
            (tmp_raw / f.name).symlink_to(f.resolve())
        picked = write_typical_meeting(args.corpus, tmp_raw)
        added = w / f"added-bench-{picked.name.removeprefix('added-')}"
        shutil.move(picked, added)
        shutil.rmtree(tmp_raw)
    versions: dict[str, Path | None] = {}
    if args.baseline:
        versions["baseline"] = snapshot(args.baseline, w / "code-baseline")
    versions["this"] = (Path(args.this) if args.this and Path(args.this).is_dir()
                        else snapshot(args.this, w / "code-this") if args.this else None)
    info = {"state": str(args.state), "added_file": added.name, "baseline": args.baseline,
            "uptime_start": _uptime(), "cpus": os.cpu_count()}
    print(f"adding {added.name} to {args.state}", flush=True)
    prepared = {k: w / f"prepared-{k}" if args.reuse and (w / f"prepared-{k}").is_dir()
                else prepare(args.state, w / f"prepared-{k}", code, added, logs, k) for k, code in versions.items()}
    runs: dict[str, list] = {k: [] for k in versions}
    for i in range(args.repeat):
        for k, code in versions.items():
            r = timed_run(prepared[k], w / f"run-{k}", code, logs, f"{k}-{i}")
            runs[k].append(r)
            s = r["stages"]
            print(f"  {k:8s} #{i}: " + "  ".join(f"{n} {s[n]['seconds']:5.1f}s ({s[n]['cpu_seconds']:.1f} cpu, "
                                                 f"load {s[n]['load_avg_1min_start']:.1f})" for n in TIMED)
                  + f"  = {r['total']['seconds']:.1f}s / {r['total']['cpu_seconds']:.1f} cpu  [{r['topics_mode']}]",
                  flush=True)
    med = {k: {n: {m: round(statistics.median(r["stages"][n][m] for r in v), 2) for m in ("seconds", "cpu_seconds")}
               for n in TIMED} for k, v in runs.items()}
    for k in med:
        med[k]["total"] = {m: round(statistics.median(r["total"][m] for r in runs[k]), 2)
                           for m in ("seconds", "cpu_seconds")}
    result = {"info": info, "runs": runs, "median": med}
    if "baseline" in med:
        result["ratio_this_over_baseline"] = {
            n: {m: round(med["this"][n][m] / max(med["baseline"][n][m], 1e-9), 3) for m in ("seconds", "cpu_seconds")}
            for n in (*TIMED, "total")}
        result["outputs_compared"] = compare(w / "run-baseline", w / "run-this")
    info["uptime_end"] = _uptime()
    print(json.dumps({k: result[k] for k in ("median", "ratio_this_over_baseline", "outputs_compared")
                      if k in result}, indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    if not args.workdir:
        shutil.rmtree(w, ignore_errors=True)
    return 0


if __name__ == "__main__":
    started = time.time()
    sys.exit(main())
