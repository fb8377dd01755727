"""Evaluation that cannot flatter.

* outer ``GroupKFold`` over speaker turns (adjacent sentences never straddle train
  and test); every tuning step (C, thresholds, calibration) happens inside
  ``ThemeClassifier.fit`` on the training folds only;
* micro/macro F1 with bootstrap CIs resampling whole turns;
* per-label precision/recall/F1/support, most-confused label pairs;
* baselines recomputed on the same folds.
"""
from __future__ import annotations

import logging
import sys
import time
from collections import Counter

import numpy as np
import pandas as pd

log = logging.getLogger("policy_topics.classify")


def _f1(Y: np.ndarray, P: np.ndarray) -> tuple[float, float]:
    """(micro F1, macro F1 over the labels with gold support) by sklearn.metrics."""
    from sklearn.metrics import f1_score

    present = Y.sum(0) > 0
    micro = f1_score(Y, P, average="micro", zero_division=0)
    # labels=: macro over the labels with support (a one-column slice would be scored as binary)
    macro = f1_score(Y, P, labels=np.flatnonzero(present), average="macro", zero_division=0) if present.any() else 0.0
    return float(micro), float(macro)


def multilabel_counts(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """[tp, fp, fn, support] per label (4 x labels)."""
    return np.stack([(Y & P).sum(0), (~Y & P).sum(0), (Y & ~P).sum(0), Y.sum(0)])


def f1_from_counts(tp, fp, fn, support) -> tuple[float, float]:
    """(micro F1, macro F1 over labels with support) from summed counts: the bootstrap's fast path."""
    den = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, den, out=np.zeros_like(den, dtype=float), where=den > 0)
    present = support > 0
    micro = 2 * tp.sum() / max(den.sum(), 1)
    return float(micro), float(f1[present].mean()) if present.any() else 0.0


def prf(Y: np.ndarray, P: np.ndarray) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    Y = np.asarray(Y, dtype=bool)
    P = np.asarray(P, dtype=bool)
    prec, rec, f1, support = precision_recall_fscore_support(Y, P, average=None, zero_division=0)
    micro, macro = _f1(Y, P)
    return {"micro_f1": micro, "macro_f1": macro,
            "precision": prec, "recall": rec, "f1": f1, "support": support, "predicted": P.sum(0)}


def per_label_table(m: dict, ids) -> dict[str, dict]:
    """``{theme: {precision, recall, f1, support, predicted}}`` of a :func:`prf` result (4 decimals),
    as ``metrics/classifier.json`` and ``policy-topics score`` report it."""
    return {t: {"precision": round(float(m["precision"][j]), 4), "recall": round(float(m["recall"][j]), 4),
                "f1": round(float(m["f1"][j]), 4), "support": int(m["support"][j]),
                "predicted": int(m["predicted"][j])} for j, t in enumerate(ids)}


def calibration(Y, P, n_bins: int = 10) -> dict:
    """Brier score and expected calibration error of the out-of-fold theme scores (all labels pooled)."""
    y = np.asarray(Y, dtype=float).ravel()
    p = np.asarray(P, dtype=float).ravel()
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    table = []
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
            table.append({"bin": f"{b / n_bins:.1f}-{(b + 1) / n_bins:.1f}", "n": int(m.sum()),
                          "mean_score": round(float(p[m].mean()), 4), "positive_rate": round(float(y[m].mean()), 4)})
    return {"brier": round(float(np.mean((p - y) ** 2)), 4), "ece": round(float(ece), 4), "reliability": table}


