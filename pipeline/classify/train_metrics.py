"""The figures ``train`` writes next to the grouped CV: the grouped CV scored on the corpus's
(the sample's) rows only (``sample_grouped_cv``), leave-one-agenda-item-out (``cross_group``,
with the label-queue round trip), leave-one-meeting-out (``cross_meeting``, also per council
with several meetings), leave-one-council-out (``cross_council``, with a new council's label-queue
round trip) and the ablations; and the training rows' weights (label records of
another council against the corpus's labels)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _held_out_units(X: pd.DataFrame, col: str):
    """Per row, the unit ``cross_group`` holds out (None: never held out). With labels from one
    meeting: the ``col`` value. With several and ``col`` = agenda_item: agenda items of the
    meetings that have two or more (meeting-qualified); rows of other meetings (e.g. label
    records of another council, whose agenda is unknown) always stay in training."""
    units = X[col].astype(str).to_numpy().astype(object)
    if col == "agenda_item" and "meeting_id" in X.columns and X["meeting_id"].nunique() > 1:
        n_items = X.groupby("meeting_id")["agenda_item"].transform("nunique").to_numpy()
        units = np.where(n_items >= 2, (X["meeting_id"].astype(str) + " / " + X[col].astype(str)).to_numpy(),
                         None).astype(object)
    return units


def train_figures(model, X, Y, params, sample_weight=None) -> dict:
    """Everything ``train`` evaluates: the grouped CV pooled over all labelled rows (+ baselines),
    ``sample_grouped_cv``, ``cross_group``, ``cross_meeting`` and (``params.ablations``) the
    ablations, every fit weighted by ``sample_weight``."""
    from pipeline.classify.evaluate import evaluate

    res = evaluate(model, X, Y, n_splits=params.n_splits, n_boot=params.n_boot, seed=params.seed,
                   sample_weight=sample_weight)
    res.pop("oof")
    res["sample_grouped_cv"] = _sample_grouped_cv(model, X, Y, params, sample_weight)
    res["cross_group"] = _cross_group(model, X, Y, params, params.n_boot, sample_weight)
    res["cross_meeting"] = _cross_meeting(model, X, Y, params, sample_weight)
    res["cross_council"] = _cross_council(model, X, Y, params, sample_weight)
    res["transfer"] = transfer_summary(res)
    if params.ablations:
        res["ablations"] = _ablations(model, X, Y, params, sample_weight)
    return res


def label_record_weights(X: pd.DataFrame, weight: float) -> np.ndarray | None:
    """Per row of ``X``: ``weight`` for a label-record row (``X['label_record']``: a labelled
    meeting outside the corpus, e.g. another council's), 1 for a corpus row; None when every
    row weighs 1 (the unweighted fit, bit for bit)."""
    if "label_record" not in X.columns or float(weight) == 1.0 or not X["label_record"].any():
        return None
    return np.where(X["label_record"].to_numpy(dtype=bool), float(weight), 1.0)


def corpus_folds(label_record, groups, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices: GroupKFold over the corpus rows' ``groups`` (speaker turns);
    the label-record rows are in every fold's training part and in no test part."""
    from pipeline.classify.evaluate import _folds

    record = np.asarray(label_record, dtype=bool)
    corpus, always = np.flatnonzero(~record), np.flatnonzero(record)
    return [(np.sort(np.concatenate([corpus[tr], always])), corpus[te])
            for tr, te in _folds(np.asarray(groups)[corpus], n_splits)]


def _sample_grouped_cv(model, X, Y, params, sample_weight=None) -> dict | None:
    """The grouped CV scored on the corpus's labelled rows only (the sample: the figure the issue's
    "sample grouped CV" means): ``n_splits`` GroupKFold folds over the corpus rows' speaker turns;
    the label-record rows (another council) are training rows in every fold and never scored.
    None without label records (then the pooled CV is this figure)."""
    from pipeline.classify.evaluate import bootstrap_ci, cross_val_predict, no_policy_theme_tagged, prf

    if "label_record" not in X.columns or not X["label_record"].any() or X["label_record"].all():
        return None
    record = X["label_record"].to_numpy(dtype=bool)
    X = model.prepare(X.reset_index(drop=True))
    groups = X["group"].to_numpy()
    folds = corpus_folds(record, groups, params.n_splits)
    corpus, always = np.flatnonzero(~record), np.flatnonzero(record)
    _, Yp = cross_val_predict(model, X, Y, folds, sample_weight)
    tax = model._load_taxonomy()
    ids = tax.ids
    r = prf(Y[corpus], Yp[corpus])
    return {"scheme": f"GroupKFold ({len(folds)} folds) over the speaker turns of the corpus's labelled "
                      "sentences (the sample); label-record rows (another council) in training in every fold, "
                      "never scored",
            "micro_f1": round(r["micro_f1"], 4), "macro_f1": round(r["macro_f1"], 4),
            "ci95": bootstrap_ci(Y[corpus], Yp[corpus], groups[corpus], n_boot=params.n_boot, seed=params.seed),
            "per_label_f1": {t: round(float(r["f1"][j]), 4) for j, t in enumerate(ids)},
            "no_policy_theme_tagged": no_policy_theme_tagged(Y[corpus], Yp[corpus], tax)["share"],
            "n_scored": int(len(corpus)), "n_always_training": int(len(always))}


def _cross_group(model, X, Y, params, n_boot, sample_weight=None) -> dict | None:
    """Leave-one-agenda-item-out (``classify.cross_group``; agenda items of labelled corpus
    meetings), plus the label-queue round trip on each held-out unit large enough for a full
    queue. Leave-one-meeting-out is :func:`_cross_meeting`."""
    from pipeline.classify.evaluate import cross_group, simulate_queue

    col = params.cross_group
    if col not in X.columns:
        return None
    units = _held_out_units(X, col)
    if len({u for u in units if u is not None}) < 2:
        return None
    what = "meeting" if col == "meeting_id" else "agenda item"
    res = cross_group(model, X, Y, units, n_boot=n_boot, seed=params.seed, what=what, sample_weight=sample_weight)
    res.pop("oof")
    n = params.queue_size
    plain_model = model.__class__(**{**model.get_params(), "use_coding_rules": False})
    sents = _queue_sentences(X)
    sims = []
    for g, size in pd.Series([u for u in units if u is not None]).value_counts().items():
        if size >= 3 * n and not str(g).endswith("(none)"):
            sim = simulate_queue(model, X, Y, units, g, n=n, sentences=sents, sample_weight=sample_weight)
            # the same round trip without the coding rules written on this meeting: closer to a
            # council whose wording the rules have never seen
            p = simulate_queue(plain_model, X, Y, units, g, n=n, sentences=sents, sample_weight=sample_weight)
            sim["plain_cues_only"] = {k: p[k] for k in ("before_whole_group", "before_rest", "after_rest", "n_rest")}
            sims.append(sim)
    res["label_queue_simulation"] = sims
    res["column"] = col
    # the coding rules were written while reading this meeting: the same scheme with only the
    # taxonomy's plain cue lists (from policy-themes.md) is the less optimistic reading
    plain = cross_group(plain_model, X, Y, units, n_boot=1, seed=params.seed, what=what,
                        sample_weight=sample_weight)
    res["plain_cues_only"] = {"micro_f1": plain["micro_f1"], "macro_f1": plain["macro_f1"],
                              "per_label_f1": plain["per_label_f1"]}
    return res


def _queue_sentences(X: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows as the parse table ``build_queue`` spreads over (turns, speakers)."""
    return pd.DataFrame({"sentence_id": [str(i) for i in range(len(X))], "text": X["text"],
                         "utterance_id": X["group"], "speaker": X.get("speaker", X["group"]),
                         "meeting_id": X.get("meeting_id", "")})


def _cross_meeting(model, X, Y, params, sample_weight=None) -> dict:
    """Leave-one-meeting-out whenever labels come from two or more meetings (the corpus's and
    label records' of meetings outside it): per held-out meeting micro/macro F1 with bootstrap
    CIs (resampling turns), n sentences, the mean over meetings and the pooled figure."""
    from pipeline.classify.evaluate import cross_group

    meetings = X["meeting_id"].astype(str) if "meeting_id" in X.columns else pd.Series([""] * len(X))
    if meetings.nunique() < 2:
        return {"n_meetings": int(meetings.nunique()),
                "note": "labels come from one meeting: leave-one-meeting-out needs labels from two or more "
                        "(see cross_group for leave-one-agenda-item-out)"}
    res = cross_group(model, X, Y, meetings.to_numpy(), n_boot=params.n_boot, seed=params.seed, what="meeting",
                      per_group_ci=True, sample_weight=sample_weight)
    oof = res.pop("oof")
    if "label_record" in X.columns and X["label_record"].any():
        # the label records' meetings (another council) pooled: a meeting never seen, its council seen
        from pipeline.classify.evaluate import no_policy_theme_tagged, prf

        rec = X["label_record"].to_numpy(dtype=bool)
        r = prf(Y[rec], oof["pred"][rec])
        res["label_record_meetings_pooled"] = {
            "micro_f1": round(r["micro_f1"], 4), "macro_f1": round(r["macro_f1"], 4), "n_sentences": int(rec.sum()),
            "no_policy_theme_tagged": no_policy_theme_tagged(Y[rec], oof["pred"][rec], model._load_taxonomy())}
    res["n_meetings"] = res.pop("n_groups")
    res["meetings"] = res.pop("groups")
    res["mean_over_meetings"] = res.pop("mean_over_groups")
    # a council (source file, the part of a meeting id before '#') with several labelled meetings,
    # held out whole: no label of that council at all (the other meetings are the zero-shot case's
    # training data)
    sources = meetings.str.split("#", n=1).str[0]
    multi = [s for s, g in meetings.groupby(sources) if g.nunique() > 1]
    if multi and sources.nunique() > 1:
        units = np.where(sources.isin(multi), sources, None).astype(object)
        by = cross_group(model, X, Y, units, n_boot=params.n_boot, seed=params.seed, what="source (council)",
                         per_group_ci=True, sample_weight=sample_weight)
        res["by_source"] = {"scheme": by["scheme"], "sources": by["groups"]}
    return res


def _cross_council(model, X, Y, params, sample_weight=None) -> dict | None:
    """Leave-one-council-out: each council (``X['domain']``, :func:`pipeline.labels.council_of`) held
    out whole -- trained on the other councils' labels only, its text given unlabelled: a council
    never seen, scored (with ``classify.domain_adaptation``) by the weights all councils share.
    None with fewer than two councils."""
    from pipeline.classify.evaluate import cross_group

    if "domain" not in X.columns or X["domain"].nunique() < 2:
        return None
    councils = X["domain"].astype(str).to_numpy(dtype=object)
    res = cross_group(model, X, Y, councils, n_boot=params.n_boot,
                      seed=params.seed, what="council", per_group_ci=True, sample_weight=sample_weight)
    res.pop("oof")
    res["councils"] = res.pop("groups")
    res.pop("n_groups")
    res["label_queue_simulation"] = [council_round_trip(model, X, Y, c, params.queue_size, sample_weight)
                                     for c in sorted(set(councils))
                                     if (councils == c).sum() >= 3 * params.queue_size]
    return res


def council_round_trip(model, X: pd.DataFrame, Y: np.ndarray, council: str, n: int, sample_weight=None) -> dict:
    """A new council in one sitting: the label-queue round trip (:func:`simulate_queue`) with
    ``council`` held out whole -- fitted without any of its labels (its text unlabelled), ``n``
    of its sentences queued and answered with their gold labels, refitted; scored before and
    after on its sentences not queued. The held-out council plays the user's corpus, so its
    rows weigh 1 (a label record's ``label_record_weight`` would mute the answers); the other
    councils' rows keep ``sample_weight``."""
    from pipeline.classify.evaluate import simulate_queue

    held_out = X["domain"].astype(str).to_numpy(dtype=object)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=float).copy()
    w[held_out == council] = 1.0
    return simulate_queue(model, X, Y, held_out, council, n=n, sentences=_queue_sentences(X), sample_weight=w)


def transfer_summary(res: dict) -> dict | None:
    """The transfer figure ``classify.domain_adaptation`` and ``label_record_weight`` were chosen
    on (benchmarks/classify_council_transfer.py): the mean macro- (and micro-) F1 of the sample's
    leave-one-agenda-item-out, each council held out whole, and the label records' meetings held
    out one at a time (pooled)."""
    parts = {}
    if res.get("cross_group"):
        parts["sample_leave_one_agenda_item_out"] = res["cross_group"]
    for c, r in ((res.get("cross_council") or {}).get("councils") or {}).items():
        parts[f"council_held_out: {c}"] = r
    lr = (res.get("cross_meeting") or {}).get("label_record_meetings_pooled")
    if lr:
        parts["label_record_meetings_held_out"] = lr
    if len(parts) < 2:
        return None
    return {"macro_f1": round(float(np.mean([r["macro_f1"] for r in parts.values()])), 4),
            "micro_f1": round(float(np.mean([r["micro_f1"] for r in parts.values()])), 4),
            "parts": {k: {"micro_f1": r["micro_f1"], "macro_f1": r["macro_f1"]} for k, r in parts.items()},
            "note": "mean over the parts; the criterion (fixed before running) for classify.domain_adaptation and "
                    "label_record_weight, with sample_grouped_cv >= 0.80 micro and macro as a constraint"}


def _ablations(model, X, Y, params, sample_weight=None) -> dict:
    """The shipped configuration minus one signal, same folds (cheap: single C values, no bootstrap,
    no baselines; compare with ``ablations.reference``, the full configuration run the same way)."""
    from pipeline.classify.evaluate import evaluate

    out = {}
    # cheaper: single C values (the grids' middle) instead of the nested grids
    mid = {k: (v[len(v) // 2],) if isinstance(v, (list, tuple)) and len(v) > 1 else v
           for k, v in model.get_params().items() if k in ("C_lex", "C_emb")}
    cm = model.C_meta
    mid["C_meta"] = cm[len(cm) // 2] if isinstance(cm, (list, tuple)) else cm
    variants = {"without_embeddings": {"use_embeddings": False}, "without_context": {"use_context": False},
                "without_rules": {"use_rules": False},
                # the coding rules were written while reading the sample: this row shows the model
                # with only the taxonomy's plain cue lists (a less optimistic estimate for new councils)
                "plain_cues_only": {"use_coding_rules": False},
                "without_definitions": {"use_definitions": False}}
    variants = {"reference": {"use_rules": True}, **variants}
    for name, kw in variants.items():
        if name != "reference" and not getattr(model, next(iter(kw))):
            continue
        r = evaluate(model.__class__(**{**model.get_params(), **mid, **kw}), X, Y, n_splits=params.n_splits,
                     n_boot=1, seed=params.seed, with_baselines=False, sample_weight=sample_weight)
        out[name] = {"macro_f1": r["macro_f1"], "micro_f1": r["micro_f1"]}
    return out
