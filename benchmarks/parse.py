"""Parse-stage benchmark: the stage vs a plain ``spacy.load("ja_ginza")`` + ``nlp.pipe`` baseline.

For each corpus -- the sample minutes, and a Tokyo Assembly subset: the first
``--subset-chars`` (default 200,000) speech characters of the *committee* files in
``../shared/corpora/tokyo-assembly`` in name order (committee-disaster-prevention.json
first; plenary-2020.json is held out and never read here) -- it runs, each in a fresh
subprocess so model loads and memory do not leak between cases:

* ``baseline``   -- plain GiNZA: ``spacy.load("ja_ginza")`` then ``nlp.pipe(texts)`` over the
                    speech utterance texts (defaults: all components, batch 1000, one process;
                    utterances over SudachiPy's byte limit are skipped: plain GiNZA cannot parse them);
* ``stage``      -- ``pipeline.parse.parse_utterances`` with ``ner: gated`` (tok2vec + ner only on
                    windows around trigger tokens), other params from params.yaml, cache off;
* ``stage_full`` -- the same with ``ner: full`` (tok2vec + ner on every sentence): the reference
                    the gated entities are compared with (recall / precision, overall and per label);
* ``tokens_only``-- the same with ``ner: off`` (what work that needs only tokens pays).

Figures: CPU seconds of the timed part (this process + its NER worker processes, from
``resource.getrusage``; model load excluded and reported separately) and
``chars_per_cpu_second`` -- the figure that does not depend on how busy the machine is or how
many cores a case uses; wall-clock chars/s and sentences/s; peak memory of the process tree,
sampled every 100 ms: summed RSS (counts pages shared by forked NER workers once per process:
an upper bound) and summed PSS (shared pages split). ``--tokyo-full`` adds one run of the
stage over the whole Tokyo directory (a speed figure only).

    .venv/bin/python benchmarks/parse.py                       # sample + Tokyo subset
    .venv/bin/python benchmarks/parse.py --n-process 1 --out /tmp/bench_parse.json
    .venv/bin/python benchmarks/parse.py --corpora sample --cases stage,stage_full,baseline
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "data" / "raw" / "mic-chiiki-ict-06_2024-04-24.txt"
TOKYO = ROOT.parent / "shared" / "corpora" / "tokyo-assembly"
#: the Tokyo subset is read from these files only (plenary-2020.json is held out)
TOKYO_FILES = "committee-*.json"
CASES = ("baseline", "stage", "stage_full", "tokens_only")
NER_MODE = {"stage": "gated", "stage_full": "full", "tokens_only": "off"}


# --------------------------------------------------------------------------- worker (one case)

def _load_corpus(corpus: str, limit_chars: int):
    import logging

    logging.disable(logging.WARNING)
    from pipeline import io as pio
    from pipeline.ingest import ingest_paths

    pio.QUIET = True
    paths = [SAMPLE] if corpus == "sample" else sorted(TOKYO.glob(TOKYO_FILES)) if limit_chars else [TOKYO]
    res = ingest_paths(paths, cache=False)
    utts, meets = res.utterances, res.meetings
    if limit_chars:
        speech = utts["kind"] == "speech"
        cum = utts["text"].where(speech, "").str.len().cumsum()
        keep_ids = set(utts.loc[speech & (cum.shift(fill_value=0) < limit_chars), "utterance_id"])
        utts = utts[utts["utterance_id"].isin(keep_ids)].reset_index(drop=True)
        meets = meets[meets["meeting_id"].isin(set(utts["meeting_id"]))].reset_index(drop=True)
    return utts, meets


def worker(case: str, corpus: str, limit_chars: int, n_process: int, batch_size: int | None,
           entities_out: str | None = None) -> dict:
    from pipeline import parse

    utts, meets = _load_corpus(corpus, limit_chars)
    speech = utts[utts["kind"] == "speech"]
    out: dict = {"case": case, "corpus": corpus, "subset_chars": limit_chars or None,
                 "utterances": int(len(speech)), "meetings": int(speech["meeting_id"].nunique())}
    def cpu() -> float:  # this process + its finished children (NER workers are joined by nlp.pipe)
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    t0 = time.perf_counter()
    if case == "baseline":
        import spacy

        nlp = spacy.load("ja_ginza")
        out["load_seconds"] = round(time.perf_counter() - t0, 2)
        texts = [t for t in speech["text"] if len(t.encode()) <= parse.SUDACHI_MAX_BYTES]
        out["skipped_over_limit"] = int(len(speech) - len(texts))
        t1, c1 = time.perf_counter(), cpu()
        n_sent = 0
        for doc in nlp.pipe(texts):
            n_sent += sum(1 for _ in doc.sents)
        sec = time.perf_counter() - t1
        n_chars = sum(map(len, texts))
        out.update(components=list(nlp.pipe_names), n_process=1)
    else:
        params = {**parse.resolve_params(), "n_process": n_process}
        params["ner"] = NER_MODE[case]
        if batch_size:
            params["batch_size"] = batch_size
        nlp = parse.load_nlp(params["model"], ner=params["ner"] != "off")
        out["components"] = list(nlp.pipe_names) if params["ner"] != "off" else ["tokenizer"]
        out["ner"] = params["ner"]
        out["load_seconds"] = round(time.perf_counter() - t0, 2)
        t1, c1 = time.perf_counter(), cpu()
        res = parse.parse_utterances(utts, meets, params, cache=False)
        sec = time.perf_counter() - t1
        n_sent = len(res.sentences)
        n_chars = int(speech["text"].str.len().sum())
        out.update(n_process=n_process, tokens=int(len(res.tokens)), entities=int(len(res.entities)))
    c_sec = cpu() - c1
    if entities_out and case != "baseline":
        res.entities.to_parquet(entities_out)
    out.update(chars=int(n_chars), sentences=int(n_sent), seconds=round(sec, 2), cpu_seconds=round(c_sec, 2),
               chars_per_cpu_second=round(n_chars / c_sec, 1),
               chars_per_second=round(n_chars / sec, 1), sentences_per_second=round(n_sent / sec, 2),
               worker_peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return out


# --------------------------------------------------------------------------- parent

def _tree_memory(proc) -> tuple[int, int]:
    """(summed RSS, summed PSS) of a process and its children. Forked NER workers share the
    model's pages with their parent: RSS counts them once per process, PSS splits them."""
    import psutil

    rss = pss = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except psutil.Error:
            pass
    return rss, pss


