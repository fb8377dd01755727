"""Topics / embeddings benchmark: backend comparison on the sample, ablations, and the Tokyo corpus run.

    .venv/bin/python benchmarks/topics.py --part sample   # backends + ablations vs labelled themes (~5 min)
    .venv/bin/python benchmarks/topics.py --part tokyo    # 66 Tokyo Assembly meetings: wall time + peak RSS
    .venv/bin/python benchmarks/topics.py                 # both; JSON to metrics/bench_topics.json

Everything runs in a temp dir with its own partition cache; the project's data/,
models/ and .cache/ are never touched.

sample part
    The embedded sample minutes go through ingest -> parse -> embed (each backend) -> topics.
    For every configuration the topic model is fitted with 3 seeds (42, 1, 7; representation
    models off: they do not change assignments) and NMI(topic, theme) is reported on the
    substantive single-theme labelled sentences of the dev half, the test half (split by
    speaker turn, seed 42, as in metrics/topics.json) and all. Defaults were chosen on dev.
    A linear probe (logistic regression, 5-fold GroupKFold by turn, macro-F1 over themes with
    >= 5 single-theme sentences) measures how well each backend separates the themes directly.
tokyo part
    ../shared/corpora/tokyo-assembly/*.json (66 meetings, ~1.8M characters of speech) ->
    ingest -> parse (``ner: false``: sentences + terms only) -> embed (USE) -> topics with
    the project defaults (``fit_sample_size`` from params.yaml: fit on a per-meeting stratified
    sample, the rest assigned by ``transform``). Wall time and peak RSS per step (this process,
    sampled every 0.2 s), number of topics, outlier share, topics-over-time rows.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
SAMPLE = ROOT / "data/raw/mic-chiiki-ict-06_2024-04-24.txt"
SEEDS = (42, 1, 7)


@contextmanager
def measure(out: dict, name: str):
    """Wall seconds and peak RSS (MB) of this process while the block runs."""
    import psutil

    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        stop.set()
        th.join()
        out[name] = {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(peak[0] / 2**20, 1)}
        print(f"  {name}: {out[name]}", flush=True)


def _set(params: dict, key: str, value) -> dict:
    d = params
    keys = key.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value
    return params


def _probe(X: np.ndarray, texts, groups, labels) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GroupKFold

    from pipeline.topics.model import norm_text

    rows = [(i, labels[norm_text(t)][0]) for i, t in enumerate(texts)
            if norm_text(t) in labels and len(labels[norm_text(t)]) == 1 and labels[norm_text(t)][0] != "procedural"]
    idx = np.array([i for i, _ in rows])
    y = np.array([c for _, c in rows])
    keep = np.isin(y, [c for c in set(y) if (y == c).sum() >= 5])
    idx, y = idx[keep], y[keep]
    g = np.asarray(groups)[idx]
    pred = np.empty(len(y), dtype=object)
    for tr, te in GroupKFold(n_splits=5).split(idx, y, g):
        clf = LogisticRegression(max_iter=2000, C=2.0, class_weight="balanced").fit(X[idx[tr]], y[tr])
        pred[te] = clf.predict(X[idx[te]])
    return {"n": int(len(y)), "n_themes": int(len(set(y))), "macro_f1": round(float(f1_score(y, pred, average="macro")), 4),
            "accuracy": round(float((pred == y).mean()), 4)}


def part_sample(tmp: Path) -> dict:
    from pipeline.config import stage_params
    from pipeline.embed import embed_sentences
    from pipeline.ingest import ingest_paths
    from pipeline.parse import parse_utterances
    from pipeline.topics import fit_topics
    from pipeline.topics.evaluate import load_labels

    out: dict = {"timing": {}}
    labels = load_labels(ROOT / "data/labels")
    ing = ingest_paths([SAMPLE], cache_dir=tmp / "cache")
    sent = parse_utterances(ing.utterances, ing.meetings, cache_dir=tmp / "cache").sentences
    groups = sent["utterance_id"].astype(str).tolist()
    base = stage_params("topics")
    _set(base, "representation.models", [])

    def nmi_over_seeds(emb, params, backend):
        res = []
        for sd in SEEDS:
            p = _set(copy.deepcopy(params), "seed", sd)
            r = fit_topics(sent, emb, p, utterances=ing.utterances, labels=labels, backend=backend)
            n = r.metrics["nmi"]
            res.append((n["dev"]["nmi"], n["test"]["nmi"], n["all"]["nmi"], r.metrics["n_topics"],
                        r.metrics["outlier_share_before_reduction"]))
        a = np.array(res, dtype=float)
        return {"nmi_dev": round(a[:, 0].mean(), 4), "nmi_dev_sd": round(a[:, 0].std(), 4),
                "nmi_test": round(a[:, 1].mean(), 4), "nmi_all": round(a[:, 2].mean(), 4),
                "n_topics": round(a[:, 3].mean(), 1), "outliers_before_reduction": round(a[:, 4].mean(), 4)}

    embs = {}
    out["backends"] = {}
    for backend in ("use_multilingual", "ginza_vectors"):
        print(f"backend {backend}", flush=True)
        with measure(out["timing"], f"embed_{backend}"):
            ids, X = embed_sentences(sent, {"backend": backend}, cache_dir=tmp / "cache", cache=False)
        embs[backend] = (ids, X)
        out["backends"][backend] = {
            "dim": int(X.shape[1]), "embed_seconds": out["timing"][f"embed_{backend}"]["seconds"],
            "topics_default_params": nmi_over_seeds((ids, X), base, backend),
            "topics_no_term_features": nmi_over_seeds((ids, X), _set(copy.deepcopy(base), "term_features.weight", 0),
                                                      backend),
            "linear_probe": _probe(X, sent["text"].tolist(), groups, labels),
        }
        print(json.dumps(out["backends"][backend], ensure_ascii=False), flush=True)

    use = embs["use_multilingual"]
    ablations = {
        "default (hdbscan min_samples 3, context 0.5, term features 0.5, procedural topic)": {},
        "no utterance context": {"context.weight": 0},
        "no term features": {"term_features.weight": 0},
        "no procedural rule": {"procedural.enabled": False},
        "hdbscan min_samples = min_cluster_size (library default)": {"clustering.min_samples": None},
        "fit on a 350-sentence sample, transform the rest": {"fit_sample_size": 350},
        "kmeans auto k": {"clustering.method": "kmeans"},
        "kmeans k=12, no context, no term features (issue baseline setup with USE)": {
            "clustering.method": "kmeans", "clustering.n_clusters": 12, "context.weight": 0, "term_features.weight": 0},
    }
    out["ablations_use"] = {}
    for name, over in ablations.items():
        p = copy.deepcopy(base)
        for k, v in over.items():
            _set(p, k, v)
        out["ablations_use"][name] = nmi_over_seeds(use, p, "use_multilingual")
        print(name, out["ablations_use"][name], flush=True)
    return out


def part_tokyo(tmp: Path, limit: int | None = None) -> dict:
    import pandas as pd

    from pipeline.config import stage_params
    from pipeline.embed import embed_sentences
    from pipeline.ingest import ingest_paths
    from pipeline.parse import parse_utterances
    from pipeline.topics import fit_topics

    corpus = SHARED / "corpora/tokyo-assembly"
    files = sorted(corpus.glob("*.json"))
    if not files:
        return {"skipped": f"{corpus} not found"}
    out: dict = {"timing": {}}
    cache = tmp / "cache"
    with measure(out["timing"], "ingest"):
        ing = ingest_paths(files, cache_dir=cache)
    utt = ing.utterances
    if limit:
        keep = utt["meeting_id"].drop_duplicates().head(limit)
        utt = utt[utt["meeting_id"].isin(keep)]
    with measure(out["timing"], "parse_ner_off"):
        pp = {**stage_params("parse"), "ner": False}
        sent = parse_utterances(utt, ing.meetings, pp, cache_dir=cache).sentences
    with measure(out["timing"], "embed_use"):
        ids, X = embed_sentences(sent, stage_params("embed"), cache_dir=cache)
    params = stage_params("topics")
    with measure(out["timing"], "topics"):
        r = fit_topics(sent, (ids, X), params, utterances=utt)
    m = r.metrics
    out.update({
        "n_meetings": int(utt["meeting_id"].nunique()), "n_dates": int(utt["meeting_date"].nunique()),
        "n_speech_chars": int(utt.loc[utt["kind"] == "speech", "text"].str.len().sum()),
        "n_sentences": m["n_sentences"], "n_fit": m["n_fit"], "fit_sample_size": params.get("fit_sample_size"),
        "n_topics": m["n_topics"], "outlier_share": m["outlier_share"],
        "outlier_share_before_reduction": m["outlier_share_before_reduction"],
        "procedural_share": m["procedural_share"], "topic_diversity": m["topic_diversity"],
        "npmi_coherence": m["npmi_coherence"],
        "topics_over_time_rows": int(len(r.topics_over_time)),
        "topics_over_time_timestamps": int(pd.Series(r.topics_over_time["timestamp"]).nunique())
        if len(r.topics_over_time) else 0,
        "topics_per_class_rows": int(len(r.topics_per_class)),
        "top_topics": [{"topic_id": int(x.topic_id), "size": int(x.size), "label": x.label}
                       for x in r.topic_info.sort_values("size", ascending=False).head(12).itertuples()],
    })
    print(json.dumps({k: v for k, v in out.items() if k != "top_topics"}, ensure_ascii=False), flush=True)
    for t in out["top_topics"]:
        print(t, flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=["sample", "tokyo", "all"], default="all")
    ap.add_argument("--limit-meetings", type=int, help="tokyo: only the first N meetings (quick check)")
    ap.add_argument("--out", default=str(ROOT / "metrics/bench_topics.json"))
    args = ap.parse_args(argv)
    from pipeline.io import setup_logging

    setup_logging(-1)
    res: dict = {}
    outp = Path(args.out)
    if outp.exists():
        try:
            res = json.loads(outp.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            res = {}
    with tempfile.TemporaryDirectory(prefix="bench_topics_") as d:
        import os

        os.environ["POLICY_TOPICS_CACHE_DIR"] = str(Path(d) / "cache")
        if args.part in ("sample", "all"):
            res["sample"] = part_sample(Path(d))
        if args.part in ("tokyo", "all"):
            res["tokyo"] = part_tokyo(Path(d), args.limit_meetings)
    from pipeline.io import write_json

    res["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(res, outp)
    print(f"wrote {outp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