def bootstrap_ci(Y, P, groups, n_boot: int = 1000, seed: int = 42, alpha: float = 0.05) -> dict:
    """Percentile CIs for micro/macro F1, resampling whole groups (turns) with replacement."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    Y = np.asarray(Y, dtype=bool)
    P = np.asarray(P, dtype=bool)
    # per-group confusion counts, so a replicate is a sum (sklearn per replicate costs ~100x more);
    # f1_from_counts equals sklearn's f1_score (tests/test_classify.py checks it)
    counts = np.array([multilabel_counts(Y[m], P[m]) for m in members], dtype=float)  # groups x 4 x labels
    micro, macro = [], []
    for _ in range(n_boot):
        mi, ma = f1_from_counts(*counts[rng.integers(0, len(members), len(members))].sum(0))
        micro.append(mi)
        macro.append(ma)
    q = [alpha / 2 * 100, (1 - alpha / 2) * 100]
    return {"micro_f1": [round(float(x), 4) for x in np.percentile(micro, q)],
            "macro_f1": [round(float(x), 4) for x in np.percentile(macro, q)],
            "n_boot": n_boot, "unit": "speaker turn"}


def confusion_pairs(Y, P, ids, top: int = 10, with_none: bool = False) -> list[dict]:
    """Most frequent (gold label missed, other label predicted instead) pairs in one sentence.

    With ``with_none``: only the pairs involving "(none)" (a label missed with nothing
    predicted, or a label predicted for a sentence with no gold label)."""
    Y = np.asarray(Y, dtype=bool)
    P = np.asarray(P, dtype=bool)
    c: Counter = Counter()
    for y, p in zip(Y, P):
        missed = np.flatnonzero(y & ~p)
        wrong = np.flatnonzero(p & ~y)
        for a in missed:
            for b in wrong:
                c[(ids[a], ids[b])] += 1
        if len(missed) and not p.any():
            for a in missed:
                c[(ids[a], "(none)")] += 1
        if len(wrong) and not y.any():
            for b in wrong:
                c[("(none)", ids[b])] += 1
    c = Counter({k: v for k, v in c.items() if ("(none)" in k) == with_none})
    return [{"gold": a, "predicted": b, "pair": f"{a} -> {b}", "count": n} for (a, b), n in c.most_common(top)]


def _folds(groups, n_splits):
    from sklearn.model_selection import GroupKFold

    k = max(2, min(n_splits, len(set(groups))))
    return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups))


def cross_val_predict(model, X: pd.DataFrame, Y: np.ndarray, folds, sample_weight=None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold (P, decisions) for the ``te`` rows of each (tr, te) fold; a fold's model is
    fitted on its ``tr`` rows (with their ``sample_weight``)."""
    from sklearn.base import clone

    P = np.zeros(Y.shape)
    Yp = np.zeros(Y.shape, dtype=int)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    for tr, te in folds:
        m = clone(model).fit(X.iloc[tr].reset_index(drop=True), Y[tr], sample_weight=None if sw is None else sw[tr])
        P[te] = m.predict_proba(X.iloc[te].reset_index(drop=True))
        Yp[te] = m.decide(P[te])
    return P, Yp


def _baseline_lr(Xtr, Ytr, Xte):
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((Xte.shape[0], Ytr.shape[1]), dtype=int)
    for j in range(Ytr.shape[1]):
        y = Ytr[:, j]
        if y.min() == y.max():
            out[:, j] = y[0]
            continue
        m = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000, solver="liblinear").fit(Xtr, y)
        out[:, j] = m.predict(Xte)
    return out


