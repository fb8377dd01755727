"""Labelled sentences of meetings outside the corpus (issue #12): label records anchored to a
speaker ``turn`` become training rows of their own, and ``train`` reports leave-one-meeting-out.

Fast tests use tiny hand-written label files; the slow ones reuse the session fixture of the
sample labels (GiNZA is already loaded for it) with its last part posing as another meeting.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = ROOT / "configs" / "taxonomy.yaml"
IDS = ["last_mile_aging", "coverage_gap", "infrastructure_funding", "new_network_tech", "digital_platform",
       "priority_domains", "dx_talent", "cybersecurity", "stakeholder_collaboration", "demo_to_deployment",
       "data_sharing", "procedural"]
SOURCE = "tokyo-assembly/committee-disaster-prevention.json"


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def _anchored(texts_labels, meeting: str, turns, source: str = SOURCE, annotator: str = "A") -> list[dict]:
    return [{"text": t, "labels": labs, "annotator": annotator, "source": source, "meeting": meeting,
             "turn": f"{meeting}:{turn}", "idx": i} for i, ((t, labs), turn) in enumerate(zip(texts_labels, turns))]


# ------------------------------------------------------------------ fast: loading and matching
def test_anchored_records_stay_rows_and_never_vote_on_corpus_labels(tmp_path):
    from pipeline.labels import load_labels, match_labels

    d = tmp_path / "labels"
    d.mkdir()
    _write(d / "sample_a.jsonl", [{"text": "以上です。", "labels": ["procedural"], "source": "s.txt", "idx": 0},
                                  {"text": "光ファイバの整備を進める。", "labels": ["coverage_gap"], "source": "s.txt",
                                   "idx": 1}])
    tokyo = _anchored([("防災無線のデジタル化を進めます。", ["new_network_tech"]), ("以上です。", []),
                       ("避難所にWi-Fiを整備します。", ["coverage_gap"]), ("以上です。", [])],
                      "2012-05-28", ["u0001", "u0001", "u0002", "u0002"])
    rnd = random.Random(0)
    shuffled = tokyo[:]
    rnd.shuffle(shuffled)  # file order is not document order: idx is
    _write(d / "tokyo_disaster_a.jsonl", shuffled)
    ls = load_labels(d, IDS)
    # the meeting's stock phrase labelled [] does not outvote the corpus's own label of the same words
    assert ls.labels == {"以上です。": ["procedural"], "光ファイバの整備を進める。": ["coverage_gap"]}
    assert [a["idx"] for a in ls.anchored] == [0, 1, 2, 3] and ls.conflicts == 0
    sents = pd.DataFrame({"text": ["光ファイバの整備を進める。", "以上です。"]})
    m = match_labels(sents, ls)
    assert m.rows == {0: ["coverage_gap"], 1: ["procedural"]}  # the corpus labels, exactly as before
    assert [r["text"] for r in m.off_corpus] == [t["text"] for t in tokyo] and m.n_anchored_in_corpus == 0
    assert m.unmatched == [] and ls.all_labels()["防災無線のデジタル化を進めます。"] == ["new_network_tech"]


def test_anchored_meeting_found_in_the_corpus_labels_its_sentences(tmp_path):
    """Once the meeting's minutes are ingested (most of its sentences verbatim in the corpus), its
    records label those sentences like any label, and none is an extra row."""
    from pipeline.labels import load_labels, match_labels

    d = tmp_path / "labels"
    d.mkdir()
    recs = _anchored([("防災無線のデジタル化を進めます。", ["new_network_tech"]), ("以上です。", []),
                      ("避難所にWi-Fiを整備します。", ["coverage_gap"])], "2012-10-05", ["u1", "u1", "u2"])
    _write(d / "tokyo.jsonl", recs)
    sents = pd.DataFrame({"text": ["防災無線のデジタル化を進めます。", "以上です。", "別の文です。"]})
    m = match_labels(sents, load_labels(d, IDS))
    assert m.off_corpus == [] and m.n_anchored_in_corpus == 2
    assert m.rows == {0: ["new_network_tech"], 1: []} and len(m.unmatched) == 1


def test_agreement_pairs_by_source_meeting_and_idx(tmp_path):
    from pipeline.labels import agreement

    d = tmp_path / "labels"
    (d / "agreement").mkdir(parents=True)
    texts = [("防災無線のデジタル化を進めます。", ["new_network_tech"]), ("避難所にWi-Fiを整備します。", ["coverage_gap"])]
    # two meetings of one source, each numbered from idx 0
    _write(d / "tokyo_disaster_a.jsonl", _anchored(texts, "2012-05-28", ["u1", "u2"]) +
           _anchored(texts[::-1], "2012-10-05", ["u1", "u2"]))
    second = _anchored(texts[::-1], "2012-10-05", ["u1", "u2"], annotator="B")
    second[1]["labels"] = ["coverage_gap"]  # B disagrees on 2012-10-05 idx 1
    _write(d / "agreement" / "tokyo_disaster_b.jsonl", second)
    a = agreement(d, IDS)
    assert a["n_sentences"] == 2 and a["exact_match"] == 0.5
    # paired with 2012-10-05's idx 0 (coverage_gap), not with 2012-05-28's idx 0 (new_network_tech)
    assert a["per_label_f1"]["coverage_gap"] == pytest.approx(2 / 3, abs=1e-4)
    assert a["by_file"]["tokyo_disaster_b.jsonl"]["n_sentences"] == 2


def test_held_out_units_keep_other_councils_in_training():
    from pipeline.classify.train_metrics import _held_out_units

    one = pd.DataFrame({"agenda_item": ["(1)", "(1)", "(2)", "(none)"], "meeting_id": ["m"] * 4})
    assert list(_held_out_units(one, "agenda_item")) == ["(1)", "(1)", "(2)", "(none)"]
    two = pd.DataFrame({"agenda_item": ["(1)", "(2)", "(none)", "(none)"], "meeting_id": ["m", "m", "t#d", "t#d"]})
    assert list(_held_out_units(two, "agenda_item")) == ["m / (1)", "m / (2)", None, None]


# ------------------------------------------------------------------ slow: featurising and evaluating
def _split_sample(labelled_sample, n_corpus: int, tmp_path: Path):
    """The sample's first ``n_corpus`` sentences as the corpus (parse-like table, plain labels);
    the rest as label records of a meeting outside it (turn = the fixture's turn, idx order)."""
    X, Y = labelled_sample
    lab = [[IDS[j] for j in np.flatnonzero(y)] for y in Y]
    sents = pd.DataFrame({"sentence_id": [f"s{i}" for i in range(n_corpus)], "utterance_id": X["group"][:n_corpus],
                          "meeting_id": "sample", "speaker": X["group"][:n_corpus], "text": X["text"][:n_corpus],
                          "terms": X["terms"][:n_corpus]})
    d = tmp_path / "labels"
    d.mkdir()
    _write(d / "sample.jsonl", [{"text": X["text"][i], "labels": lab[i], "source": "s.txt", "idx": i}
                                for i in range(n_corpus)])
    recs = [{"text": X["text"][i], "labels": lab[i], "annotator": "A", "source": "pseudo/other.json",
             "meeting": "m2", "turn": X["group"][i], "idx": i} for i in range(n_corpus, len(X))]
    random.Random(1).shuffle(recs)
    _write(d / "other_a.jsonl", recs)
    return sents, d


def test_label_records_featurised_like_the_pipeline_and_cached(labelled_sample, tmp_path, monkeypatch):
    import pipeline.parse
    from pipeline.classify.commands import training_data
    from pipeline.classify.model import ThemeClassifier
    from pipeline.classify.taxonomy import load_taxonomy

    X, Y = labelled_sample
    n = len(X) - 60
    sents, labels = _split_sample(labelled_sample, n, tmp_path)
    monkeypatch.setenv("POLICY_TOPICS_CACHE_DIR", str(tmp_path / "cache"))
    tax = load_taxonomy(TAXONOMY)
    model = ThemeClassifier(use_embeddings=False)
    Xt, Yt, info = training_data(sents, labels, tax, model=model)
    assert info["from_corpus"] == n and info["from_label_records"] == 60 and len(Xt) == len(X)
    assert info["label_record_meetings"] == {"pseudo/other.json#m2": 60}
    tail = Xt.iloc[n:].reset_index(drop=True)
    # document order and turns kept; terms as the parse stage computes them for the same text
    assert tail["text"].tolist() == X["text"][n:].tolist()
    assert tail["terms"].tolist() == [list(t) for t in X["terms"][n:]]
    assert tail["group"].nunique() == X["group"][n:].nunique() and (tail["meeting_id"] == "pseudo/other.json#m2").all()
    assert (Yt[n:] == Y[n:]).all()  # each record its own label (corpus texts: majority over duplicates)

    def refuse(*a, **k):
        raise AssertionError("GiNZA rerun although the label records' features are cached")

    monkeypatch.setattr(pipeline.parse, "terms_for_texts", refuse)
    Xc, _, _ = training_data(sents, labels, tax, model=model)
    assert Xc["terms"].tolist() == Xt["terms"].tolist()


def test_cross_meeting_per_meeting_ci_and_mean(labelled_sample):
    from pipeline.classify.model import ThemeClassifier
    from pipeline.classify.train_metrics import _cross_meeting
    from pipeline.settings import load_settings

    X, Y = labelled_sample
    params = load_settings().classify.model_copy(update={"n_boot": 50})
    model = ThemeClassifier(use_embeddings=False, C_lex=(1.0,), C_meta=(0.3,))
    assert "note" in _cross_meeting(model, X.assign(meeting_id="sample"), Y, params)
    i = np.arange(len(X))
    Xm = X.assign(meeting_id=np.where(i < 400, "sample", np.where(i < 480, "pseudo#m2", "pseudo#m3")))
    res = _cross_meeting(model, Xm, Y, params)
    assert res["n_meetings"] == 3 and set(res["meetings"]) == {"sample", "pseudo#m2", "pseudo#m3"}
    # the council with two meetings is also held out whole
    assert set(res["by_source"]["sources"]) == {"pseudo"} and res["by_source"]["sources"]["pseudo"]["n_sentences"] \
        == len(X) - 400
    assert sum(m["n_sentences"] for m in res["meetings"].values()) == len(X)
    for m in res["meetings"].values():
        lo, hi = m["ci95"]["micro_f1"]
        assert 0.0 <= lo <= m["micro_f1"] + 1e-9 and m["micro_f1"] <= hi + 1e-9
    mean = np.mean([m["micro_f1"] for m in res["meetings"].values()])
    assert res["mean_over_meetings"]["micro_f1"] == pytest.approx(mean, abs=1e-4)
    assert 0.4 <= res["micro_f1"] <= 1.0


def test_stored_training_metrics_read_back_as_written(tmp_path):
    """A reused `train` writes the cached metrics: numpy counts must come back as numbers, not strings."""
    import json

    import numpy as np

    from pipeline.classify.cache import store_training

    model = tmp_path / "m.joblib"
    model.write_bytes(b"x")
    metrics = {"labels": {"label_record_meetings": {"src#2012-05-28": np.int64(306)}}, "micro_f1": np.float64(0.5)}
    store_training(tmp_path / "entry", model, metrics, {"m1"})
    back = json.loads((tmp_path / "entry" / "metrics.json").read_text(encoding="utf-8"))
    assert back == {"labels": {"label_record_meetings": {"src#2012-05-28": 306}}, "micro_f1": 0.5}


# ------------------------------------------------------------------ label records' training weight
def test_label_record_weights_and_corpus_folds():
    """Label-record rows weigh ``label_record_weight`` (1.0: no weights at all, the unweighted fit);
    the sample grouped CV's folds score corpus rows only, keep each turn in one fold and put every
    label-record row in every training part."""
    from pipeline.classify.train_metrics import corpus_folds, label_record_weights
    from pipeline.settings import load_settings

    X = pd.DataFrame({"label_record": [False] * 6 + [True] * 4})
    assert label_record_weights(X, 1.0) is None and label_record_weights(X.assign(label_record=False), 0.5) is None
    assert label_record_weights(X, 0.25).tolist() == [1.0] * 6 + [0.25] * 4
    assert load_settings().classify.label_record_weight > 0
    groups = np.array(["a", "a", "b", "c", "c", "d", "t1", "t1", "t2", "t2"])
    folds = corpus_folds(X["label_record"], groups, 3)
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested.tolist()) == list(range(6))  # every corpus row scored exactly once
    for tr, te in folds:
        assert set(range(6, 10)) <= set(tr.tolist()) and not set(tr.tolist()) & set(te.tolist())
        assert not set(groups[tr]) & set(groups[te])  # a speaker turn never straddles train and test