def run_case(case: str, corpus: str, limit: int, n_process: int, batch_size: int | None,
             entities_out: str | None = None) -> dict:
    import psutil

    cmd = [sys.executable, __file__, "--worker", case, "--corpus", corpus, "--limit-chars", str(limit),
           "--n-process", str(n_process)] + (["--batch-size", str(batch_size)] if batch_size else [])
    if entities_out:
        cmd += ["--entities-out", entities_out]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ps = psutil.Process(proc.pid)
    peak = [0, 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss, pss = _tree_memory(ps)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            done.wait(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stdout, stderr = proc.communicate()
    done.set()
    th.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark case {case}/{corpus} failed:\n{stderr[-3000:]}")
    res = json.loads(stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    res["cpu_seconds_total"] = round(cpu, 1)  # whole subprocess tree, including imports, ingest, model load
    res["peak_rss_mib"] = round(peak[0] / 2**20, 1)
    res["peak_pss_mib"] = round(peak[1] / 2**20, 1)
    return res


def _print(rows: list[dict]) -> None:
    hdr = (f"{'corpus':<8} {'case':<12} {'ner':>6} {'subset':>8} {'n_proc':>6} {'chars':>9} {'sents':>7} {'sec':>8} "
           f"{'chars/s':>9} {'sents/s':>8} {'cpu_s':>7} {'chars/cpu_s':>11} {'RSS MiB':>8} {'PSS MiB':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['corpus']:<8} {r['case']:<12} {r.get('ner', 'all'):>6} {str(r['subset_chars'] or 'all'):>8} {r['n_process']:>6} "
              f"{r['chars']:>9} {r['sentences']:>7} {r['seconds']:>8.1f} {r['chars_per_second']:>9.0f} "
              f"{r['sentences_per_second']:>8.1f} {r['cpu_seconds']:>7.1f} {r['chars_per_cpu_second']:>11.0f} "
              f"{r['peak_rss_mib']:>8.0f} "
              f"{r['peak_pss_mib']:>8.0f}")


def _summary(rows: list[dict], corpora: list[str], subset: int, ents: dict) -> dict:
    """Per corpus: stage / baseline ratios (CPU and wall) and the gated entities' agreement with full NER."""
    import pandas as pd

    from pipeline.parse.gate import entity_agreement

    summary = {}
    for corpus in corpora:
        sub = {r["case"]: r for r in rows if r["corpus"] == corpus and (r["subset_chars"] or 0) ==
               (0 if corpus == "sample" else subset)}
        s: dict = {}
        for case in ("stage", "stage_full", "tokens_only"):
            if "baseline" in sub and case in sub:
                s[f"{case}_vs_baseline_chars_per_cpu_second"] = round(
                    sub[case]["chars_per_cpu_second"] / sub["baseline"]["chars_per_cpu_second"], 2)
                s[f"{case}_vs_baseline_chars_per_second"] = round(
                    sub[case]["chars_per_second"] / sub["baseline"]["chars_per_second"], 2)
        if ("stage", corpus) in ents and ("stage_full", corpus) in ents and sub["stage"]["ner"] != "full":
            s["entities_vs_full_ner"] = entity_agreement(pd.read_parquet(ents[("stage_full", corpus)]),
                                                         pd.read_parquet(ents[("stage", corpus)]))
            s["entities_vs_full_ner_by_coarse_label"] = entity_agreement(
                pd.read_parquet(ents[("stage_full", corpus)]), pd.read_parquet(ents[("stage", corpus)]),
                by="coarse_label")["per_label"]
        summary[corpus] = s
    return summary


def _print_summary(summary: dict) -> None:
    for corpus, s in summary.items():
        ratios = ", ".join(f"{k.split('_vs_')[0]} {v}x" for k, v in s.items() if k.endswith("_per_cpu_second"))
        print(f"{corpus}: chars per CPU-second vs plain GiNZA: {ratios}")
        wall = ", ".join(f"{k.split('_vs_')[0]} {v}x" for k, v in s.items() if k.endswith("_chars_per_second"))
        print(f"{corpus}: wall chars/s vs plain GiNZA: {wall}")
        ag = s.get("entities_vs_full_ner")
        if ag:
            print(f"{corpus}: gated vs full NER: recall {ag['recall']}, precision {ag['precision']} "
                  f"({ag['n_candidate']} vs {ag['n_reference']} entities)")
            per = s["entities_vs_full_ner_by_coarse_label"]
            print("   recall by coarse label: " + ", ".join(f"{k} {v['recall']} (n={v['n']})" for k, v in per.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default="sample,tokyo", help="comma list: sample, tokyo")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma list of {CASES}")
    ap.add_argument("--subset-chars", type=int, default=200_000, help="Tokyo subset for baseline/stage (0 = all)")
    ap.add_argument("--tokyo-full", action="store_true", help="also run the stage once on the whole Tokyo corpus")
    ap.add_argument("--n-process", type=int, default=None, help="NER processes for the stage (default: params.yaml)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--out", help="write the rows as JSON here")
    # worker mode (internal)
    ap.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--limit-chars", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--entities-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.corpus, args.limit_chars, args.n_process, args.batch_size,
                                args.entities_out), ensure_ascii=False))
        return 0
    if args.n_process is None:
        from pipeline.parse import resolve_params

        args.n_process = int(resolve_params()["n_process"])

    corpora = [c for c in args.corpora.split(",") if c]
    if "tokyo" in corpora and not TOKYO.is_dir():
        print(f"note: {TOKYO} not found, Tokyo skipped", file=sys.stderr)
        corpora.remove("tokyo")
    cases = [c for c in args.cases.split(",") if c]
    rows = []
    plan = [(corpus, case, 0 if corpus == "sample" else args.subset_chars) for corpus in corpora for case in cases]
    if args.tokyo_full and "tokyo" in corpora:
        plan.append(("tokyo", "stage", 0))
    ents: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for corpus, case, limit in plan:
            print(f"... {corpus} {case} ({'all' if not limit else f'first {limit:,} chars'})", file=sys.stderr,
                  flush=True)
            path = None
            if case != "baseline" and (limit or corpus == "sample"):
                path = ents[(case, corpus)] = f"{tmp}/{case}-{corpus}.parquet"
            rows.append(run_case(case, corpus, limit, args.n_process, args.batch_size, path))
        print()
        _print(rows)
        summary = _summary(rows, corpora, args.subset_chars, ents)
    print()
    _print_summary(summary)
    print(f"(machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end)")
    if args.out:
        from pipeline.io import write_json

        write_json({"rows": rows, "summary": summary, "cpu_count": os.cpu_count(),
                    "loadavg_end": os.getloadavg()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
