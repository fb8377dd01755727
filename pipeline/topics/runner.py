"""``policy-topics topics`` as a library call: read inputs, refit or assign new sentences, write
every output atomically (see :mod:`pipeline.topics.incremental` for when it refits)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.topics import incremental as inc
from pipeline.topics import tables
from pipeline.topics.stage import (
    EmbeddingsMismatch,
    TopicResult,
    align_embeddings,
    build_result,
    fit_topics,
    prepare_frame,
)
from pipeline.topics.tables import over_time_topics

log = logging.getLogger("policy_topics.topics")


#: what :func:`pipeline.topics.stage.prepare_frame` takes from utterances (never their text)
UTTERANCE_COLUMNS = ("utterance_id", "meeting_id", "meeting_date", "speaker_role", "agenda_item",
                     "speaker_name", "speaker_raw")


def _read_parquet(path: str | Path, what: str, columns=None) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise PipelineError(p, f"{what} file not found")
    from pipeline.dataset import columns_of, read_table

    if columns is not None:
        columns = [c for c in columns_of(p) if c in columns]
    return read_table(p, columns=columns)  # a single file or a partitioned dataset directory


def assign_new(model, frame: pd.DataFrame, E: np.ndarray | None, plan: inc.Plan, params: dict,
               labels: dict | None, *, hashes: list[str] | None = None, new_embeddings: np.ndarray | None = None,
               model_dir: Path | None = None) -> tuple[TopicResult | None, inc.Plan]:
    """Earlier sentences keep their saved topic; new ones get ``transform``. Returns (None, refit
    plan) when the new sentences' unfamiliar share passes the drift threshold.

    ``E``: embeddings of every row of ``frame``, or None with ``new_embeddings`` (those of
    ``plan.new_rows`` only) when the ledger holds every earlier sentence's representative score.
    ``model_dir``: the saved per-class / over-time rows are reused for the groups without a new
    sentence (:func:`incremental.group_tables`)."""
    keys = inc.sentence_keys(frame, hashes)
    led = plan.ledger.assign(key=plan.ledger["sentence_id"].astype(str) + "\0" + plan.ledger["text_hash"].astype(str))
    led = led.drop_duplicates("key").set_index("key").reindex(keys.to_numpy())
    topics = led["topic_id"].fillna(-1).to_numpy(dtype=int, copy=True)
    probs = led["topic_prob"].fillna(0.0).to_numpy(dtype=float, copy=True)
    proc = led["is_procedural"].astype("boolean").fillna(False).to_numpy(dtype=bool, copy=True)
    rows = plan.new_rows
    E_new = new_embeddings if new_embeddings is not None else (E[rows] if E is not None else None)
    since = None
    if len(rows):
        sub = frame.iloc[rows]
        model.analyzer_.extend(sub["text"].tolist(), sub["terms"].tolist())
        groups = sub["utterance_id"].astype(str).tolist() if "utterance_id" in sub.columns else None
        t, p, det = model.transform(sub["text"].tolist(), embeddings=E_new, terms=sub["terms"].tolist(),
                                    groups=groups, return_details=True)
        since, over = inc.drift(det, plan.state, params)
        limit = inc.incremental_settings(params)["max_unfamiliar_share"]
        plan.signals.update(unfamiliar_share=since["unfamiliar_share"], max_unfamiliar_share=limit,
                            n_substantive_since_fit=since["substantive"])
        if over:
            return None, inc.Plan(True, f"drift: unfamiliar share of the sentences added since the fit "
                                        f"{since['unfamiliar_share']:.2f} > {limit} "
                                        "(topics.incremental.max_unfamiliar_share)", signals=plan.signals)
        topics[rows], probs[rows], proc[rows] = t, p, det["procedural"]
        plan.state["since_fit"] = {"substantive": since["substantive"], "unfamiliar": since["unfamiliar"]}
    plan.state["meetings_modified"] = plan.signals.get("meetings_modified", [])
    if E is not None:
        scores = tables.representative_scores(E, topics, model.centroid_ids_, model.centroids_)
    else:  # the saved scores of the earlier sentences, the new ones scored alone (row by row)
        scores = led["rep_score"].to_numpy(dtype=float, copy=True)
        if len(rows):
            scores[rows] = tables.representative_scores(E_new, topics[rows], model.centroid_ids_, model.centroids_)
    grouped = inc.group_tables(model.terms_, frame, topics, keys, plan, model_dir) if model_dir else None
    res = build_result(model, frame, topics, probs, proc, params, labels, scores, grouped)
    res.extra["incremental_tables"] = grouped is not None
    res.metrics["n_fit"] = plan.state.get("n_fit")  # the fit sample (absent from states saved before it was recorded)
    plan.state["updates"].append({"at": inc.now(), "n_new_sentences": int(len(rows)),
                                  "meetings_added": plan.signals.get("meetings_added", []),
                                  "meetings_removed": plan.signals.get("meetings_removed", []),
                                  "unfamiliar_share_since_fit": since["unfamiliar_share"] if since else None,
                                  "group_tables": "saved rows + touched groups" if grouped is not None else "all groups"})
    return res, plan


def _fit(frame, E_pair, params, utt, labs, backend, key, reason):
    res = fit_topics(frame, E_pair, params, utterances=utt, labels=labs, backend=backend)
    return res, inc.new_state(res.model, frame, key, reason, n_fit=res.metrics["n_fit"])


def _embeddings_backend(path) -> str:
    """The embedding backend named in the embeddings' metadata, without reading the vectors."""
    from pipeline.embed import DEFAULT_BACKEND, load_embeddings

    p = Path(path)
    if p.is_dir():
        from pipeline.dataset import schema_metadata

        try:
            return schema_metadata(p).get("backend", DEFAULT_BACKEND)
        except PipelineError:
            pass
    return load_embeddings(p, with_backend=True)[2]  # a legacy .npz, or the error naming the file


