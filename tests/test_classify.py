"""Policy-theme classifier (issue 6) on the real sample labels.

Runs without pipeline outputs (clean clone): sentences come from data/labels
(text, speaker, idx), speaker turns are consecutive runs of one speaker, terms come
from the parse library. The heavy CV test uses the lexical+rules+context model
(no embeddings: encoding 547 sentences with USE takes ~1 min on a busy machine);
the embedding path is exercised on a small subset.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
LABELS = ROOT / "data" / "labels"
TAXONOMY = ROOT / "configs" / "taxonomy.yaml"

DEFAULT_IDS = ["last_mile_aging", "coverage_gap", "infrastructure_funding", "new_network_tech", "digital_platform",
               "priority_domains", "dx_talent", "cybersecurity", "stakeholder_collaboration", "demo_to_deployment",
               "data_sharing", "procedural"]


def _sample_rows() -> list[dict]:
    rows = []
    for p in sorted(LABELS.glob("sample_*.jsonl")):  # the sample's own labels, not other councils' records
        rows += [json.loads(line) for line in p.open(encoding="utf-8") if line.strip()]
    rows.sort(key=lambda r: r["idx"])
    return rows


@pytest.fixture(scope="module")
def sample(labelled_sample):
    """(X, Y) for every labelled sample sentence, in document order, grouped by speaker turn
    (the session fixture of conftest.py, shared with the hostile-input tests)."""
    return labelled_sample


@pytest.fixture(scope="module")
def fitted(theme_model):
    """Lexical+rules+context classifier fit on the sample (session fixture of conftest.py)."""
    return theme_model


# ------------------------------------------------------------------ rules + taxonomy
def test_rule_language_and_or_not_near():
    from pipeline.classify.rules import RuleSet, RuleSyntaxError, compile_rule

    rs = RuleSet([("a", "老朽化"), ("a", "ケーブルテレビ AND 移行"), ("b", "near(データ, 連携, 5)"),
                  ("c", "セキュリティ NOT 情報セキュリティポリシー"), ("d", "AI"), ("e", "(防災 OR 災害) AND NOT 震災"),
                  ("f", "seq(人材, 育成, 3)"), ("g", "/光ファイバー?/")])
    texts = ["設備の老朽化が進み、ケーブルテレビの移行が課題", "データを他の自治体と連携する",
             "情報セキュリティポリシーの改定", "ＡＩを活用する", "MAILを送る", "震災と災害対応", "育成すべき人材",
             "光ファイバの整備", "セキュリティ研修"]
    R, ev = rs.hits(texts)
    hits = [set(np.flatnonzero(r)) for r in R.toarray()]
    assert hits[0] == {0, 1} and ev[0]["a"][0] == "老朽化"
    assert hits[1] == {2}
    assert hits[2] == set()          # NOT excludes
    assert hits[3] == {4}            # full-width ＡＩ normalised
    assert hits[4] == set()          # ASCII cue only as a whole word
    assert hits[5] == set()          # AND NOT
    assert hits[6] == set()          # seq is ordered
    assert hits[7] == {7} and hits[8] == {3}
    # lemma matching: the rule sees content terms too
    R, _ = RuleSet([("x", "向ける")]).hits(["実現に向けた議論"], [["実現", "向ける", "議論"]])
    assert R.toarray()[0, 0] == 1
    for bad in ("A AND", "(A OR B", "near(A)", "", "near(a, b, x)"):
        with pytest.raises(RuleSyntaxError):
            compile_rule(bad)


def test_taxonomy_ids_are_the_contract():
    from pipeline.classify.taxonomy import load_taxonomy

    tax = load_taxonomy(TAXONOMY)
    assert tax.ids == DEFAULT_IDS
    md = SHARED / "policy-themes.md"
    if md.exists():
        ids = re.findall(r"^\| `([a-z_]+)` \|", md.read_text(encoding="utf-8"), flags=re.M)
        assert ids == tax.ids
    for t in tax.themes:
        assert t.ja and t.en and t.definition and (t.cues or t.rules)


def test_bad_taxonomy_names_the_file(tmp_path):
    from pipeline.classify.taxonomy import load_taxonomy
    from pipeline.errors import PipelineError

    p = tmp_path / "tax.yaml"
    p.write_text("themes:\n  - id: a\n    rules: ['x AND']\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="tax.yaml.*bad rule"):
        load_taxonomy(p)
    p.write_text("themes:\n  - id: a\n  - id: a\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="duplicate"):
        load_taxonomy(p)


# ------------------------------------------------------------------ labels
def test_labels_keyed_by_text_survive_resplitting(tmp_path):
    from pipeline.labels import load_labels, match_labels

    d = tmp_path / "labels"
    d.mkdir()
    (d / "a.jsonl").write_text(
        json.dumps({"text": "ＣＹＤＥＲの 受講者が増えた。", "source": "s", "labels": ["cybersecurity"]}, ensure_ascii=False)
        + "\n" + json.dumps({"text": "データ連携基盤を整備する。", "source": "s", "labels": ["data_sharing"]},
                            ensure_ascii=False) + "\n"
        + json.dumps({"text": "どこにもない文。", "source": "s", "labels": []}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    # a returned label-queue CSV: ';'-separated ids, '-' = no theme, empty = not labelled yet
    pd.DataFrame({"text": ["本日はありがとうございます。", "未記入の文。", "人材育成が必要だ。"],
                  "labels": ["-", "", "dx_talent;bogus_id"]}).to_csv(d / "queue_done.csv", index=False)
    (d / "agreement").mkdir()  # sub-folders are not training data
    (d / "agreement" / "x.jsonl").write_text('{"text": "別の文。", "labels": ["procedural"]}\n', encoding="utf-8")
    ls = load_labels(d, DEFAULT_IDS)
    assert len(ls) == 5 and ls.unknown_ids == {"bogus_id": 1}
    sents = pd.DataFrame({"text": ["CYDERの受講者が増えた。", "前置きです。データ連携基盤を整備する。そして続きます。",
                                   "本日はありがとうございます。", "人材育成が必要だ。"]})
    m = match_labels(sents, ls)
    assert m.rows == {0: ["cybersecurity"], 1: ["data_sharing"], 2: [], 3: ["dx_talent"]}
    assert m.n_exact == 3 and m.n_contained == 1 and len(m.unmatched) == 1


def test_annotator_agreement_from_overlap():
    from pipeline.labels import agreement

    if not (LABELS / "agreement").is_dir():
        pytest.skip("no double-annotated overlap")
    a = agreement(LABELS, DEFAULT_IDS)
    assert a is not None and a["n_sentences"] >= 20
    assert 0.5 < a["micro_f1"] <= 1.0 and 0.0 < a["macro_f1"] <= 1.0


# ------------------------------------------------------------------ estimator
def test_theme_classifier_is_a_sklearn_estimator(fitted):
    from sklearn.base import clone

    from pipeline.classify.model import ThemeClassifier

    m = ThemeClassifier(C_lex=(1.0,), use_context=False)
    assert m.get_params()["C_lex"] == (1.0,)
    m.set_params(context_window=5)
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "classes_")
    c2 = clone(fitted)
    assert not hasattr(c2, "bases_") and c2.get_params() == fitted.get_params()
    assert list(fitted.classes_) == DEFAULT_IDS and len(fitted.thresholds_) == len(DEFAULT_IDS)
    assert ((0 < fitted.thresholds_) & (fitted.thresholds_ < 1)).all()
    import pipeline.classify as pkg  # the documented entry points (docs/ARCHITECTURE.md)

    assert callable(pkg.evaluate) and callable(pkg.tag_texts) and pkg.ThemeClassifier is ThemeClassifier


def test_grouped_cv_meets_targets_and_beats_baselines(sample):
    """The issue's bar: grouped-CV macro-F1 >= 0.75, micro-F1 >= 0.80, baselines beaten in the same run."""
    from pipeline.classify.evaluate import _folds, evaluate
    from pipeline.classify.model import ThemeClassifier

    X, Y = sample
    groups = X["group"].to_numpy()
    for tr, te in _folds(groups, 5):  # adjacent sentences of a turn never straddle train and test
        assert not set(groups[tr]) & set(groups[te])
    res = evaluate(ThemeClassifier(use_embeddings=False), X, Y, n_splits=5, n_boot=200)
    print("grouped CV (no embeddings):", res["macro_f1"], res["micro_f1"], res["ci95"])
    # the issue bar is 0.75 / 0.80 for the shipped configuration (metrics/classifier.json);
    # this guard leaves a little room for upstream term changes
    assert res["macro_f1"] >= 0.75 and res["micro_f1"] >= 0.78
    assert set(res["per_label"]) == set(DEFAULT_IDS)
    lo, hi = res["ci95"]["micro_f1"]
    assert lo <= res["micro_f1"] <= hi
    for name in ("tfidf_char_lr", "cue_rules"):
        b = res["baselines"][name]
        assert res["macro_f1"] > b["macro_f1"] and res["micro_f1"] > b["micro_f1"], name