def test_sample_weight_is_checked():
    from pipeline.classify.model import ThemeClassifier

    X = pd.DataFrame({"text": ["光ファイバの整備を進める。", "以上です。"], "terms": [["光ファイバ", "整備"], []]})
    Y = np.zeros((2, len(IDS)), dtype=int)
    with pytest.raises(ValueError, match="sample_weight"):
        ThemeClassifier(use_embeddings=False).fit(X, Y, sample_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match="sample_weight"):
        ThemeClassifier(use_embeddings=False).fit(X, Y, sample_weight=[1.0])


def test_label_record_weight_damps_another_councils_convention(labelled_sample):
    """Real sentences, a real clash of conventions: "another council" labels the sample's own
    cybersecurity sentences with no theme. Weighted 1, those rows pull the sample's cybersecurity
    scores down; weighted 0.05 the model stays close to the one fitted without them. Weights of 1
    give the unweighted fit."""
    from pipeline.classify.model import ThemeClassifier

    X, Y = labelled_sample
    j = IDS.index("cybersecurity")
    pos = np.flatnonzero(Y[:, j])
    assert len(pos) >= 30
    other = X.iloc[pos].assign(group=lambda d: "other-" + d["group"])  # same text, the other convention
    Xa = pd.concat([X, other], ignore_index=True)
    Ya = np.vstack([Y, np.zeros((len(pos), Y.shape[1]), dtype=int)])
    rec = np.r_[np.zeros(len(X)), np.ones(len(pos))].astype(bool)

    def fit(Xf, Yf, w=None):
        return ThemeClassifier(use_embeddings=False, C_lex=(1.0,), C_meta=(0.3,), self_training=False).fit(
            Xf, Yf, sample_weight=w)

    def cyber(m):
        return float(m.predict_proba(X.iloc[pos])[:, j].mean())

    alone = cyber(fit(X, Y))
    m_even = fit(Xa, Ya)
    even = cyber(m_even)
    damped = cyber(fit(Xa, Ya, np.where(rec, 0.05, 1.0)))
    assert even < alone - 0.1  # the clash is real at weight 1
    assert abs(damped - alone) < abs(even - alone) / 2 and damped > even + 0.05
    ones = fit(Xa, Ya, np.ones(len(Xa)))
    assert np.allclose(ones.predict_proba(X.iloc[:80]), m_even.predict_proba(X.iloc[:80]), atol=1e-6)


