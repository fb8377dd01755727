"""Fit the learned part of the NER gate: writes ``pipeline/parse/gate_model.py``.

The hand-written triggers (``pipeline.parse.gate.is_trigger``) miss the long tail of what
GiNZA's ``ner`` tags in minutes: common nouns of ENE's many classes (水門 Facility_Part,
飲料水 Food_Other, 顔 Animal_Part, 認知症 Animal_Disease, 生徒 Position_Vocation ...). Rules for
them would be lists of words. Instead a logistic regression learns, from full NER's own output on
a *tuning* corpus, which other tokens are likely inside an entity, from what the tokenizer already
gives: the token's static GiNZA vector (ja_ginza's 300-d table: similar words score alike, so it
generalises past the words seen), its Sudachi POS tag and a few character-class flags.

Training data: the first ``--chars`` speech characters of ``committee-olympic.json`` (the file
the triggers were tuned on), tokenised as the stage does, full tok2vec + ner as the labels: a
token is positive when it is inside an entity full NER predicts (known people excluded: they are
pre-set). Only tokens the rules do not already trigger are used. ``LogisticRegression``
(lbfgs, fixed ``C``, balanced classes) is deterministic for fixed data.

The threshold is picked from out-of-fold scores (folds = meetings): the lowest share of extra
trigger tokens whose out-of-fold coverage of the entities the rules leave uncovered reaches
``--target`` -- no entity recall is measured here, and the measured texts (the sample, the first
200k speech chars of committee-disaster-prevention.json) and the held-out plenary-2020.json are
never read.

    .venv/bin/python benchmarks/ner_gate_fit.py --chars 400000          # rewrites pipeline/parse/gate_model.py

The output is a plain Python module (weights as literals): reviewable in a diff, part of the parse
stage's code digest (so a refit invalidates the parse cache), no pickle.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
OUT = ROOT / "pipeline" / "parse" / "gate_model.py"


def dataset(docs, ref, is_rule, tags):
    """Feature rows per doc, and for the tokens the rules do not trigger: labels and (doc, token) indices."""
    from pipeline.parse.gate import features_of

    rows, labels, where = [], [], []
    for k, (d, ents) in enumerate(zip(docs, ref)):
        inside = np.zeros(len(d), dtype=bool)
        for s, e, _ in ents:
            inside[s:e] = True
        rule = is_rule[k]
        for i in range(len(d)):
            if not rule[i]:
                where.append((k, i))
                labels.append(inside[i])
        rows.append(features_of(d, tags))
    return rows, np.array(labels), where


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", default="committee-olympic.json")
    ap.add_argument("--chars", type=int, default=400_000)
    ap.add_argument("--C", type=float, default=0.1)
    ap.add_argument("--target", type=float, default=0.6,
                    help="out-of-fold share of rule-uncovered entities the learned triggers must cover")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--cache", help="keep the tokenised docs and full-NER labels here (a directory) for refits")
    args = ap.parse_args(argv)

    from collections import Counter

    from ner_gate_analysis import load, run_ner, tokenised
    from sklearn.linear_model import LogisticRegression

    from pipeline.parse import resolve_params
    from pipeline.parse.gate import NerGate
    from pipeline.vocab import person_suffixes

    params = resolve_params()
    cache = Path(args.cache) / f"{Path(args.file).stem}-{args.chars}" if args.cache else None
    if cache and (cache / "meta.json").exists():
        from spacy.tokens import DocBin

        from pipeline.parse.models import load_nlp

        nlp = load_nlp(params["model"], ner=True)
        docs = list(DocBin().from_disk(cache / "docs.spacy").get_docs(nlp.vocab))
        meta = json.loads((cache / "meta.json").read_text())
        keys, ref = meta["keys"], [[tuple(x) for x in r] for r in meta["ref"]]
    else:
        utts, meets = load(args.file, 0, args.chars)
        nlp, docs, keys = tokenised(utts, meets, params)
        print(f"{args.file}: {len(docs):,} sentences, {sum(map(len, docs)):,} tokens; full NER ...",
              file=sys.stderr, flush=True)
        known = [{(e.start, e.end) for e in d.ents} for d in docs]
        ref = [[x for x in r if (x[0], x[1]) not in kn] for r, kn in zip(run_ner(nlp, docs), known)]
        if cache:
            from spacy.tokens import DocBin

            cache.mkdir(parents=True, exist_ok=True)
            DocBin(attrs=["ORTH", "TAG", "NORM", "LEMMA", "ENT_IOB", "ENT_TYPE"], docs=docs).to_disk(cache / "docs.spacy")
            (cache / "meta.json").write_text(json.dumps({"keys": [list(k) for k in keys], "ref": ref},
                                                        ensure_ascii=False, default=str))
    meeting_of = np.array([str(k[0]).split(":")[0] for k in keys])
    gate = NerGate(margin=int(params["ner_context"]), roles=frozenset(person_suffixes()))
    is_rule = []
    for d in docs:
        m = np.zeros(len(d), dtype=bool)
        m[gate.triggers(d)] = True
        is_rule.append(m)
    counts = Counter(t.tag_ for d, m in zip(docs, is_rule) for t, r in zip(d, m) if not r)
    tags = tuple(sorted(t for t, n in counts.items() if n >= 20))
    feats, y, where = dataset(docs, ref, is_rule, tags)
    X = np.vstack([feats[k][i] for k, i in where]) if where else np.zeros((0, 0))
    groups = meeting_of[[k for k, _ in where]]
    print(f"{len(y):,} non-trigger tokens, {int(y.sum()):,} inside entities", file=sys.stderr, flush=True)

    def fit(Xa, ya):
        return LogisticRegression(C=args.C, class_weight="balanced", max_iter=2000).fit(Xa, ya)

    # out-of-fold scores, meetings as folds (at most 5)
    uniq = sorted(set(groups))
    folds = [uniq[j::5] for j in range(min(5, len(uniq)))]
    oof = np.zeros(len(y))
    for f in folds:
        te = np.isin(groups, f)
        oof[te] = fit(X[~te], y[~te]).decision_function(X[te])
    # entities the rules leave uncovered (no token triggered) and their tokens' rows
    row_of = {ki: r for r, ki in enumerate(where)}
    uncovered = [[row_of[(k, i)] for i in range(s, e)]
                 for k, ents in enumerate(ref) for s, e, _ in ents if not is_rule[k][s:e].any()]
    n_tok = sum(map(len, docs))
    print(f"{len(uncovered)} of {sum(map(len, ref))} entities have no rule trigger", file=sys.stderr)
    best = None
    for thr in np.quantile(oof, np.linspace(0.5, 0.99, 50)):
        cov = np.mean([oof[r].max() > thr for r in uncovered]) if uncovered else 1.0
        share = float((oof > thr).sum()) / n_tok
        print(f"  threshold {thr:7.3f}: extra triggers {share:.3f} of all tokens, covers {cov:.3f} of uncovered",
              file=sys.stderr)
        if cov >= args.target:
            best = (float(thr), share, float(cov))
    if best is None:
        raise SystemExit("no threshold reaches --target")
    model = fit(X, y)
    write_module(Path(args.out), model, nlp, tags, best, args, len(docs), len(y))
    print(f"wrote {args.out}: threshold {best[0]:.3f} (out-of-fold: extra triggers {best[1]:.3f} of tokens, "
          f"covers {best[2]:.3f} of the entities the rules miss)")
    return 0


def write_module(path: Path, model, nlp, tags, best, args, n_docs, n_rows) -> None:
    from importlib.metadata import version

    from pipeline.parse.gate import N_CHAR_FEATURES

    w = model.coef_[0]
    n_vec = nlp.vocab.vectors.shape[1]
    vec_w, tag_w, char_w = w[:n_vec], w[n_vec:n_vec + len(tags)], w[n_vec + len(tags):]
    assert len(char_w) == N_CHAR_FEATURES
    def fmt(xs) -> str:  # a tuple literal, wrapped under the line limit
        return textwrap.fill(", ".join(f"{x:.6g}" for x in xs) + ",", 110, initial_indent="    ",
                             subsequent_indent="    ")
    lines = [
        '"""Learned NER-gate weights -- GENERATED by benchmarks/ner_gate_fit.py, do not edit by hand.',
        "",
        f"Fitted on the first {args.chars:,} speech characters of {args.file} ({n_docs:,} sentences,",
        f"{n_rows:,} tokens the rules do not trigger), full GiNZA NER as labels; ja_ginza {version('ja_ginza')},",
        f"LogisticRegression(C={args.C}, class_weight='balanced'); threshold from out-of-fold scores",
        f"(meetings as folds): extra triggers on {best[1]:.3f} of tokens, covering {best[2]:.3f} of the",
        "entities no rule triggers.",
        '"""',
        f"MODEL = {version('ja_ginza')!r}",
        f"THRESHOLD = {best[0]:.6g}",
        f"BIAS = {model.intercept_[0]:.6g}",
        "#: Sudachi tags with a weight (seen 20+ times on non-trigger tokens of the training text)",
        "TAGS = (\n" + textwrap.fill(", ".join(map(repr, tags)) + ",", 110, initial_indent="    ",
                                     subsequent_indent="    ") + "\n)",
        f"#: per dimension of ja_ginza's static vectors ({n_vec})",
        f"VECTOR = (\n{fmt(vec_w)}\n)",
        "#: per Sudachi tag (pipeline.parse.gate.TAGS order; unknown tags: 0)",
        f"TAG = (\n{fmt(tag_w)}\n)",
        "#: pipeline.parse.gate.char_features",
        f"CHAR = (\n{fmt(char_w)}\n)",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