# ------------------------------------------------------------------ tagging
def test_tag_unseen_text_valid_ids_empty_and_long_lines(fitted):
    from pipeline.classify.tagging import tag_texts

    texts = ["公設の光ファイバ網が老朽化し、更改費用を誰が負担するかが課題です。",
             "", "   ",
             "自治体職員向けのサイバーセキュリティ演習を拡充し、CSIRTの体制を強化すべきだ。",
             "地域のデジタル人材の育成と外部人材の確保が重要です。" * 2000,
             "本日はお忙しいところありがとうございます。"]
    out = tag_texts(texts, model=fitted)
    assert len(out) == len(texts)
    for r in out:
        assert set(r["themes"]) <= set(DEFAULT_IDS) and set(r["scores"]) == set(DEFAULT_IDS)
        assert set(r["evidence"]) == set(r["themes"])
        assert all(0.0 <= p <= 1.0 for p in r["scores"].values())
    assert "last_mile_aging" in out[0]["themes"]
    assert out[1]["themes"] == [] and out[2]["themes"] == []
    assert "cybersecurity" in out[3]["themes"] and out[3]["evidence"]["cybersecurity"]
    assert "dx_talent" in out[4]["themes"]
    assert out[5]["themes"] == []


def test_tokyo_assembly_off_taxonomy_gets_few_themes(fitted):
    """A different council (mostly off-taxonomy): themes must be sparse."""
    from pipeline.classify.tagging import tag_texts

    corpus = SHARED / "corpora" / "tokyo-assembly"
    files = sorted(corpus.glob("*.json")) if corpus.is_dir() else []
    if not files:
        pytest.skip("Tokyo Assembly corpus not available")
    sents = []
    for f in files:
        for meeting in json.loads(f.read_text(encoding="utf-8")):
            for p in meeting.get("Proceeding", []):
                if p.get("Speaker") in (None, "null"):
                    continue
                sents += [s.strip() + "。" for s in p.get("Utterance", "").replace("\n", "").split("。")
                          if len(s.strip()) >= 8]
    sample = random.Random(0).sample(sents, 200)
    out = tag_texts(sample, model=fitted)
    any_share = np.mean([bool(r["themes"]) for r in out])
    policy_share = np.mean([bool(set(r["themes"]) - {"procedural"}) for r in out])
    print(f"Tokyo Assembly: {any_share:.3f} of 200 sentences get any theme, {policy_share:.3f} a policy theme")
    assert policy_share <= 0.10 and any_share <= 0.20