def test_no_policy_theme_tagged_counts_only_sentences_without_a_gold_policy_theme():
    from pipeline.classify.evaluate import no_policy_theme_tagged
    from pipeline.classify.taxonomy import load_taxonomy

    tax = load_taxonomy(TAXONOMY)
    p, c = IDS.index("procedural"), IDS.index("cybersecurity")
    Y = np.zeros((4, len(IDS)), dtype=int)
    Y[1, p] = 1  # procedural only: no policy theme
    Y[3, c] = 1  # a policy theme: not counted
    Yp = np.zeros_like(Y)
    Yp[0, p] = 1  # procedural predicted: not a policy theme
    Yp[1, c] = 1  # a policy theme on a procedural sentence
    Yp[3, c] = 1
    assert no_policy_theme_tagged(Y, Yp, tax) == {"n_sentences": 3, "share": pytest.approx(1 / 3, abs=1e-4)}


def test_a_theme_can_need_the_scope_closer_than_the_taxonomy_window():
    """priority_domains needs the digital angle within one sentence (configs/taxonomy.yaml), other
    scoped themes within the taxonomy's two; unscoped themes never need it."""
    from pipeline.classify.model import ThemeClassifier
    from pipeline.classify.taxonomy import load_taxonomy

    tax = load_taxonomy(TAXONOMY)
    assert tax.theme("priority_domains").scope_window == 1 and tax.scope_window == 2
    m = ThemeClassifier(use_embeddings=False)
    m._setup_rules(tax)
    texts = ["防災アプリをデジタルで整備します。", "避難所の運営を見直します。", "備蓄を増やします。", "訓練を行います。",
             "防災について伺います。"]
    df = pd.DataFrame({"text": texts, "terms": [["防災", "アプリ", "デジタル", "整備"], ["避難所", "運営"], ["備蓄"],
                                                ["訓練"], ["防災"]],
                       "group": ["u1"] * 4 + ["u2"]})
    A = m.allowed(df)
    col = {t: A[:, IDS.index(t)].tolist() for t in ("priority_domains", "dx_talent", "new_network_tech")}
    assert col["priority_domains"] == [True, True, False, False, False]
    assert col["dx_talent"] == [True, True, True, False, False]  # the taxonomy's window of 2
    assert col["new_network_tech"] == [True] * 5  # requires_scope: false


