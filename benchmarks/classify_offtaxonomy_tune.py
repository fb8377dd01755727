"""Themes on off-taxonomy text, measured on NON-held-out text only (issue #12: "themes on
off-taxonomy sentences must stay rare"), for a few decision variants of the shipped classifier.

Never reads plenary-2020.json or anything in external/ (those stay held out; the held-out check
is ``benchmarks/classify_offtaxonomy.py --only plenary-2020``, run once after a choice).

Figures per variant:

* ``sample_cross_group``: the sample's leave-one-agenda-item-out micro/macro F1 (the figure in
  metrics/classifier.json -> cross_group; must not get worse);
* ``tokyo_no_theme_tagged``: Tokyo committee label records whose gold labels carry no policy theme
  (none, or procedural only), predicted leave-one-meeting-out (the meeting's labels never seen,
  its text given unlabelled, as ``cross_meeting`` does): share that gets a policy theme;
* ``committee_unlabelled_tagged``: sentences of the committee meetings nobody labelled
  (committee-*.json minus the labelled dates), tagged in their speaker turns by the model fitted
  on all labels: share with a policy theme (not all of them are off-taxonomy: the disaster
  committee sometimes discusses digital tools, so this is an upper bound on false tags).

Variants are applied to the same fitted models' calibrated scores: ``scope_window`` (neighbours
within which the taxonomy's scope rule must match; the taxonomy's is 2) and a shift added to the
policy themes' thresholds, and a window of its own for ``priority_domains`` (the theme the
Tokyo annotators give only to disaster talk with a digital angle). The calibrator and thresholds were fitted with the taxonomy's window,
so a variant worth adopting is confirmed afterwards by a full ``train``.

    nice -n 19 .venv/bin/python benchmarks/classify_offtaxonomy_tune.py [--out FILE]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "tokyo-assembly"
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))  # after the repo: benchmarks/pipeline.py must not shadow the package

WINDOWS = (2, 1, 0)
SHIFTS = (0.0, 0.05, 0.1)


def unmasked(m, df):
    """(calibrated scores before the scope mask, {window: scope mask}) for prepared rows ``df``."""
    RB, Hb, _ = m._rule_block(df)
    E = np.vstack(df["embedding"].to_numpy()) if m.use_embeddings else None
    S_lex, S_emb = m._base_scores(m.bases_, df["terms"].tolist(), RB, E, m._domain_index(df))
    feats = m._meta_features(S_lex, S_emb, Hb, df["group"].to_numpy(), df["text"].str.len().to_numpy(),
                             m._definition_similarity(E))
    P = m._calibrated(feats, len(df))
    keep = m.scope_window_
    masks = {}
    for w in WINDOWS:
        m.scope_window_ = w
        masks[w] = m.allowed(df)
    m.scope_window_ = keep
    return P, masks


def decide(m, P, mask, shift):
    t = m.thresholds_.copy()
    t[~m.exclusive_] += shift
    Yp = ((P * mask) >= t[None, :]).astype(int)
    other = Yp[:, ~m.exclusive_].sum(1) > 0
    Yp[np.ix_(other, m.exclusive_)] = 0
    return Yp


def committee_unlabelled(labelled_meetings: set[str]) -> pd.DataFrame:
    """Speaker turns of the committee meetings that carry no label (never plenary-2020)."""
    from classify_offtaxonomy import split

    rows = []
    for f in sorted(CORPUS.glob("committee-*.json")):
        for mi, meeting in enumerate(json.loads(f.read_text(encoding="utf-8"))):
            y, mo, d = (int(x) for x in str(meeting.get("Date", "0/0/0")).split("/"))
            if f"tokyo-assembly/{f.name}#{y:04d}-{mo:02d}-{d:02d}" in labelled_meetings:
                continue
            for pi, p in enumerate(meeting.get("Proceeding", [])):
                if p.get("Speaker") not in (None, "null"):
                    rows += [{"text": s, "group": f"{f.stem}:{mi}:{pi}", "file": f.stem}
                             for s in split(p.get("Utterance", ""))]
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--max-sentences", type=int, default=6000, help="unlabelled committee sentences (whole turns)")
    args = ap.parse_args()

    from classify_label_record_weight import training_setup

    from pipeline.classify.evaluate import _f1, _fit_predict_held_out
    from pipeline.classify.train_metrics import _held_out_units, label_record_weights

    params, tax, model, X, Y, info = training_setup()
    sw = label_record_weights(X, params.label_record_weight)
    units = _held_out_units(X, params.cross_group)
    X = model.prepare(X).assign(meeting_id=X["meeting_id"].to_numpy(), label_record=X["label_record"].to_numpy())
    policy = ~np.array([t.exclusive for t in tax.themes])
    t0 = time.process_time()
    held = []  # (rows, fitted model) for every held-out unit
    for g in pd.unique(pd.Series([u for u in units if u is not None], dtype=object)):
        te = np.array([u == g for u in units])
        held.append(("sample", te, _fit_predict_held_out(model, X, Y, te, sample_weight=sw)[0]))
    for g in pd.unique(X.loc[X["label_record"], "meeting_id"]):
        te = (X["meeting_id"] == g).to_numpy()
        held.append(("tokyo", te, _fit_predict_held_out(model, X, Y, te, sample_weight=sw)[0]))
    full = model.__class__(**model.get_params()).fit(X, Y, sample_weight=sw)
    U = committee_unlabelled(set(info["label_record_meetings"]))
    turns = U["group"].drop_duplicates().sample(frac=1.0, random_state=0)  # whole turns, seeded sample
    fits = (U.groupby("group").size().reindex(turns).cumsum() <= args.max_sentences).to_numpy()
    U = model.prepare(U[U["group"].isin(set(turns[fits]))].reset_index(drop=True))
    scored = [(kind, te, m, *unmasked(m, X.iloc[np.flatnonzero(te)].reset_index(drop=True))) for kind, te, m in held]
    PU, masksU = unmasked(full, U)
    print(f"fits: {time.process_time() - t0:.0f} CPU-s; {len(U)} unlabelled committee sentences "
          f"({U['group'].nunique()} turns)", flush=True)
    rows = []
    own = np.array(tax.ids) == "priority_domains"
    variants = [(w, shift, w) for w, shift in itertools.product(WINDOWS, SHIFTS)] + [(2, 0.0, 0), (2, 0.0, 1)]
    for w, shift, w_pd in variants:
        Ys, Ps, Yt, Pt = [], [], [], []
        for kind, te, m, P, masks in scored:
            Yp = decide(m, P, np.where(own[None, :], masks[w_pd], masks[w]), shift)
            (Ys if kind == "sample" else Yt).append(Y[te])
            (Ps if kind == "sample" else Pt).append(Yp)
        Ys, Ps, Yt, Pt = (np.vstack(a) for a in (Ys, Ps, Yt, Pt))
        micro, macro = _f1(Ys.astype(bool), Ps.astype(bool))
        none = ~Yt[:, policy].any(1)
        YU = decide(full, PU, np.where(own[None, :], masksU[w_pd], masksU[w]), shift)
        wrong = Pt[none][:, policy]
        rows.append({"scope_window": w, "policy_threshold_shift": shift, "priority_domains_scope_window": w_pd,
                     "tokyo_no_theme_tagged_by_theme": {t: int(c) for t, c in zip(np.array(tax.ids)[policy],
                                                                                    wrong.sum(0)) if c},
                     "sample_cross_group": {"micro_f1": round(micro, 4), "macro_f1": round(macro, 4)},
                     "tokyo_no_theme_tagged": round(float(Pt[none][:, policy].any(1).mean()), 4),
                     "tokyo_micro_f1": round(_f1(Yt.astype(bool), Pt.astype(bool))[0], 4),
                     "committee_unlabelled_tagged": round(float(YU[:, policy].any(1).mean()), 4),
                     "n_tokyo_no_theme": int(none.sum()), "n_committee_unlabelled": int(len(U))})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