def test_taxonomy_swap_no_default_ids_hard_coded(sample, tmp_path):
    """Another council's categories: only its IDs come out."""
    from pipeline.classify.model import ThemeClassifier
    from pipeline.classify.tagging import tag_texts

    X, Y = sample
    tax = tmp_path / "other.yaml"
    tax.write_text(
        "name: other council\nthemes:\n"
        "  - id: security\n    ja: 安全\n    en: Security\n    definition: security\n"
        "    cues: [セキュリティ, CYDER]\n    rules: ['インシデント OR CSIRT']\n"
        "  - id: people\n    ja: 人\n    en: People\n    definition: people\n    cues: [人材]\n",
        encoding="utf-8")
    Y2 = Y[:, [DEFAULT_IDS.index("cybersecurity"), DEFAULT_IDS.index("dx_talent")]]
    m = ThemeClassifier(taxonomy=str(tax), use_embeddings=False, C_lex=(1.0,)).fit(X, Y2)
    assert list(m.classes_) == ["security", "people"]
    out = tag_texts(["サイバーセキュリティのインシデント対応を強化する。", "デジタル人材を確保する。"], model=m)
    assert out[0]["themes"] == ["security"] and out[1]["themes"] == ["people"]


def test_embedding_backend_path_on_unseen_text(sample):
    """The shipped configuration (with sentence embeddings) fits and tags new text."""
    from pipeline.classify.features import encode_texts
    from pipeline.classify.model import ThemeClassifier
    from pipeline.classify.tagging import tag_texts

    X, Y = sample
    idx = np.flatnonzero(X["group"].isin(X["group"].unique()[:12]).to_numpy())[:120]
    Xs = X.iloc[idx].reset_index(drop=True)
    Xs["embedding"] = list(encode_texts(Xs["text"].tolist()))
    assert Xs["embedding"][0].shape == (512,)
    m = ThemeClassifier(C_lex=(1.0,), C_emb=(1.0,)).fit(Xs, Y[idx])
    out = tag_texts(["CYDERの受講を全ての自治体に広げたい。", ""], model=m)
    assert set(out[0]["themes"]) <= set(DEFAULT_IDS) and out[1]["themes"] == []


