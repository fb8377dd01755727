"""Topics stage: BERTopic on precomputed sentence embeddings with Japanese content terms.

Library entry points (heavy imports happen on first call):

* :func:`fit_topics(sentences, embeddings, params) -> TopicResult <pipeline.topics.stage.fit_topics>`
* :func:`run_topics` — the CLI/DVC stage (reads/writes files; refits or only assigns new
  sentences with the saved model, see :mod:`pipeline.topics.incremental`)
* :func:`load_topic_model(path) <pipeline.topics.model.load_topic_model>` — reload a saved
  model; ``.transform(texts) -> (topic_ids, probs)`` works on new text offline.

Modules: ``adapter`` (the only one that touches BERTopic), ``model`` (PolicyTopicModel),
``terms``, ``rules``, ``clustering``, ``geometry``, ``tables``, ``stage``, ``incremental``,
``runner``, ``evaluate``. README "Topics and embeddings" has parameters and measured figures.
"""
from __future__ import annotations

import argparse


def fit_topics(*args, **kwargs):
    from pipeline.topics.stage import fit_topics as _fit

    return _fit(*args, **kwargs)


def run_topics(*args, **kwargs):
    from pipeline.topics.runner import run_topics as _run

    return _run(*args, **kwargs)


def load_topic_model(path):
    from pipeline.topics.model import load_topic_model as _load

    return _load(path)


def run_topics_cli(args: argparse.Namespace) -> int:
    """``policy-topics topics``: params.yaml ``topics`` (a fresh validated copy) with the command-line overrides."""
    from pipeline.settings import load_settings

    settings = load_settings().topics
    if args.clustering:
        settings.clustering.method = args.clustering
    if args.fit_sample_size is not None:
        settings.fit_sample_size = args.fit_sample_size or None
    run_topics(args.sentences, args.embeddings, args.out_dir, args.assignments, args.model, args.metrics,
               utterances=args.utterances, labels=args.labels, params=settings, refit=args.refit)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("topics", help="fit BERTopic topics on sentence embeddings + content terms",
                              description="Assign topics to new sentences with the saved topic model, or (re)fit it "
                                          "(--refit, changed settings, or drift: see README); write per-sentence "
                                          "topics, topic tables, the saved model and metrics.")
    p.add_argument("--sentences", required=True, help="sentences.parquet (parse stage; needs `terms`)")
    p.add_argument("--embeddings", required=True, help="embeddings dataset (embed stage; a legacy .npz also works)")
    p.add_argument("--utterances", help="utterances.parquet (meeting dates, roles, agenda items)")
    p.add_argument("--labels", help="folder of labelled *.jsonl (theme labels) for NMI in the metrics")
    p.add_argument("--out-dir", required=True, help="folder for topic_info / topics_per_class / "
                                                    "topics_over_time / topic_hierarchy parquet files")
    p.add_argument("--assignments", required=True, help="per-sentence topics parquet")
    p.add_argument("--model", required=True, help="folder of the saved topic model (read, then updated)")
    p.add_argument("--metrics", required=True, help="metrics JSON")
    p.add_argument("--clustering", choices=["kmeans", "hdbscan"], help="override topics.clustering.method")
    p.add_argument("--fit-sample-size", type=int, help="fit on this many sentences, assign the rest (0 = all)")
    p.add_argument("--refit", action="store_true", help="refit the topic model even if the saved one is usable")
    p.set_defaults(func=run_topics_cli)