def _scope_allows_alone(texts: list[str], theme: str) -> list[bool]:
    """Whether the shipped taxonomy's scope gate allows ``theme`` on each text, each a turn of its
    own (no neighbour lends the scope)."""
    from pipeline.classify.model import ThemeClassifier
    from pipeline.classify.taxonomy import load_taxonomy

    m = ThemeClassifier(use_embeddings=False)
    m._setup_rules(load_taxonomy(TAXONOMY))
    df = pd.DataFrame({"text": texts, "terms": [[] for _ in texts], "group": [f"u{i}" for i in range(len(texts))]})
    return m.allowed(df)[:, IDS.index(theme)].tolist()


def test_bare_network_and_data_do_not_give_the_digital_angle_their_compounds_do():
    """``ネットワーク`` and ``データ`` alone gave the scope only to sentences with no policy theme in
    the labelled rows (a community network, a party's name); their digital compounds still do
    (benchmarks/README.md, 2026-12-04). Sentences shortened from the Tokyo label records, and plain ones."""
    texts = ["行政区を越えた防災隣組の自主的なネットワークづくりを促進します。",
             "生活者ネットワークから、防災対策の必要性を主張してまいりました。",
             "避難所の被害状況のデータを集めています。",
             "避難所のネットワーク回線を整備します。",
             "防災情報のデータ連携を進めます。",
             "避難所の通信環境を整備します。"]
    assert _scope_allows_alone(texts, "priority_domains") == [False, False, False, True, True, True]


