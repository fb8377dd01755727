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
