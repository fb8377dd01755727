"""Choose ``classify.label_record_weight`` (issue #12): the training weight of a label-record row
(the Tokyo committees' labelled sentences) relative to a corpus row (the sample's).

The only figure looked at is the sample's leave-one-agenda-item-out (``cross_group``, the same
function and scheme ``train`` writes to metrics/classifier.json; the Tokyo rows are always in
training and never scored). No Tokyo held-out figure and nothing of plenary-2020 is computed.
Rule fixed before running: the candidate with the best mean of micro- and macro-F1; within
0.005 of the best, the larger weight (closer to the unweighted fit); while the smallest weight
tried is the best by more than that, one smaller step is tried.

Run on 2026-12-03 (1,431 labelled sentences: 547 sample rows scored, 884 Tokyo rows always in
training; micro / macro F1): 1.0 -> 0.769 / 0.713 (the unweighted fit, as before), 0.5 -> 0.794 /
0.750, 0.25 -> 0.815 / 0.782, 0.1 -> 0.822 / 0.791, 0.05 -> 0.829 / 0.821, 0.02 -> 0.829 / 0.830
(mean 0.830 vs 0.825 at 0.05: within 0.005) -> chosen 0.05 (params.yaml classify.label_record_weight).

    nice -n 19 .venv/bin/python benchmarks/classify_label_record_weight.py [--weights 1 0.5 0.25 0.1 0.05 0.02]

Needs the pipeline's data/interim/sentences.parquet and embeddings.parquet (`dvc repro embed`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def training_setup():
    """``(classify params, taxonomy, unfitted model, X, Y, info)`` as ``train`` builds them from the
    project's params.yaml, configs/taxonomy.yaml, data/interim and data/labels (shared with
    ``classify_offtaxonomy_tune.py``)."""
    from pipeline.classify.commands import _read_parquet, make_model, training_data
    from pipeline.classify.taxonomy import load_taxonomy
    from pipeline.embed import load_embeddings
    from pipeline.settings import load_settings

    params = load_settings().classify
    emb = ROOT / "data" / "interim" / "embeddings.parquet"
    tax = load_taxonomy(ROOT / "configs" / "taxonomy.yaml")
    model = make_model(params, taxonomy=str(ROOT / "configs" / "taxonomy.yaml"))
    model.set_params(embedding_backend=load_embeddings(emb, with_backend=True)[2])
    sentences = _read_parquet(ROOT / "data" / "interim" / "sentences.parquet")
    X, Y, info = training_data(sentences, ROOT / params.labels_dir, tax, emb, model)
    return params, tax, model, X, Y, info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.1, 0.05, 0.02])
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from pipeline.classify.evaluate import cross_group
    from pipeline.classify.train_metrics import _held_out_units, label_record_weights

    params, _, model, X, Y, info = training_setup()
    units = _held_out_units(X, params.cross_group)
    print(f"{info['from_corpus']} corpus rows (scored), {info['from_label_records']} label-record rows "
          "(always in training)", flush=True)
    rows = []
    for w in args.weights:
        t0 = time.process_time()
        r = cross_group(model, X, Y, units, n_boot=args.n_boot, seed=params.seed,
                        sample_weight=label_record_weights(X, w))
        rows.append({"label_record_weight": w, "micro_f1": r["micro_f1"], "macro_f1": r["macro_f1"],
                     "ci95": r["ci95"], "per_label_f1": r["per_label_f1"],
                     "cpu_seconds": round(time.process_time() - t0, 1)})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_label_f1"}), flush=True)
    best = max((r["micro_f1"] + r["macro_f1"]) / 2 for r in rows)
    chosen = max((r for r in rows if (r["micro_f1"] + r["macro_f1"]) / 2 >= best - 0.005),
                 key=lambda r: r["label_record_weight"])
    print(f"chosen: label_record_weight = {chosen['label_record_weight']}")
    if args.out:
        Path(args.out).write_text(json.dumps({"candidates": rows, "chosen": chosen["label_record_weight"]},
                                             ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