def test_bare_security_does_not_give_the_digital_angle_information_and_cyber_security_do():
    """Bare ``セキュリティ`` left the scope: in the Tokyo committees every match is the Olympic
    committee's セキュリティー (警備, 治安), and no labelled theme needed it (benchmarks/README.md,
    2026-12-04). 情報セキュリティ(ー) and サイバーセキュリティ keep it, whatever the house style's
    long vowel. The first two sentences are from the Tokyo label records, the others plain."""
    texts = ["最後がセキュリティー問題でございました。",
             "前回の招致の際は宿泊施設、セキュリティー、交通インフラなどの項目で高い評価を受けました。",
             "都庁の情報セキュリティー対策を強化します。",
             "区役所のサイバーセキュリティ対策を強化します。"]
    assert _scope_allows_alone(texts, "cybersecurity") == [False, False, True, True]


# ------------------------------------------------------------------ councils (domain adaptation)
def test_council_of_names_the_council_from_where_minutes_were_read():
    from pipeline.classify.tagging import with_source_file
    from pipeline.labels import council_of

    assert council_of("tokyo-assembly/committee-olympic.json") == "tokyo-assembly"
    assert council_of("tokyo-assembly/committee-olympic.json#2012-02-06") == "tokyo-assembly"
    assert council_of("mic-chiiki-ict-06_2024-04-24.txt") == council_of("mic-chiiki-ict-06_2024-04-24") \
        == council_of("mic-chiiki-ict-07_2024-05-30.txt") == "mic-chiiki-ict"
    assert council_of(None) == "(unknown)"
    sents = pd.DataFrame({"meeting_id": ["committee-olympic#1", "x"], "text": ["a", "b"]})
    meets = pd.DataFrame({"meeting_id": ["committee-olympic#1"], "source_file": ["tokyo-assembly/committee-olympic.json"]})
    assert [council_of(s) for s in with_source_file(sents, meets)["source_file"]] == ["tokyo-assembly", "x"]