def baselines(X: pd.DataFrame, Y: np.ndarray, folds, taxonomy, ids) -> dict[str, dict]:
    """The issue's baselines on the same folds: char n-gram TF-IDF + LR, embedding + LR, cue rules."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from pipeline.classify.rules import RuleSet

    res = {}
    texts = X["text"].tolist()
    P = np.zeros(Y.shape, dtype=int)
    for tr, te in folds:
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2)
        A = vec.fit_transform([texts[i] for i in tr])
        P[te] = _baseline_lr(A, Y[tr], vec.transform([texts[i] for i in te]))
    res["tfidf_char_lr"] = (P, "TF-IDF char 2-4-grams + logistic regression (balanced), per label, threshold 0.5")
    if "embedding" in X.columns:
        E = np.vstack(X["embedding"].to_numpy())
        P = np.zeros(Y.shape, dtype=int)
        for tr, te in folds:
            P[te] = _baseline_lr(E[tr], Y[tr], E[te])
        res["embedding_lr"] = (P, "sentence embeddings + logistic regression (balanced), per label, threshold 0.5")
    terms = X["terms"].tolist() if "terms" in X.columns else None
    for name, include_rules, desc in (
            ("cue_rules", False, "the taxonomy's plain cue lists: theme if any cue occurs (no learning)"),
            ("coding_rules", True, "cue lists + coding rules (AND/OR/NOT/near): theme if any rule fires (no learning)")):
        rs = RuleSet(taxonomy.rule_specs(include_rules=include_rules))
        R, _ = rs.hits(texts, terms)
        M = np.zeros((len(rs), len(ids)), dtype=int)
        for k, (tid, _) in enumerate(rs.specs):
            M[k, ids.index(tid)] = 1
        res[name] = (((R @ M) > 0).astype(int), desc)
    out = {}
    for name, (Pb, desc) in res.items():
        m = prf(Y, Pb)
        out[name] = {"macro_f1": round(m["macro_f1"], 4), "micro_f1": round(m["micro_f1"], 4),
                     "per_label_f1": {t: round(float(m["f1"][j]), 4) for j, t in enumerate(ids)},
                     "description": desc}
    return out


def evaluate(model, X: pd.DataFrame, Y: np.ndarray, *, n_splits: int = 5, n_boot: int = 1000,
             seed: int = 42, with_baselines: bool = True, sample_weight=None) -> dict:
    """Grouped CV of ``model`` (+ baselines on the same folds, unweighted). ``X['group']`` = speaker
    turn. ``sample_weight`` weighs the training rows of each fold; every sentence scores once."""
    t0 = time.perf_counter()
    taxonomy = model._load_taxonomy()
    ids = taxonomy.ids
    X = model.prepare(X)  # terms/embeddings once, shared by all folds
    groups = X["group"].to_numpy()
    folds = _folds(groups, n_splits)
    P, Yp = cross_val_predict(model, X, Y, folds, sample_weight)
    m = prf(Y, Yp)
    ci = bootstrap_ci(Y, Yp, groups, n_boot=n_boot, seed=seed)
    per_label = per_label_table(m, ids)
    none_gold = ~Y.any(1)
    none_pred = ~Yp.any(1)
    res = {
        "macro_f1": round(m["macro_f1"], 4),
        "micro_f1": round(m["micro_f1"], 4),
        "ci95": ci,
        "per_label": per_label,
        "abstention": {
            "gold_no_label": int(none_gold.sum()), "predicted_no_label": int(none_pred.sum()),
            "agreement_on_no_label": round(float((none_gold & none_pred).sum() / max(none_gold.sum(), 1)), 4),
        },
        "exact_match": round(float((Y == Yp).all(1).mean()), 4),
        "calibration": calibration(Y, P),
        "confused_pairs": confusion_pairs(Y, Yp, ids),
        "missed_or_spurious": confusion_pairs(Y, Yp, ids, with_none=True),
        "cv": {"scheme": "GroupKFold over speaker turns", "n_splits": len(folds), "n_sentences": int(len(Y)),
               "n_groups": int(len(set(groups))),
               "macro_over": "themes with at least one labelled sentence",
               "nested_tuning": "C grid, calibration and per-label thresholds "
               "chosen by inner GroupKFold inside each training fold"},
    }
    if with_baselines:
        res["baselines"] = baselines(X, Y, folds, taxonomy, ids)
    res["oof"] = {"proba": P, "pred": Yp}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def no_policy_theme_tagged(Y, Yp, taxonomy) -> dict:
    """Precision on off-taxonomy text: of the sentences whose gold labels carry no policy theme
    (none, or only an exclusive one such as procedural), the share predicted with a policy theme."""
    policy = ~np.array([t.exclusive for t in taxonomy.themes])
    none = ~np.asarray(Y, dtype=bool)[:, policy].any(1)
    hit = np.asarray(Yp, dtype=bool)[none][:, policy].any(1)
    return {"n_sentences": int(none.sum()), "share": round(float(hit.mean()), 4) if none.any() else None}


def _fit_predict_held_out(model, X: pd.DataFrame, Y: np.ndarray, test: np.ndarray, extra_train=None,
                          sample_weight=None):
    """Fit a clone on every row outside ``test`` (plus ``extra_train`` rows of the test part, with
    their gold labels); the rest of the test part is passed as unlabelled text (Y = -1), as the
    pipeline passes a new meeting's sentences (every row with its ``sample_weight``). Returns the
    fitted clone and P for ``test`` rows."""
    from sklearn.base import clone

    Yfit = np.asarray(Y, dtype=int).copy()
    unl = test.copy()
    if extra_train is not None:
        unl[extra_train] = False
    Yfit[unl] = -1
    m = clone(model).fit(X, Yfit, sample_weight=sample_weight)
    idx = np.flatnonzero(test)
    return m, m.predict_proba(X.iloc[idx].reset_index(drop=True))


def cross_group(model, X: pd.DataFrame, Y: np.ndarray, held_out, *, n_boot: int = 1000, seed: int = 42,
                what: str = "agenda item", per_group_ci: bool = False, sample_weight=None) -> dict:
    """Leave-one-group-out (e.g. one agenda item, or one meeting): each group is predicted by a
    model that never saw its labels (its text only, unlabelled, as for a new meeting). Returns
    micro/macro F1 over all held-out predictions pooled, per-group figures (with bootstrap CIs
    when ``per_group_ci``) and their mean, and CIs resampling turns. A row whose ``held_out``
    is None is never held out (always training data) and not scored. ``sample_weight`` weighs the
    training rows (scores count every sentence once)."""
    t0 = time.perf_counter()
    tax = model._load_taxonomy()
    ids = tax.ids
    X = model.prepare(X)
    raw = np.asarray(held_out, dtype=object)
    scored = np.array([h is not None for h in raw], dtype=bool)
    held_out = raw.astype(str)
    turns = X["group"].to_numpy()
    P = np.zeros(Y.shape)
    Yp = np.zeros(Y.shape, dtype=int)
    per_group = {}
    for g in pd.unique(held_out[scored]):
        te = scored & (held_out == g)
        m, Pg = _fit_predict_held_out(model, X, Y, te, sample_weight=sample_weight)
        P[te], Yp[te] = Pg, m.decide(Pg)
        r = prf(Y[te], Yp[te])
        per_group[g] = {"n_sentences": int(te.sum()), "n_with_theme": int(Y[te].any(1).sum()),
                        "micro_f1": round(r["micro_f1"], 4), "macro_f1": round(r["macro_f1"], 4),
                        "no_policy_theme_tagged": no_policy_theme_tagged(Y[te], Yp[te], tax),
                        "pseudo_labelled": getattr(m, "n_pseudo_", {})}
        if per_group_ci:
            per_group[g]["ci95"] = bootstrap_ci(Y[te], Yp[te], turns[te], n_boot=n_boot, seed=seed)
    r = prf(Y[scored], Yp[scored])
    res = {
        "scheme": f"leave one {what} out; the held-out {what}'s text is given unlabelled "
                  "(self-training sees it, as `dvc repro` does for a new meeting)",
        "micro_f1": round(r["micro_f1"], 4), "macro_f1": round(r["macro_f1"], 4),
        "ci95": bootstrap_ci(Y[scored], Yp[scored], turns[scored], n_boot=n_boot, seed=seed),
        "per_label_f1": {t: round(float(r["f1"][j]), 4) for j, t in enumerate(ids)},
        "per_label_recall": {t: round(float(r["recall"][j]), 4) for j, t in enumerate(ids)},
        "per_label_precision": {t: round(float(r["precision"][j]), 4) for j, t in enumerate(ids)},
        "no_policy_theme_tagged": no_policy_theme_tagged(Y[scored], Yp[scored], tax),
        "groups": per_group, "n_groups": len(per_group),
        "oof": {"proba": P, "pred": Yp},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if not scored.all():
        res["n_scored"], res["n_always_training"] = int(scored.sum()), int((~scored).sum())
    if per_group_ci:
        res["mean_over_groups"] = {k: round(float(np.mean([g[k] for g in per_group.values()])), 4)
                                   for k in ("micro_f1", "macro_f1")} if per_group else None
    return res


def simulate_queue(model, X: pd.DataFrame, Y: np.ndarray, held_out, group, *, n: int = 50,
                   sentences: pd.DataFrame | None = None, sample_weight=None) -> dict:
    """The label-queue round trip on a held-out group, answered with its gold labels.

    1. fit without the group's labels (its text unlabelled), score the group;
    2. ``build_queue`` picks ``n`` of the group's sentences; their gold labels are added;
    3. refit, score again. Both scores are on the group's sentences NOT in the queue
       (the same sentences before and after), plus the before-score on the whole group."""
    from pipeline.classify.queue import build_queue

    X = model.prepare(X)
    held_out = np.asarray(held_out).astype(str)
    te = held_out == str(group)
    idx = np.flatnonzero(te)
    m0, P0 = _fit_predict_held_out(model, X, Y, te, sample_weight=sample_weight)
    if sentences is None:
        sentences = pd.DataFrame({"sentence_id": [str(i) for i in range(len(X))], "text": X["text"],
                                  "utterance_id": X["group"], "speaker": X["group"]})
    sub = sentences.iloc[idx].reset_index(drop=True)
    _, _, ev, _ = m0._scores_prepared(X.iloc[idx].reset_index(drop=True))
    emb = np.vstack(X["embedding"].iloc[idx].to_numpy()) if "embedding" in X.columns else None
    q = build_queue(m0, sub, P0, ev, frozenset(), n=n, embeddings=emb)
    picked_local = sub.index[sub["sentence_id"].astype(str).isin(set(q["sentence_id"].astype(str)))].to_numpy()
    picked = np.zeros(len(Y), dtype=bool)
    picked[idx[picked_local]] = True
    m1, P1 = _fit_predict_held_out(model, X, Y, te, extra_train=picked, sample_weight=sample_weight)
    rest = ~picked[idx]
    before_rest = prf(Y[idx][rest], m0.decide(P0)[rest])
    after_rest = prf(Y[idx][rest], m1.decide(P1)[rest])
    before_all = prf(Y[idx], m0.decide(P0))
    return {
        "group": str(group), "n_group": int(len(idx)), "n_queued": int(picked.sum()),
        "queued_with_gold_theme": int(Y[picked].any(1).sum()),
        "queued_speakers": int(q["speaker"].nunique()) if "speaker" in q.columns else None,
        "queued_topics": int(q["topic_id"].nunique()) if "topic_id" in q.columns else None,
        "before_whole_group": {"micro_f1": round(before_all["micro_f1"], 4), "macro_f1": round(before_all["macro_f1"], 4)},
        "before_rest": {"micro_f1": round(before_rest["micro_f1"], 4), "macro_f1": round(before_rest["macro_f1"], 4)},
        "after_rest": {"micro_f1": round(after_rest["micro_f1"], 4), "macro_f1": round(after_rest["macro_f1"], 4)},
        "n_rest": int(rest.sum()),
        "note": "rest = the group's sentences not in the queue (scored before and after)",
    }


# ``pipeline.classify.evaluate`` is both this module and the documented entry point
# ``evaluate(...)``: make the module callable so either reading works.
class _CallableModule(sys.modules[__name__].__class__):
    def __call__(self, *args, **kwargs):
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