def _new_embeddings(path, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Embeddings of ``rows`` of ``frame`` only (a filter on their sentence ids, pushed down to the
    Parquet files), in frame order."""
    from pipeline.embed import load_embeddings

    want = frame["sentence_id"].astype(str).to_numpy()[rows]
    if not len(want):
        return np.zeros((0, 0), dtype=np.float32)
    ids, vecs = load_embeddings(path, sentence_ids=want.tolist())
    return align_embeddings(pd.DataFrame({"sentence_id": want}), (ids, vecs))


def run_topics(sentences: str | Path, embeddings: str | Path, out_dir: str | Path, assignments: str | Path,
               model_dir: str | Path, metrics: str | Path, utterances: str | Path | None = None,
               labels: str | Path | None = None, params: dict | None = None, refit: bool = False) -> TopicResult:
    """Library form of ``policy-topics topics``: read inputs, refit or assign, write every output atomically."""
    from pipeline.embed import load_embeddings
    from pipeline.io import output_transaction, stage_timer
    from pipeline.settings import resolve
    from pipeline.topics.evaluate import load_labels

    params = resolve("topics", params).to_params()  # TopicsSettings, a dict of overrides, or None: params.yaml
    sent = _read_parquet(sentences, "sentences")
    for col in ("sentence_id", "text", "terms"):
        if col not in sent.columns:
            raise PipelineError(sentences, f"sentences table lacks column {col!r}")
    backend = _embeddings_backend(embeddings)  # the vectors are read below, only those needed
    utt = _read_parquet(utterances, "utterances", UTTERANCE_COLUMNS) if utterances else None
    labs = load_labels(labels) if labels else None
    model_dir = Path(model_dir)
    with stage_timer("topics") as st:
        t0 = time.perf_counter()
        try:
            frame = prepare_frame(sent, utt)
            sent = None  # from here on the frame holds the rows: one copy of the table in memory, not two
            hashes = inc.text_hashes(frame["text"])
            key = inc.fit_key(params, backend)
            plan = inc.plan(frame, model_dir, key, params, refit, hashes=hashes)
            res = None
            if not plan.refit:
                res, plan = _assign(model_dir, embeddings, frame, plan, params, labs, hashes)
            if plan.refit:
                log.info("fitting the topic model: %s", plan.reason)
                ids, vecs = load_embeddings(embeddings)
                res, state = _fit(frame, (ids, vecs), params, utt, labs, backend, key, plan.reason)
                state["fit_signals"] = plan.signals
            else:
                state = plan.state
        except EmbeddingsMismatch as exc:
            raise PipelineError(embeddings, exc.problem) from exc
        except PipelineError as exc:
            if exc.path is None:
                raise PipelineError(sentences, exc.problem) from exc
            raise
        mode = "fit" if plan.refit else "assign"
        res.metrics["model"] = inc.model_summary(state, mode, plan.reason, plan.signals)
        res.metrics["stage_seconds"] = round(time.perf_counter() - t0, 2)
        state["tables"] = {"over_time_topics": over_time_topics(frame, res.assignments["topic_id"].to_numpy())}
        with output_transaction():  # every output, or none
            _write(res, state, frame, Path(out_dir), assignments, model_dir, metrics, refit=plan.refit, hashes=hashes)
        st.update(mode=mode, sentences=res.metrics["n_sentences"], new=len(plan.new_rows) if not plan.refit else None,
                  topics=res.metrics["n_topics"], outliers=res.metrics["outlier_share"],
                  nmi_test=res.metrics.get("nmi_test"),
                  tables="saved rows + touched groups" if res.extra.get("incremental_tables") else "all groups")
    return res


def _assign(model_dir: Path, embeddings, frame, plan: inc.Plan, params, labs, hashes):
    from pipeline.topics.model import load_topic_model

    try:
        model = load_topic_model(model_dir, lazy=True)  # no BERTopic import / unpickling unless needed
    except Exception as exc:  # noqa: BLE001 - any unloadable pickle means: fit again
        return None, inc.Plan(True, f"saved model unloadable ({type(exc).__name__})", signals=plan.signals)
    log.info("assigning %d new sentence(s) with the saved topic model (fitted %s on %d meeting(s))",
             len(plan.new_rows), plan.state["fitted_at"], plan.state["n_meetings"])
    if "rep_score" in plan.ledger.columns:  # earlier sentences' scores are saved: read new vectors only
        E_new = _new_embeddings(embeddings, frame, plan.new_rows)
        return assign_new(model, frame, None, plan, params, labs, hashes=hashes, new_embeddings=E_new,
                          model_dir=model_dir)
    from pipeline.embed import load_embeddings

    E = align_embeddings(frame, load_embeddings(embeddings))
    return assign_new(model, frame, E, plan, params, labs, hashes=hashes, model_dir=model_dir)


def _write(res: TopicResult, state: dict, frame, out_dir: Path, assignments, model_dir: Path, metrics,
           refit: bool, hashes: list[str] | None = None) -> None:
    from pipeline.io import atomic_path, write_json, write_metrics, write_parquet

    parts = write_assignments(res.assignments, frame, assignments, keep=not refit)
    log.info("sentence topics: %d meeting part(s) written, %d kept unchanged", parts["written"], parts["kept"])
    write_parquet(res.topic_info, out_dir / "topic_info.parquet")
    write_parquet(res.topics_per_class, out_dir / "topics_per_class.parquet")
    write_parquet(res.topics_over_time, out_dir / "topics_over_time.parquet")
    write_parquet(res.topic_hierarchy, out_dir / "topic_hierarchy.parquet")
    write_json(res.metrics["model"], out_dir / "topic_model.json")
    ledger = inc.ledger_frame(frame, res.assignments, hashes, res.extra.get("scores"))
    group_tables = (res.topics_per_class, res.topics_over_time)
    if refit:
        with atomic_path(model_dir, directory=True) as tmp:
            res.model.save(tmp)
            inc.save_state(tmp, state, ledger, direct=True, tables=group_tables)
    else:
        inc.save_state(model_dir, state, ledger, tables=group_tables)
    write_metrics(res.metrics, metrics)  # fit_seconds -> metrics/timings/, not into dvc.lock


def write_assignments(assignments: pd.DataFrame, frame: pd.DataFrame, path: str | Path, keep: bool = True) -> dict:
    """``sentence_topics``: a dataset of one Parquet file per meeting of ``frame`` (the rows'
    sentences, in the same order), :func:`pipeline.dataset.write_dataset`. With ``keep`` (assign
    mode) only new or changed meetings' parts are written; the others keep their files (same bytes
    and mtime). Returns {"written": n, "kept": n}. A single file at ``path`` (the layout left by an
    older version, which wrote one file) is replaced by the dataset."""
    from pipeline.dataset import write_dataset

    keys = frame["meeting_id"].to_numpy() if "meeting_id" in frame.columns else None
    return write_dataset(assignments, path, by=keys, keep=keep, replace_file=True)