def test_council_blocks_keep_each_councils_convention_and_unseen_councils_get_the_shared_copy(labelled_sample):
    """The clash of conventions above, with councils: the sample's own cybersecurity sentences keep
    (nearly) the sample's scores when scored as the sample, get the other council's reading when scored
    as that council, and a council never seen in training is scored by the shared weights only
    (exactly as a row without a council). With one council the blocks are off: the fit without
    councils."""
    from sklearn.base import clone

    from pipeline.classify.model import ThemeClassifier

    X, Y = labelled_sample
    j = IDS.index("cybersecurity")
    pos = np.flatnonzero(Y[:, j])
    other = X.iloc[pos].assign(group=lambda d: "other-" + d["group"], domain="other")
    Xa = pd.concat([X.assign(domain="sample"), other], ignore_index=True)
    Ya = np.vstack([Y, np.zeros((len(pos), Y.shape[1]), dtype=int)])
    kw = dict(use_embeddings=False, C_lex=(1.0,), C_meta=(0.3,), self_training=False, domain_min_rows=0)
    plain = ThemeClassifier(**kw).fit(Xa, Ya)
    adapted = ThemeClassifier(**kw, domain_adaptation=True).fit(Xa, Ya)
    assert adapted.domains_ == ["other", "sample"] and clone(adapted).get_params()["domain_adaptation"] is True
    alone = float(ThemeClassifier(**kw).fit(X, Y).predict_proba(X.iloc[pos])[:, j].mean())

    def cyber(m, domain=None):
        rows = X.iloc[pos] if domain is None else X.iloc[pos].assign(domain=domain)
        return m.predict_proba(rows)[:, j]

    as_sample, as_other, unseen = cyber(adapted, "sample"), cyber(adapted, "other"), cyber(adapted, "new")
    assert as_sample.mean() > cyber(plain).mean() + 0.05  # the other convention no longer drags the sample
    assert abs(as_sample.mean() - alone) < abs(cyber(plain).mean() - alone) / 2
    assert as_other.mean() < as_sample.mean() - 0.2  # the other council's reading stays its own
    assert np.allclose(unseen, cyber(adapted), atol=1e-12)  # unseen council == no council: shared copy only
    # `tag` JSON lines may name the council: scored as the classify stage scores that council's rows
    from pipeline.classify.tagging import tag_records

    recs = [{"id": int(i), "text": X["text"].iloc[i], "turn": X["group"].iloc[i]} for i in pos]
    tagged = {c: np.array([r["scores"]["cybersecurity"] for r in tag_records(
        [{**r, "council": c} for r in recs] if c else recs, model=adapted)]) for c in ("other", "sample", None)}
    assert np.allclose(tagged["other"], as_other, atol=1e-3) and np.allclose(tagged["sample"], as_sample, atol=1e-3)
    assert np.allclose(tagged[None], cyber(adapted), atol=1e-3)
    # the shared copy alone: a row of an unseen council has zeros in every council block
    d = adapted._domain_index(pd.DataFrame({"domain": ["sample", "new"]}))
    A = adapted._augment(np.ones((2, 3)), d)
    assert A.shape == (2, 9) and A[1, 3:].sum() == 0 and A[0, 6:].sum() == 3 and A[0, 3:6].sum() == 0
    # one council: no blocks, the same fit as without councils
    one = ThemeClassifier(**kw, domain_adaptation=True).fit(X.assign(domain="sample"), Y)
    assert one.domains_ == []
    assert np.allclose(one.predict_proba(X.iloc[:80]), ThemeClassifier(**kw).fit(X, Y).predict_proba(X.iloc[:80]),
                       atol=1e-12)


