"""CLI commands: train, classify, tag, label-queue (heavy imports live here, loaded on use)."""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cells import neutralise_frame  # minutes text opened in spreadsheets
from pipeline.classify.train_metrics import label_record_weights, train_figures
from pipeline.errors import PipelineError
from pipeline.io import atomic_path, stage_timer, write_metrics, write_text

log = logging.getLogger("policy_topics.classify")

def _read_parquet(path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise PipelineError(path, "file not found")
    from pipeline.dataset import read_table

    return read_table(path)  # a single file or a partitioned dataset directory


def make_model(settings=None, taxonomy=None):
    """The ThemeClassifier of ``settings`` (:class:`~pipeline.settings.ClassifySettings`, a dict of
    overrides, or None: params.yaml ``classify``)."""
    from pipeline.classify.model import ThemeClassifier
    from pipeline.settings import resolve

    return ThemeClassifier(taxonomy=taxonomy, **resolve("classify", settings).model_kwargs())


def _settings():
    from pipeline.settings import load_settings

    return load_settings().classify


def training_data(sentences: pd.DataFrame, labels_dir, taxonomy, embeddings=None, model=None):
    """(X, Y, info) for the labelled sentences: the corpus's in document order, then those of
    label records whose meeting is not in the corpus (anchored to a ``turn``; featurised from
    their own text, meeting by meeting in document order, so their turn context is the
    pipeline's). X is None without a ``model``; its boolean ``label_record`` column marks the label
    records' rows (they weigh ``classify.label_record_weight`` in training)."""
    from pipeline.classify.tagging import _frame_for
    from pipeline.labels import anchor_meeting, load_labels, match_labels

    ids = taxonomy.ids
    for col in ("text", "utterance_id", "sentence_id"):
        if col not in sentences.columns:
            raise PipelineError(None, f"sentences table lacks column {col!r}")
    labelset = load_labels(labels_dir, ids)
    matched = match_labels(sentences, labelset)
    rows = sorted(matched.rows)
    off = matched.off_corpus
    if len(rows) + len(off) < 20:
        raise PipelineError(labels_dir, f"only {len(rows) + len(off)} labelled sentence(s) match the sentences "
                                        "or carry a meeting turn; need >= 20")
    sub = sentences.iloc[rows].reset_index(drop=True)
    X = _frame_for(model, sub, embeddings) if model is not None else None
    if X is not None:
        X["label_record"] = False
    if model is not None and off:
        X = pd.concat([X, _label_record_frame(off, model, with_embeddings="embedding" in X.columns)
                       .assign(label_record=True)], ignore_index=True)
        if "agenda_item" in X.columns:
            X["agenda_item"] = X["agenda_item"].fillna("(none)")
    Y = np.zeros((len(rows) + len(off), len(ids)), dtype=int)
    labs = [matched.rows[i] for i in rows] + [r["labels"] for r in off]
    for r, lab_ids in enumerate(labs):
        for lab in lab_ids:
            Y[r, ids.index(lab)] = 1
    info = {"files": labelset.files, "label_rows": labelset.n_rows, "unique_texts": len(labelset),
            "conflicting_texts": labelset.conflicts, "conflict_examples": labelset.conflict_examples[:10],
            "unknown_ids": labelset.unknown_ids,
            "matched_exact": matched.n_exact, "matched_by_containment": matched.n_contained,
            "unmatched": len(matched.unmatched), "unmatched_examples": [u[:60] for u in matched.unmatched[:5]],
            "sentences_labelled": len(Y), "from_corpus": len(rows), "from_label_records": len(off),
            "label_record_meetings": dict(pd.Series([anchor_meeting(r) for r in off], dtype=object)
                                          .value_counts(sort=False).astype(int)) if off else {},
            "anchored_matched_in_corpus": matched.n_anchored_in_corpus,
            "sentences_no_label": int((Y.sum(1) == 0).sum()),
            "label_counts": {t: int(Y[:, j].sum()) for j, t in enumerate(ids)}}
    return X, Y, info


def _label_record_frame(records: list[dict], model, with_embeddings: bool) -> pd.DataFrame:
    """Model input for off-corpus label records: text, terms (parse stage), group = the record's
    turn, meeting_id, agenda_item "(none)", speaker, embedding (the embed backend) -- cached."""
    from pipeline.labels import anchor_meeting, anchor_turn, anchored_features, council_of

    terms, E = anchored_features(records, model.embedding_backend if with_embeddings else None)
    X = pd.DataFrame({"text": [str(r["text"]) for r in records], "terms": terms,
                      "group": [anchor_turn(r) for r in records],
                      "meeting_id": [anchor_meeting(r) for r in records],
                      "agenda_item": "(none)",
                      "speaker": [str(r.get("speaker") or anchor_turn(r)) for r in records],
                      "domain": [council_of(r.get("source")) for r in records]})
    if with_embeddings:
        X["embedding"] = list(E)
    return X


def unlabelled_data(sentences: pd.DataFrame, X_labelled: pd.DataFrame, embeddings=None, model=None,
                    max_rows: int = 20000, seed: int = 42) -> pd.DataFrame:
    """Sentences without a label (e.g. a new council's meetings) for self-training: whole speaker
    turns (so the turn context is intact), at most ``max_rows`` sentences (turns sampled with a seed)."""
    from pipeline.classify.tagging import _frame_for
    from pipeline.labels import text_key

    have = {text_key(t) for t in X_labelled["text"]}
    rest = sentences[[text_key(t) not in have for t in sentences["text"].fillna("").astype(str)]]
    rest = rest[rest["text"].fillna("").str.strip().astype(bool)]
    if len(rest) > max_rows:
        utts = rest["utterance_id"].drop_duplicates().sample(frac=1.0, random_state=seed)
        sizes = rest.groupby("utterance_id").size()
        keep = utts[(sizes.reindex(utts).cumsum() <= max_rows).to_numpy()]
        rest = rest[rest["utterance_id"].isin(set(keep))]
    return _frame_for(model, rest.reset_index(drop=True), embeddings)


def _train_sentences(args) -> pd.DataFrame:
    """The parse sentences, with each meeting's ``source_file`` from ``--meetings`` (its council)."""
    sentences = _read_parquet(args.sentences)
    if getattr(args, "meetings", None):
        from pipeline.classify.tagging import with_source_file

        sentences = with_source_file(sentences, _read_parquet(args.meetings))
    return sentences


def run_train_cli(args) -> int:
    import joblib

    from pipeline.classify.taxonomy import load_taxonomy
    from pipeline.labels import agreement

    params = _settings()
    with stage_timer("train") as stats:
        tax = load_taxonomy(args.taxonomy)
        sentences = _train_sentences(args)
        model = make_model(params, taxonomy=str(Path(args.taxonomy)) if args.taxonomy else None)
        emb = args.embeddings
        if model.use_embeddings and emb:
            from pipeline.embed import load_embeddings

            backend = load_embeddings(emb, with_backend=True)[2]
            model.set_params(embedding_backend=backend)  # `tag` must encode like the embed stage did
        X, Y, info = training_data(sentences, args.labels, tax, emb, model)
        stats["labelled"] = len(Y)
        # label records (another council's meetings) weigh classify.label_record_weight against the
        # corpus's labels in every fit, evaluations included
        sw = label_record_weights(X, params.label_record_weight)
        info["label_record_weight"] = float(params.label_record_weight)
        # a cache of the training (classify/cache.py): an unlabelled meeting added to the corpus
        # changes neither the evaluation nor, until the pool is stale, the shipped model
        from pipeline.classify import cache as tcache
        from pipeline.sources import code_digest

        key = tcache.train_key(X, Y, params.model_dump(mode="json"), [p for p in (args.labels, args.taxonomy) if p],
                               code_digest(run_train_cli), getattr(model, "embedding_backend", None), not args.no_eval)
        entry = tcache.train_entry(key)
        meetings = set(sentences["meeting_id"].astype(str)) if "meeting_id" in sentences.columns else set()
        cached = json.loads((entry / "metrics.json").read_text(encoding="utf-8")) \
            if (entry / "metrics.json").exists() else None
        if cached is not None and (entry / "model.joblib").exists() and (
                not model.self_training or tcache.pool_is_fresh(entry, meetings)):
            log.info("train: labelled data, settings and code unchanged and the self-training pool still "
                     "stands (%s): the saved classifier is reused", entry.name[:12])
            with atomic_path(args.model) as tmp:
                tmp.write_bytes((entry / "model.joblib").read_bytes())
            write_metrics(cached, args.metrics)
            if args.plots_dir and cached.get("per_label"):
                _write_plots(cached, Path(args.plots_dir))
            stats.update(reused=True, macro_f1=cached.get("macro_f1"), micro_f1=cached.get("micro_f1"))
            return 0
        metrics: dict = {}
        if cached is not None:  # only the pool is stale: the evaluation (labelled data only) still holds
            metrics.update({k: v for k, v in cached.items() if k not in ("labels", "shipped_model",
                                                                         "annotator_agreement")})
        elif not args.no_eval:
            metrics.update(train_figures(model, X, Y, params, sw))
        metrics["annotator_agreement"] = agreement(args.labels, tax.ids)
        metrics["labels"] = info
        t0 = time.perf_counter()
        Xu = unlabelled_data(sentences, X, emb, model) if model.self_training else X.iloc[:0]
        info["unlabelled_for_self_training"] = int(len(Xu))
        final = model.fit(pd.concat([X, Xu], ignore_index=True),
                          np.vstack([Y, -np.ones((len(Xu), Y.shape[1]), dtype=int)]),
                          sample_weight=None if sw is None else np.concatenate([sw, np.ones(len(Xu))]))
        metrics["shipped_model"] = {
            "class": "pipeline.classify.model.ThemeClassifier", "params": _jsonable(final.get_params()),
            "taxonomy": tax.name, "themes": tax.ids, "n_rules": len(final.rules_),
            "thresholds": {t: float(x) for t, x in zip(tax.ids, final.thresholds_)},
            "chosen_C": {"lexical": final.C_lex_, "embedding": final.C_emb_, "calibrator": final.C_meta_},
            "fit_seconds": round(time.perf_counter() - t0, 1), "n_training_sentences": int(len(Y)),
            "pseudo_labelled": getattr(final, "n_pseudo_", {}),
        }
        with atomic_path(args.model) as tmp:
            joblib.dump(final, tmp)
        if "macro_f1" not in metrics:
            metrics = {"macro_f1": None, "micro_f1": None, "per_label": {}, "baselines": {}, **metrics}
        tcache.store_training(entry, Path(args.model), metrics, meetings)  # the pool was drawn from these
        write_metrics(metrics, args.metrics)  # fit/eval seconds go to metrics/timings/, not into dvc.lock
        if args.plots_dir and "per_label" in metrics and metrics["per_label"]:
            _write_plots(metrics, Path(args.plots_dir))
        stats.update(macro_f1=metrics.get("macro_f1"), micro_f1=metrics.get("micro_f1"))
    return 0


def _jsonable(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()
            if isinstance(v, (str, int, float, bool, tuple, list, type(None)))}


def _write_plots(metrics: dict, plots: Path) -> None:
    rows = [{"label": t, "f1": v["f1"], "precision": v["precision"], "recall": v["recall"], "support": v["support"]}
            for t, v in metrics["per_label"].items()]
    write_text(pd.DataFrame(rows).to_csv(index=False), plots / "classifier_per_label_f1.csv")
    pairs = metrics.get("confused_pairs") or []
    df = pd.DataFrame(pairs, columns=["pair", "count", "gold", "predicted"]) if pairs else \
        pd.DataFrame({"pair": ["(none)"], "count": [0], "gold": [""], "predicted": [""]})
    write_text(df[["pair", "count", "gold", "predicted"]].to_csv(index=False), plots / "classifier_confusion_pairs.csv")


def run_classify_cli(args) -> int:
    """Meeting by meeting (:func:`pipeline.classify.stream.classify_dataset`): the processed sentences
    and utterances are datasets of one Parquet file per meeting."""
    from pipeline.classify.stream import classify_dataset
    from pipeline.classify.tagging import load_model
    from pipeline.labels import load_labels

    params = _settings()
    with stage_timer("classify") as stats:
        model = load_model(args.model)
        emb = args.embeddings if args.embeddings and Path(args.embeddings).exists() else None
        model_key = None
        if not getattr(args, "no_cache", False):
            from pipeline.partition import hash_file

            model_key = hash_file(args.model)  # cached tags are valid for this exact model only
        labelled = set()
        labels_dir = Path(params.labels_dir)
        if labels_dir.is_dir():
            labelled = load_labels(labels_dir, [str(c) for c in model.classes_]).all_labels()
        run = classify_dataset(model, args.sentences, args.out_dir, embeddings=emb, topics=args.topics,
                               utterances=args.utterances, meetings=args.meetings, model_key=model_key,
                               labelled=labelled, queue_size=args.queue_size or params.queue_size)
        stats.update(sentences=run.sentences, with_theme=run.with_theme, queue=len(run.queue),
                     meetings=run.meetings, meetings_from_cache=run.cached if model_key else None)
    return 0


def _jsonl_record(line: str, path, n: int) -> dict:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PipelineError(path, f"line {n}: invalid JSON ({exc.msg}); JSON-lines input needs one object per line") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
        raise PipelineError(path, f"line {n}: expected an object with a string `text` (and optional `id`, `turn`, "
                                  "`council`)")
    if not isinstance(rec.get("council", ""), (str, type(None))):
        raise PipelineError(path, f"line {n}: `council` must be a string (the council's name, e.g. its data/raw/ "
                                  "sub-folder)")
    return rec


def run_tag_cli(args) -> int:
    """Plain lines (one text each) or JSON lines ``{"id", "text", "turn", "council"}`` (detected
    from the first non-blank line): consecutive JSON lines with the same ``turn`` are tagged as
    one speaker turn; ``council`` names the council a line is scored as (default: unseen). The
    whole input is read and checked first, so a bad line gives one error (exit 2) and no output."""
    import io

    from pipeline.classify.tagging import load_model, tag_records, tag_texts

    model = load_model(args.model)
    src, lines = read_tag_input(args.file)
    first = next((x.strip() for x in lines if x.strip()), "")
    jsonl = first.startswith("{")
    if jsonl:
        records = [_jsonl_record(x, src, n) if x.strip() else {"id": None, "text": ""}
                   for n, x in enumerate(lines, 1)]
    # UTF-8 out whatever the locale
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n", line_buffering=False) \
        if hasattr(sys.stdout, "buffer") else sys.stdout
    batch = 256
    try:
        _write_tags(out, lines, records if jsonl else None, jsonl, batch, model, tag_records, tag_texts)
    except BrokenPipeError:
        # `tag ... | head -1`: the reader has gone; stop quietly like any Unix filter
        _silence_stdout()
        return 0
    if out is not sys.stdout:
        out.detach()
    return 0


def _write_tags(out, lines, records, jsonl, batch, model, tag_records, tag_texts) -> None:
    start = 0
    while start < len(lines):
        end = min(start + batch, len(lines))
        if jsonl:  # never split a speaker turn between batches
            while end < len(lines) and end - start < 20 * batch and \
                    records[end].get("turn") is not None and records[end].get("turn") == records[end - 1].get("turn"):
                end += 1
            res = tag_records(records[start:end], model=model)
        else:
            res = tag_texts(lines[start:end], model=model)
        for r in res:
            out.write(json.dumps(r, ensure_ascii=False) + "\n")
        out.flush()
        start = end


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush raises nothing."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


#: the largest `tag` input read (bytes)
MAX_TAG_INPUT_BYTES = 256 * 1024 * 1024


def read_tag_input(file) -> tuple[str | Path, list[str]]:
    """(source name, lines) of ``tag``'s input (a file, or stdin for ``-``/None).

    Decoded as ingest decodes files (UTF-8 with/without BOM, UTF-16 with or without BOM,
    CP932, EUC-JP; undecodable input is an error, never mojibake). One record per LF
    (a CRLF ends a record too); a lone CR or U+2028 inside a line is part of that record's
    text. A directory, device or unreadable file is a one-line error.
    """
    from pipeline.textio import decode_bytes, read_input

    if file in (None, "-"):
        src: str | Path = "<stdin>"
        stream = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
        data = stream.read(MAX_TAG_INPUT_BYTES + 1) if stream is not None else sys.stdin.read().encode("utf-8")
        if len(data) > MAX_TAG_INPUT_BYTES:
            raise PipelineError(src, f"input too large (more than {MAX_TAG_INPUT_BYTES:,} bytes)")
    else:
        src = Path(file)
        if not src.exists() and not src.is_symlink():
            raise PipelineError(src, "file not found")
        if src.is_dir():
            raise PipelineError(src, "is a directory: give a text or JSON-lines file (one text per line)")
        data = read_input(src, str(src))
    if not data.strip():
        return src, []
    text, _ = decode_bytes(data, src)
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return src, [line[:-1] if line.endswith("\r") else line for line in lines]


def run_label_queue_cli(args) -> int:
    from pipeline.classify.queue import build_queue
    from pipeline.classify.tagging import _frame_for, load_model
    from pipeline.dataset import select_meetings
    from pipeline.labels import load_labels

    params = _settings()
    model = load_model(args.model)
    sentences = _read_parquet(args.sentences)
    if getattr(args, "meeting", None):
        if "meeting_id" not in sentences.columns:
            raise PipelineError(args.sentences, "--meeting given but the table has no `meeting_id`")
        sentences = select_meetings(sentences, args.meeting, args.sentences, "no sentences of meeting {}")
    X = _frame_for(model, sentences, args.embeddings)
    _, P, rule_ev = model.tag(X, return_details=True)
    labelled = set()
    labels_dir = args.labels or params.labels_dir
    if labels_dir and Path(labels_dir).is_dir():
        labelled = load_labels(labels_dir, [str(c) for c in model.classes_]).all_labels()
    emb = np.vstack(X["embedding"].to_numpy()) if "embedding" in X.columns and len(X) else None
    q = build_queue(model, sentences, P, rule_ev, labelled, args.n or params.queue_size,
                    embeddings=emb)
    if args.out in (None, "-"):
        sys.stdout.write(neutralise_frame(q).to_csv(index=False))
    else:
        write_text(neutralise_frame(q).to_csv(index=False), args.out)
        log.info("label queue: %d sentence(s) -> %s (fill `labels`, save into data/labels/, dvc repro)",
                 len(q), args.out)
    return 0


def run_score_cli(args) -> int:
    """``score``: the held-out figures of :mod:`pipeline.classify.scoring` as one JSON object."""
    from pipeline.classify.scoring import read_predictions, score
    from pipeline.classify.taxonomy import load_taxonomy

    params = _settings()
    preds = read_predictions(args.predictions, args.meeting)
    res = score(args.gold, preds, load_taxonomy(args.taxonomy), training_labels=args.labels or params.labels_dir,
                held_out_only=args.held_out_only, n_boot=args.n_boot, seed=params.seed)
    res["predictions"] = Path(args.predictions).name
    text = json.dumps(res, ensure_ascii=False, indent=2) + "\n"
    if args.out in (None, "-"):
        sys.stdout.write(text)
    else:
        write_text(text, args.out)
    log.info("score: micro-F1 %.3f, macro-F1 %.3f on %d sentence(s) of %s", res["micro_f1"], res["macro_f1"],
             res["n_scored_sentences"], Path(args.gold).name)
    return 0