# ------------------------------------------------------------------ tables, queue, CLI
def test_classify_tables_contract_and_queue(fitted, sample):
    from pipeline.classify.queue import build_queue
    from pipeline.classify.tagging import classify_tables
    from pipeline.labels import text_key

    X, _ = sample
    sents = pd.DataFrame({"sentence_id": [f"m:{g}:s{i:03d}" for i, g in enumerate(X["group"])],
                          "meeting_id": "m", "utterance_id": X["group"], "speaker": "x",
                          "text": X["text"], "terms": X["terms"]})
    utts = pd.DataFrame({"utterance_id": X["group"].unique(), "meeting_id": "m"})
    topics = pd.DataFrame({"sentence_id": sents["sentence_id"], "topic_id": 3, "topic_label": "3_a_b", "topic_prob": 0.5})
    t = classify_tables(fitted, sents, topics=topics.iloc[:-5], utterances=utts)
    s = t["sentences"]
    for col in ("meeting_id", "utterance_id", "speaker", "text", "topic_id", "topic_label", "themes",
                "theme_scores", "theme_evidence"):
        assert col in s.columns
    assert s["topic_id"].iloc[-1] == -1 and s["topic_id"].iloc[0] == 3
    assert json.loads(s["theme_scores"].iloc[0]).keys() == set(DEFAULT_IDS)
    u = t["utterances"]
    shares = [json.loads(x) for x in u["theme_shares"]]
    assert all(sum(d.values()) <= 1.0001 for d in shares)
    assert all(set(d) == set(th) for d, th in zip(shares, u["themes"]))
    labelled = {text_key(x) for x in X["text"].iloc[:100]}
    q = build_queue(fitted, s, t["_proba"], t["_rule_evidence"], labelled, n=25)
    assert len(q) == 25 and "labels" in q.columns and (q["labels"] == "").all()
    assert not set(q["text"]) & set(X["text"].iloc[:100])
    assert q["uncertainty"].between(0, 1).all()
    # everything labelled: the queue turns into a review of labels the model contradicts
    gold = {text_key(x): [t for t, v in zip(DEFAULT_IDS, y) if v] for x, y in zip(X["text"], sample[1])}
    r = build_queue(fitted, s, t["_proba"], t["_rule_evidence"], gold, n=10)
    assert len(r) > 0 and r["reason"].str.startswith("review").all() and (r["labels"] != "").all()