def test_context_gate_scales_a_long_sentences_context_by_its_own_evidence(theme_model, labelled_sample):
    """Real turns of the sample: with ``context_gate`` a long sentence's context features are its
    ungated ones times its own base score for the theme; a short one keeps them unchanged."""
    import copy

    from pipeline.classify.bases import _sigmoid

    X, _ = labelled_sample
    m = copy.copy(theme_model)
    m.context_gate = False
    df = m.prepare(X.iloc[:120])
    RB, Hb, _ = m._rule_block(df)
    S_lex, S_emb = m._base_scores(m.bases_, df["terms"].tolist(), RB, None)
    args = (S_lex, S_emb, Hb, df["group"].to_numpy(), df["text"].str.len().to_numpy(), None)
    plain = m._meta_features(*args)
    m.context_gate = True
    gated = m._meta_features(*args)
    short = df["text"].str.len().to_numpy() <= m.context_max_chars
    assert short.any() and (~short).any()
    ctx = slice(3, 6)  # lexical score, cue hit, rule hit; then prev, next, window mean; short x prev
    for j in range(len(plain)):
        own = _sigmoid(S_lex[:, j])
        assert np.allclose(gated[j][short, ctx], plain[j][short, ctx])
        assert np.allclose(gated[j][~short, ctx], plain[j][~short, ctx] * own[~short, None])
        assert np.allclose(gated[j][:, 6], plain[j][:, 6])  # a short sentence inherits as before


