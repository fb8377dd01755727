"""Policy-theme classifier (issue 6): taxonomy-driven, multi-label, honest about its accuracy.

Subcommands: ``train`` (grouped-CV evaluation + final model), ``classify`` (tag every
sentence, assemble the processed tables), ``tag`` (tag new text, one line each),
``label-queue`` (the most uncertain sentences for annotation) and ``score`` (F1 against a
held-out gold file). Heavy imports stay inside the command functions so ``policy-topics
--help`` stays fast.
"""
from __future__ import annotations

import argparse

__all__ = ["ThemeClassifier", "evaluate", "tag_texts", "register", "DEFAULT_MODEL"]

#: where `train` writes the model and `tag`/`label-queue` read it by default (dvc.yaml names it too)
DEFAULT_MODEL = "models/classifier.joblib"


def __getattr__(name):  # lazy public API: sklearn is imported only when used
    if name == "ThemeClassifier":
        from pipeline.classify.model import ThemeClassifier

        return ThemeClassifier
    if name == "evaluate":
        from pipeline.classify.evaluate import evaluate

        return evaluate
    if name == "tag_texts":
        from pipeline.classify.tagging import tag_texts

        return tag_texts
    raise AttributeError(name)


def _run(name):
    def run(args):
        from pipeline.classify import commands

        return getattr(commands, name)(args)

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="evaluate the theme classifier by grouped CV and fit it on all labels",
        description="Grouped (speaker-turn) cross-validation with nested tuning, baselines in the same run, "
                    "metrics + plots; then fits the shipped model on all labelled sentences.")
    p.add_argument("--sentences", required=True, help="parse output: data/interim/sentences.parquet")
    p.add_argument("--embeddings", help="embed output: data/interim/embeddings.parquet")
    p.add_argument("--labels", required=True, help="folder of labelled JSONL/CSV (data/labels)")
    p.add_argument("--meetings", default=None,
                   help="ingest meetings table (data/interim/meetings.parquet): each meeting's source_file names "
                        "its council (classify.domain_adaptation); default: the council from the meeting id")
    p.add_argument("--taxonomy", default=None, help="taxonomy YAML (default configs/taxonomy.yaml)")
    p.add_argument("--model", required=True, help="where to write the fitted model (.joblib)")
    p.add_argument("--metrics", required=True, help="metrics JSON (metrics/classifier.json)")
    p.add_argument("--plots-dir", default=None, help="folder for DVC plot CSVs")
    p.add_argument("--no-eval", action="store_true", help="skip cross-validation (fit only)")
    p.set_defaults(func=_run("run_train_cli"))

    p = subparsers.add_parser(
        "classify", help="tag every sentence with themes and assemble the processed tables")
    p.add_argument("--model", required=True)
    p.add_argument("--sentences", required=True)
    p.add_argument("--embeddings", default=None)
    p.add_argument("--topics", default=None, help="sentence_topics.parquet (topic columns)")
    p.add_argument("--utterances", default=None)
    p.add_argument("--meetings", default=None)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--queue-size", type=int, default=None, help="rows in label_queue.csv (params: classify.queue_size)")
    p.add_argument("--no-cache", action="store_true",
                   help="tag every meeting again (default: meetings already tagged by this model come from .cache/classify)")
    p.set_defaults(func=_run("run_classify_cli"))

    p = subparsers.add_parser(
        "tag", help="tag text (one per line, or JSON lines) with policy themes; prints one JSON object per line",
        description="Reads FILE (or stdin with '-' / no argument): plain text, one per line, or JSON lines "
                    '{"id": ..., "text": ..., "turn": ..., "council": ...} (consecutive lines with the same turn '
                    "are tagged as one speaker turn, with the context the pipeline uses; council, optional, scores "
                    "a line as that council, default unseen). Prints "
                    '{"text", "themes", "scores", "evidence"} per input line (JSON lines: with id and turn echoed) '
                    "using the last trained model.")
    p.add_argument("file", nargs="?", default="-")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.set_defaults(func=_run("run_tag_cli"))

    _register_score(subparsers)

    p = subparsers.add_parser(
        "label-queue", help="export the N most uncertain / rules-vs-model disagreeing sentences as CSV",
        description="Fill the `labels` column (theme ids separated by ';', '-' for none), save the CSV "
                    "into data/labels/ and `dvc repro` retrains.")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--sentences", default="data/processed/sentences.parquet",
                   help="classified sentences (data/processed/sentences.parquet) or parse sentences")
    p.add_argument("--embeddings", default="data/interim/embeddings.parquet",
                   help="sentence embeddings of those sentences (re-encoded when the file is absent)")
    p.add_argument("--labels", default=None,
                   help="already-labelled sentences are skipped (default: params classify.labels_dir)")
    p.add_argument("-n", type=int, default=None, help="rows (params: classify.queue_size)")
    p.add_argument("--meeting", action="append", default=None,
                   help="only sentences of this meeting_id (repeatable); default: meetings with no labels yet")
    p.add_argument("-o", "--out", default="-", help="CSV path or '-' for stdout")
    p.set_defaults(func=_run("run_label_queue_cli"))


def _register_score(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score", help="F1 of the pipeline's theme tags against a held-out gold file (JSON)",
        description="GOLD: sentences a council's annotators labelled (JSONL or CSV with `text` and `labels`, "
                    "'-' for no theme), kept outside data/labels/ (a file there is training data). PREDICTIONS: "
                    "the classify stage's data/processed/sentences.parquet or `tag`'s JSON lines. Prints micro/"
                    "macro F1 with bootstrap CIs over speaker turns, per-theme precision/recall, the share of "
                    "no-theme sentences given a policy theme, and the gold texts that matched no sentence.")
    p.add_argument("gold", help="held-out labelled JSONL/CSV")
    p.add_argument("--predictions", default="data/processed/sentences.parquet",
                   help="classified sentences table (default) or `tag` JSON-lines output")
    p.add_argument("--meeting", action="append", default=None,
                   help="only sentences of this meeting_id (repeatable; sentences table only)")
    p.add_argument("--taxonomy", default=None, help="taxonomy YAML (default configs/taxonomy.yaml)")
    p.add_argument("--labels", default=None,
                   help="the model's training labels, to count gold texts found there (default: params "
                        "classify.labels_dir)")
    p.add_argument("--held-out-only", action="store_true",
                   help="leave out gold texts that are training labels (e.g. the label queue's answers)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for the CIs")
    p.add_argument("-o", "--out", default="-", help="JSON path or '-' for stdout")
    p.set_defaults(func=_run("run_score_cli"))