def test_cli_tag_and_label_queue(fitted, sample, tmp_path):
    import joblib

    X, _ = sample
    model = tmp_path / "classifier.joblib"
    joblib.dump(fitted, model)
    inp = tmp_path / "in.txt"
    inp.write_text("データ連携基盤を広域で共同利用する。\n\nありがとうございました。\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "-q", "tag", str(inp), "--model", str(model)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 3 and [x["text"] for x in lines][1] == ""
    assert "data_sharing" in lines[0]["themes"] and lines[2]["themes"] == []
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "tag", str(inp), "--model", str(tmp_path / "nope")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "nope" in r.stderr
    sents = pd.DataFrame({"sentence_id": [f"s{i}" for i in range(60)], "utterance_id": X["group"].iloc[:60],
                          "text": X["text"].iloc[:60], "terms": X["terms"].iloc[:60]})
    sp = tmp_path / "sents.parquet"
    sents.to_parquet(sp)
    out = tmp_path / "queue.csv"
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "-q", "label-queue", "--model", str(model),
                        "--sentences", str(sp), "--labels", str(tmp_path), "-n", "10", "-o", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    q = pd.read_csv(out, keep_default_na=False)
    assert len(q) == 10 and {"text", "labels", "predicted", "rule_hits", "reason"} <= set(q.columns)


# ------------------------------------------------------------------ issue 12: new councils
def test_definitions_prototypes_are_training_rows_and_loaded():
    from pipeline.classify.taxonomy import load_taxonomy

    tax = load_taxonomy(TAXONOMY)
    pairs = tax.prototype_texts()
    assert {tid for tid, _ in pairs} == set(DEFAULT_IDS)  # every theme has a definition example
    assert all(text.strip() for _, text in pairs)


def test_unlabelled_rows_self_training(sample):
    """Rows of Y that are all -1 are unlabelled text; confident predictions become extra rows."""
    from pipeline.classify.model import ThemeClassifier

    X, Y = sample
    Yu = Y.copy()
    Yu[400:] = -1  # the last part of the meeting given as unlabelled text
    m = ThemeClassifier(use_embeddings=False, C_lex=(1.0,), C_meta=(0.3,)).fit(X, Yu)
    assert m.n_pseudo_ and set(m.n_pseudo_) <= set(DEFAULT_IDS) and sum(m.n_pseudo_.values()) > 0
    off = ThemeClassifier(use_embeddings=False, C_lex=(1.0,), C_meta=(0.3,), self_training=False).fit(X, Yu)
    assert off.n_pseudo_ == {}
    bad = Y.copy()
    bad[0, 0] = -1  # partly labelled row: an error, not a silent guess
    with pytest.raises(ValueError):
        ThemeClassifier(use_embeddings=False).fit(X, bad)


def test_cross_group_held_out_part_is_never_trained_on(sample):
    """Leave-one-group-out: each part is scored by a model fitted without its labels."""
    from pipeline.classify.evaluate import cross_group
    from pipeline.classify.model import ThemeClassifier

    X, Y = sample
    part = np.where(np.arange(len(X)) < 300, "first", "second")
    res = cross_group(ThemeClassifier(use_embeddings=False, C_lex=(1.0,), C_meta=(0.3,)), X, Y, part, n_boot=50)
    assert set(res["groups"]) == {"first", "second"}
    assert sum(g["n_sentences"] for g in res["groups"].values()) == len(X)
    assert 0.4 <= res["micro_f1"] <= 1.0 and 0.0 <= res["macro_f1"] <= 1.0
    assert res["oof"]["pred"].shape == Y.shape


def test_queue_spreads_speakers_and_skips_near_duplicates(fitted, sample):
    from pipeline.classify.queue import NEAR_DUPLICATE_JACCARD, _trigrams, build_queue
    from pipeline.labels import text_key

    X, _ = sample
    texts = list(X["text"]) + [X["text"].iloc[200] + "。", X["text"].iloc[200]]  # near-duplicates appended
    groups = list(X["group"]) + ["dup", "dup"]
    sents = pd.DataFrame({"sentence_id": [f"s{i}" for i in range(len(texts))], "meeting_id": "m",
                          "utterance_id": groups, "speaker": groups, "text": texts})
    P = fitted.predict_proba(pd.DataFrame({"text": texts, "group": groups}))
    _, ev = fitted.score_details(pd.DataFrame({"text": texts, "group": groups}))
    q = build_queue(fitted, sents, P, ev, frozenset(), n=40)
    assert len(q) == 40 and q["text"].is_unique
    grams = [_trigrams(text_key(t)) for t in q["text"]]
    for i in range(len(grams)):
        for j in range(i):
            assert len(grams[i] & grams[j]) / len(grams[i] | grams[j]) < NEAR_DUPLICATE_JACCARD
    assert q["speaker"].nunique() >= 15  # spread over the meeting's turns, not one long presentation
    # new meetings first: once meeting m is (mostly) labelled, only the new meeting is queued,
    # although it shares stock phrases with the labels
    sents2 = sents.copy()
    sents2.loc[len(sents) - 60:, "meeting_id"] = "new"
    labelled = frozenset(text_key(t) for t in texts[:len(texts) - 200])
    q2 = build_queue(fitted, sents2, P, ev, labelled, n=10)
    assert (q2["meeting_id"] == "new").all()


def test_cli_tag_json_lines_turn_context(fitted, tmp_path):
    import joblib

    model = tmp_path / "classifier.joblib"
    joblib.dump(fitted, model)
    recs = [{"id": "a1", "text": "自治体のCSIRTの体制強化とインシデント対応の訓練を進めます。", "turn": 1},
            {"id": "a2", "text": "これについても引き続き取り組みます。", "turn": 1},
            {"id": "b1", "text": "ありがとうございました。", "turn": 2}]
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "-q", "tag", str(inp), "--model", str(model)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a1", "a2", "b1"] and [o["turn"] for o in out] == [1, 1, 2]
    assert "cybersecurity" in out[0]["themes"] and out[2]["themes"] == []
    from pipeline.classify.tagging import tag_records, tag_texts, turn_groups

    assert turn_groups([1, 1, 2, None, None, 1]) == ["turn0", "turn0", "turn1", "turn2", "turn3", "turn4"]
    # the follow-up sentence is scored with its turn's context, not alone
    alone = tag_texts([recs[1]["text"]], model=fitted)[0]["scores"]["cybersecurity"]
    in_turn = tag_records(recs, model=fitted)[1]["scores"]["cybersecurity"]
    assert in_turn > alone
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": "ok"}\n{"id": 2, "text": \n', encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "tag", str(bad), "--model", str(model)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "line 2" in r.stderr and r.stdout == ""
    bad.write_text('{"id": 1, "text": "ok", "council": "x"}\n{"id": 2, "text": "ok", "council": 3}\n', encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "tag", str(bad), "--model", str(model)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "line 2" in r.stderr and "council" in r.stderr and r.stdout == ""


def test_label_queue_round_trip_new_labels_count(fitted, sample, tmp_path):
    """label-queue -> fill `labels` -> CSV into the labels folder -> train: the answers count."""
    import shutil

    import joblib

    X, Y = sample
    labels = tmp_path / "labels"
    labels.mkdir()
    for p in LABELS.glob("sample_*.jsonl"):  # the sample's labels, minus the last 120 sentences (the "new" part)
        rows = [json.loads(x) for x in p.open(encoding="utf-8") if x.strip()]
        keep = [r for r in rows if r["idx"] < len(X) - 120]
        (labels / p.name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep),
                                     encoding="utf-8")
    shutil.copytree(LABELS / "agreement", labels / "agreement")
    n = len(X)
    sents = pd.DataFrame({"sentence_id": [f"s{i}" for i in range(n)], "utterance_id": X["group"],
                          "meeting_id": np.where(np.arange(n) < n - 120, "old", "new"), "speaker": X["group"],
                          "text": X["text"], "terms": X["terms"]})
    sp = tmp_path / "sents.parquet"
    sents.to_parquet(sp)
    model = tmp_path / "classifier.joblib"
    joblib.dump(fitted, model)
    q = tmp_path / "queue.csv"
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "-q", "label-queue", "--model", str(model),
                        "--sentences", str(sp), "--labels", str(labels), "-n", "20", "-o", str(q)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    queue = pd.read_csv(q, keep_default_na=False)
    assert len(queue) == 20 and (queue["meeting_id"] == "new").all()
    gold = {t: ";".join(DEFAULT_IDS[j] for j in np.flatnonzero(y)) or "-" for t, y in zip(X["text"], Y)}
    queue["labels"] = [gold[t] for t in queue["text"]]  # the annotator answers
    from pipeline.classify.commands import training_data
    from pipeline.classify.taxonomy import load_taxonomy

    tax = load_taxonomy(TAXONOMY)
    _, Y0, _ = training_data(sents, labels, tax)
    queue.to_csv(labels / "queue_answered.csv", index=False)  # saved into data/labels/
    _, Y1, info = training_data(sents, labels, tax)  # what `dvc repro` (train) reads
    assert len(Y1) == len(Y0) + 20 and "queue_answered.csv" in info["files"]
    assert info["unmatched"] == 0


def test_per_meeting_cache_tags_only_new_meetings(fitted, sample, tmp_path):
    """Adding a meeting tags only that meeting; results equal tagging everything at once."""
    from pipeline.classify.cache import tag_by_meeting
    from pipeline.classify.tagging import classify_tables

    X, _ = sample
    turns = list(pd.unique(X["group"]))
    meeting = X["group"].map({g: f"m{i * 5 // len(turns)}" for i, g in enumerate(turns)})
    sents = pd.DataFrame({"sentence_id": [f"s{i:04d}" for i in range(len(X))], "meeting_id": meeting,
                          "utterance_id": X["group"], "text": X["text"], "terms": X["terms"]})
    four = sents[sents["meeting_id"] != "m4"]
    classify_tables(fitted, four, model_key="model-a", cache_dir=tmp_path)
    Xf = X.assign(group=X["group"].astype(str))
    tags, P, ev, stats = tag_by_meeting(fitted, Xf, meeting.tolist(), "model-a", tmp_path)
    assert stats == {"meetings": 5, "cached": 4, "computed": 1}
    ref_tags, ref_P, ref_ev = fitted.tag(Xf, return_details=True)
    assert tags == ref_tags and np.allclose(P, ref_P, atol=0) and json.dumps(ev, default=list) == json.dumps(
        ref_ev, default=list)
    cached = classify_tables(fitted, sents, model_key="model-a", cache_dir=tmp_path)["sentences"]
    plain = classify_tables(fitted, sents)["sentences"]
    pd.testing.assert_frame_equal(cached, plain)
    # another model never reads these entries
    assert tag_by_meeting(fitted, Xf, meeting.tolist(), "model-b", tmp_path)[3]["computed"] == 5


def test_train_reuses_the_classifier_until_labels_or_pool_change(labelled_sample, tmp_path, monkeypatch):
    """`train` re-runs whenever sentences.parquet changes (DVC), but a new unlabelled meeting changes
    neither the labelled data nor, until the corpus outgrows the self-training pool by 25 %, the
    model: the saved classifier is reused byte for byte (so classify's per-meeting cache stays warm)."""
    from pipeline.classify.model import ThemeClassifier
    from pipeline.cli import main

    src = SHARED / "corpora" / "tokyo-assembly" / "committee-olympic.json"
    if not src.exists():
        pytest.skip("Tokyo Assembly corpus not available")
    X, _ = labelled_sample
    turns = list(pd.unique(X["group"]))
    labelled = pd.DataFrame({"sentence_id": [f"s{i:04d}" for i in range(len(X))], "utterance_id": X["group"],
                             "meeting_id": X["group"].map({g: f"m{i * 4 // len(turns)}" for i, g in enumerate(turns)}),
                             "text": X["text"], "terms": X["terms"]})
    tokyo = [s.strip() + "。" for p in json.loads(src.read_text(encoding="utf-8"))[0]["Proceeding"][:60]
             for s in p.get("Utterance", "").replace("\n", "").split("。") if len(s.strip()) >= 8]

    def meeting(k: int) -> pd.DataFrame:
        texts = tokyo[k * 10:(k + 1) * 10]
        return pd.DataFrame({"sentence_id": [f"t{k}-{i}" for i in range(len(texts))], "utterance_id": f"t{k}",
                             "meeting_id": f"tokyo{k}", "text": texts, "terms": [[] for _ in texts]})

    monkeypatch.setenv("POLICY_TOPICS_CACHE_DIR", str(tmp_path / "cache"))
    labels = tmp_path / "labels"  # the sample's labels only: other councils' records would add a GiNZA run
    labels.mkdir()
    for p in LABELS.glob("sample_*.jsonl"):
        shutil.copy(p, labels / p.name)
    from pipeline.classify import commands
    from pipeline.settings import load_settings

    small = load_settings().classify.model_copy(update={  # one C each, no embeddings: a lean fit
        "C_lex": [1.0], "C_emb": [1.0], "C_meta": [0.3], "inner_folds": 2, "use_embeddings": False})
    monkeypatch.setattr(commands, "_settings", lambda: small)
    fits = []
    real_fit = ThemeClassifier.fit
    monkeypatch.setattr(ThemeClassifier, "fit", lambda self, *a, **k: fits.append(1) or real_fit(self, *a, **k))

    def train(frames: list[pd.DataFrame]) -> bytes:
        pd.concat(frames, ignore_index=True).to_parquet(tmp_path / "sentences.parquet")
        assert main(["-q", "train", "--sentences", str(tmp_path / "sentences.parquet"), "--labels", str(labels),
                     "--taxonomy", str(TAXONOMY), "--model", str(tmp_path / "model.joblib"),
                     "--metrics", str(tmp_path / "metrics.json"), "--no-eval"]) == 0
        return (tmp_path / "model.joblib").read_bytes()

    first = train([labelled, meeting(0)])  # 5 meetings
    n = len(fits)
    assert n >= 1
    assert train([labelled, meeting(0), meeting(1)]) == first and len(fits) == n  # 1 new of 5: reused
    train([labelled, meeting(0), meeting(1), meeting(2)])  # 2 new of 5 > 25 %: the pool is refreshed
    assert len(fits) > n


def test_cache_key_from_the_embedding_matrix_is_the_same():
    """classify's per-meeting cache key computed from the embedding matrix equals the one from the
    row list (so the cache written before stays valid)."""
    from pipeline.classify.cache import _digest

    rng = np.random.default_rng(0)
    E = rng.normal(size=(7, 5)).astype(np.float32)
    X = pd.DataFrame({"text": [f"文{i}" for i in range(7)], "terms": [["地域"]] * 7, "group": ["u1"] * 7,
                      "embedding": list(E)})
    assert _digest(X, E) == _digest(X)
    assert _digest(X.iloc[2:5], E[2:5]) == _digest(X.iloc[2:5]) != _digest(X)


def test_classify_stage_writes_one_part_per_meeting_equal_to_the_whole_table(fitted, sample, tmp_path, monkeypatch):
    """classify reads and writes meeting by meeting (parse-like dataset in, one file per meeting out);
    the tables and the label queue equal tagging the whole table at once; a failure half-way leaves
    the previous outputs as they were."""
    import pipeline.classify.tagging as tagging
    from pipeline.classify.queue import build_queue
    from pipeline.classify.stream import classify_dataset
    from pipeline.dataset import partitions, read_table, write_dataset
    from pipeline.labels import text_key

    X, _ = sample
    turns = list(pd.unique(X["group"]))
    meeting = X["group"].map({g: f"m{i * 5 // len(turns)}" for i, g in enumerate(turns)})
    sents = pd.DataFrame({"sentence_id": [f"{m}:s{i:04d}" for i, m in enumerate(meeting)], "meeting_id": meeting,
                          "utterance_id": X["group"].astype(str), "speaker": "x", "text": X["text"],
                          "terms": X["terms"]})
    utts = sents.drop_duplicates("utterance_id")[["utterance_id", "meeting_id"]].reset_index(drop=True)
    topics = pd.DataFrame({"sentence_id": sents["sentence_id"], "topic_id": np.arange(len(sents)) % 4,
                           "topic_label": "t", "topic_prob": 0.5, "is_procedural": False})
    write_dataset(sents, tmp_path / "sentences.parquet")  # one file per meeting, as parse writes
    utts.to_parquet(tmp_path / "utterances.parquet")     # one file, as ingest writes
    from pipeline.topics.runner import write_assignments

    write_assignments(topics, sents, tmp_path / "st.parquet")
    labelled = {text_key(x) for x in X["text"].iloc[:150]}
    out = tmp_path / "processed"
    run = classify_dataset(fitted, tmp_path / "sentences.parquet", out, topics=tmp_path / "st.parquet",
                           utterances=tmp_path / "utterances.parquet", labelled=labelled, queue_size=20)
    assert run.meetings == 5 and run.sentences == len(sents)
    assert [k for k, _ in partitions(out / "sentences.parquet")] == ["m0", "m1", "m2", "m3", "m4"]
    assert [k for k, _ in partitions(out / "utterances.parquet")] == ["m0", "m1", "m2", "m3", "m4"]
    whole = tagging.classify_tables(fitted, sents, topics=topics, utterances=utts)
    pd.testing.assert_frame_equal(read_table(out / "sentences.parquet"), whole["sentences"])
    pd.testing.assert_frame_equal(read_table(out / "utterances.parquet"), whole["utterances"])
    q = build_queue(fitted, whole["sentences"], whole["_proba"], whole["_rule_evidence"], labelled, n=20)
    pd.testing.assert_frame_equal(run.queue, q)
    assert len(q) == 20 and not set(q["text"]) & set(X["text"].iloc[:150])
    before = {f.name: f.read_bytes() for f in (out / "sentences.parquet").iterdir()}
    real, calls = tagging.classify_tables, []

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(tagging, "classify_tables", failing)
    with pytest.raises(RuntimeError):
        classify_dataset(fitted, tmp_path / "sentences.parquet", out, topics=tmp_path / "st.parquet",
                         utterances=tmp_path / "utterances.parquet")
    assert {f.name: f.read_bytes() for f in (out / "sentences.parquet").iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["label_queue.csv", "sentences.parquet", "utterances.parquet"]