def test_council_round_trip_queues_only_the_new_council_and_weighs_its_answers_as_corpus(labelled_sample,
                                                                                          monkeypatch):
    """A new council in one sitting (``cross_council.label_queue_simulation``): the sample's second
    half poses as a council never seen, its rows given as label records (weight 0.05); the round
    trip queues only its sentences, trains on them at the corpus's weight 1, and scores the same
    unqueued sentences before and after."""
    import pipeline.classify.evaluate as ev
    from pipeline.classify.model import ThemeClassifier
    from pipeline.classify.train_metrics import council_round_trip

    X, Y = labelled_sample
    half = len(X) // 2
    councils = np.where(np.arange(len(X)) < half, "first", "new")
    Xc = X.assign(domain=councils)
    weights = np.where(councils == "new", 0.05, 1.0)
    seen = []
    fit = ev._fit_predict_held_out

    def spy(model, X_, Y_, test, extra_train=None, sample_weight=None):
        seen.append((test.copy(), None if extra_train is None else extra_train.copy(), sample_weight))
        return fit(model, X_, Y_, test, extra_train=extra_train, sample_weight=sample_weight)

    monkeypatch.setattr(ev, "_fit_predict_held_out", spy)
    model = ThemeClassifier(use_embeddings=False, C_lex=(1.0,), C_meta=(0.3,), self_training=False,
                            domain_adaptation=True)
    r = council_round_trip(model, Xc, Y, "new", 20, weights)
    assert r["group"] == "new" and r["n_group"] == len(X) - half and r["n_queued"] == 20
    assert r["n_rest"] == r["n_group"] - 20 and r["queued_speakers"] >= 5
    (test0, extra0, w0), (test1, extra1, w1) = seen[:2]
    assert extra0 is None and (test0 == (councils == "new")).all()
    assert extra1.sum() == 20 and (councils[extra1] == "new").all()  # only the new council is queued
    assert (w1[councils == "new"] == 1.0).all() and (w1[councils == "first"] == 1.0).all()
    for k in ("before_rest", "after_rest", "before_whole_group"):
        assert 0.0 <= r[k]["micro_f1"] <= 1.0 and 0.0 <= r[k]["macro_f1"] <= 1.0
    # the council's own labels teach it: its 50 answers do not make the rest worse
    r50 = council_round_trip(model, Xc, Y, "new", 50, weights)
    assert r50["n_queued"] == 50 and r50["after_rest"]["micro_f1"] >= r50["before_rest"]["micro_f1"] - 0.02
    # classify.domain_min_rows: a council with fewer labelled rows has no block of its own (shared only)
    few = pd.DataFrame({"domain": ["first"] * 120 + ["new"] * 50})
    assert model.set_params(domain_min_rows=0)._training_domains(few) == ["first", "new"]
    assert model.set_params(domain_min_rows=100)._training_domains(few) == ["first"]
    assert model.set_params(domain_min_rows=200)._training_domains(few) == []


def test_ambiguous_scope_words_give_the_scope_to_their_own_sentence_not_to_neighbours():
    """``システム``, ``放送``, ``遠隔``, … are in ``scope_in_sentence``: a sentence about a system keeps
    the digital angle, but a neighbour's システム (社会システム, 交通システム in a disaster debate) or
    防災放送 no longer lends it; 情報システム stays in ``scope`` and still does (benchmarks/README.md,
    2026-12-04). The first turn's sentences are shortened from the Tokyo label records, the others plain."""
    from pipeline.classify.model import ThemeClassifier
    from pipeline.classify.taxonomy import load_taxonomy

    tax = load_taxonomy(TAXONOMY)
    own_only = set(tax.scope_in_sentence.split(" OR "))
    assert {"システム", "放送", "遠隔", "データベース", "スマート"} <= own_only
    assert not own_only & set(tax.scope.split(" OR ")) and "情報システム" in tax.scope.split(" OR ")
    m = ThemeClassifier(use_embeddings=False)
    m._setup_rules(tax)
    texts = ["各主体が災害時に助け合う社会システムの確立に協力します。", "次に、多摩直下型地震についてお伺いをいたします。",
             "東京都版被災者支援システムについてお伺いいたします。",
             "防災情報システムを更新します。", "避難所の運営を見直します。",
             "防災行政無線の放送が聞こえにくい地域があります。", "避難所の運営を見直します。"]
    df = pd.DataFrame({"text": texts, "terms": [[] for _ in texts],
                       "group": ["u1", "u1", "u2", "u3", "u3", "u4", "u4"]})
    pd_col = m.allowed(df)[:, IDS.index("priority_domains")].tolist()
    assert pd_col == [True, False, True, True, True, True, False]
    m.scope_rule_ = None  # no `scope`, no gate: scope_in_sentence only widens it
    assert m.allowed(df).all()
