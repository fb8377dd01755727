"""Score the pipeline's theme tags against a held-out gold file (issue 12's measurement).

A council's annotators label a meeting the model never saw (``text`` + ``labels`` per sentence,
the format of ``data/labels/``: JSONL or a returned label-queue CSV, ``-`` for no theme) and keep
the file *outside* ``data/labels/`` (a file there is training data). ``policy-topics score GOLD
--predictions P`` then gives the figures the issue asks for, by the same procedure for each:

* the whole pipeline, no labels from the meeting: ``P`` = ``data/processed/sentences.parquet``
  (the ``classify`` stage's sentences, a file or a dataset folder; ``--meeting`` restricts it);
* ``tag`` line by line, or with turn context: ``P`` = ``tag``'s JSON lines;
* after answering the meeting's label queue and ``dvc repro``: the same command again (the
  queued sentences are then training labels; ``in_training_labels`` counts them and
  ``--held-out-only`` scores the meeting's other sentences).

Gold texts are matched to predicted sentences as training labels are (:func:`pipeline.labels.match_labels`:
normalised text, then containment); gold texts that match nothing are counted and listed, never
dropped silently. F1 is computed as ``metrics/classifier.json`` computes it (macro over the themes
with gold support, :func:`pipeline.classify.evaluate.prf`), with a percentile bootstrap over speaker
turns and the share of no-theme sentences given a policy theme.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError

log = logging.getLogger("policy_topics.classify")


def read_predictions(path: str | Path, meetings: list[str] | None = None) -> pd.DataFrame:
    """``text``, ``themes`` (list of ids) and ``group`` (speaker turn) of predicted sentences:
    the classify stage's sentences table (Parquet file or dataset folder) or ``tag``'s JSON lines."""
    path = Path(path)
    if not path.exists():
        raise PipelineError(path, "predictions not found (data/processed/sentences.parquet or `tag` JSON lines)")
    if path.is_dir() or path.suffix.lower() == ".parquet":
        from pipeline.dataset import read_table, select_meetings

        try:
            df = read_table(path, columns=["text", "themes", "utterance_id", "meeting_id"])
        except (KeyError, ValueError, OSError) as exc:
            raise PipelineError(path, f"not a classified sentences table ({exc})") from None
        if meetings:
            df = select_meetings(df, meetings, path, "no meeting {} in the predictions")
        return pd.DataFrame({"text": df["text"].astype(str).to_numpy(),
                             "themes": [list(t) if t is not None else [] for t in df["themes"]],
                             "group": df["utterance_id"].astype(str).to_numpy()})
    if meetings:
        raise PipelineError(path, "--meeting needs the sentences table; `tag` output has no meetings")
    return _read_tag_output(path)


def _read_tag_output(path: Path) -> pd.DataFrame:
    from pipeline.io import read_json_lines

    rows = []
    for n, rec in read_json_lines(path, lambda r: isinstance(r.get("text"), str) and isinstance(r.get("themes"), list),
                                  "expected `tag` output (an object with `text` and `themes`)",
                                  "; expected `tag` output"):
        turn = rec.get("turn")
        rows.append({"text": rec["text"], "themes": [str(t) for t in rec["themes"]],
                     # no turn: each line is its own unit in the bootstrap
                     "group": f"turn:{turn}" if turn is not None else f"line:{n}"})
    return pd.DataFrame(rows, columns=["text", "themes", "group"])


def score(gold: str | Path, predictions: pd.DataFrame, taxonomy, *, training_labels: str | Path | None = None,
          held_out_only: bool = False, n_boot: int = 1000, seed: int = 42) -> dict:
    """Micro/macro F1 (with turn-bootstrap CIs), per-theme precision/recall/F1 and the share of
    gold no-theme sentences given a policy theme, for ``predictions`` (:func:`read_predictions`)
    against the gold file. ``training_labels`` (the labels folder the model was trained on):
    gold texts also found there are counted (``in_training_labels``) and warned about — the
    score of those sentences is not a held-out one; with ``held_out_only`` they are left out of
    the score instead (after a label queue's answers: the meeting's other sentences, as
    ``label_queue_simulation`` in ``metrics/classifier.json`` scores them)."""
    from pipeline.classify.evaluate import bootstrap_ci, no_policy_theme_tagged, per_label_table, prf
    from pipeline.labels import LabelSet, load_labels, match_labels

    gold = Path(gold)
    if not gold.is_file():
        raise PipelineError(gold, "gold file not found (a labelled .jsonl or .csv)")
    ids = list(taxonomy.ids)
    labelset = load_labels(gold, ids)
    flat = labelset.all_labels()  # anchored records too: scoring matches by text only
    if not flat:
        raise PipelineError(gold, "no labelled sentence (needs `text` and `labels`; `-` for no theme)")
    seen = set(load_labels(training_labels, ids).all_labels()) \
        if training_labels is not None and Path(training_labels).is_dir() else None
    n_seen = sum(k in seen for k in flat) if seen is not None else None
    if held_out_only:
        if seen is None:
            raise PipelineError(training_labels, "--held-out-only needs the training labels folder")
        flat = {k: v for k, v in flat.items() if k not in seen}
        if not flat:
            raise PipelineError(gold, "every labelled text is a training label: nothing held out to score")
    matched = match_labels(predictions, LabelSet(flat, {}, labelset.files, labelset.n_rows))
    if not matched.rows:
        raise PipelineError(gold, f"none of its {len(flat)} labelled texts matches a predicted sentence")
    idx = np.array(sorted(matched.rows))
    col = {t: j for j, t in enumerate(ids)}
    Y = np.zeros((len(idx), len(ids)), dtype=bool)
    P = np.zeros_like(Y)
    foreign: dict[str, int] = {}  # predicted ids of another taxonomy: counted, never scored silently
    for r, i in enumerate(idx):
        Y[r, [col[t] for t in matched.rows[i]]] = True
        for t in predictions["themes"].iloc[i]:
            if t in col:
                P[r, col[t]] = True
            else:
                foreign[t] = foreign.get(t, 0) + 1
    res = prf(Y, P)
    out = {
        "gold": gold.name,
        "n_gold_texts": len(flat),
        "n_scored_sentences": int(len(idx)),
        "matched_exact": matched.n_exact,
        "matched_by_containment": matched.n_contained,
        "unmatched": len(matched.unmatched),
        "unmatched_examples": [k[:60] for k in matched.unmatched[:5]],
        "micro_f1": round(res["micro_f1"], 4),
        "macro_f1": round(res["macro_f1"], 4),
        "ci95": bootstrap_ci(Y, P, predictions["group"].to_numpy()[idx], n_boot=n_boot, seed=seed),
        "per_label": per_label_table(res, ids),
        "no_policy_theme_tagged": no_policy_theme_tagged(Y, P, taxonomy),
    }
    if foreign:
        out["predicted_ids_not_in_taxonomy"] = dict(sorted(foreign.items()))
        log.warning("score: predictions carry theme ids the taxonomy does not have (not scored): %s",
                    out["predicted_ids_not_in_taxonomy"])
    if n_seen is not None:
        out["in_training_labels"] = n_seen
        if held_out_only:
            out["left_out_as_training_labels"] = n_seen
        elif n_seen:
            log.warning("score: %d of %d gold texts are training labels in %s: their score is not held out "
                        "(--held-out-only leaves them out)", n_seen, len(flat), training_labels)
    return out
