"""Parse stage on the real sample minutes (and the Tokyo corpus when present).

One GiNZA NER run over the whole sample is shared by the module (``parsed``); the
other tests use the tokenizer-only path (``ner: false``), which is ~40x faster.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from pipeline import parse
from pipeline.errors import PipelineError
from pipeline.partition import last_run_stats

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "raw" / "mic-chiiki-ict-06_2024-04-24.txt"
SHARED = Path(__file__).resolve().parents[2] / "shared"
TOKYO = SHARED / "corpora" / "tokyo-assembly"
BOILERPLATE = ["思う", "考える", "ござる", "いただく", "御", "申し上げる", "させる", "ページ", "資料",
               "いう", "こと", "ところ", "説明", "つく", "よる"]


@pytest.fixture(scope="module")
def sample_tables(tmp_path_factory):
    from pipeline.ingest import ingest_paths

    res = ingest_paths([SAMPLE], cache=False)
    return res.utterances, res.meetings


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("parse-cache")


@pytest.fixture(scope="module")
def parsed(sample_tables, cache_dir):
    utts, meets = sample_tables
    return parse.parse_utterances(utts, meets, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def tokens_only(sample_tables, tmp_path_factory):
    utts, meets = sample_tables
    return parse.parse_utterances(utts, meets, {**parse.resolve_params(), "ner": False},
                                  cache_dir=tmp_path_factory.mktemp("parse-cache-tok"))


# --------------------------------------------------------------------------- sentence rules

def test_sentence_spans_end_after_terminators_and_closing_brackets():
    text = "本日はありがとうございます。「これで良いか？」と聞きました！（笑）次に、資料を御覧ください"
    spans = parse.sentence_spans(text)
    assert [text[a:b] for a, b in spans] == [
        "本日はありがとうございます。", "「これで良いか？」", "と聞きました！", "（笑）次に、資料を御覧ください"]


def test_sentence_spans_drop_empty_and_punctuation_only():
    text = "  はい。 。」\n  ！！ 以上です。\n"
    assert [text[a:b] for a, b in parse.sentence_spans(text)] == ["はい。", "以上です。"]
    assert parse.sentence_spans("") == [] and parse.sentence_spans("。。、") == []


def test_long_sentences_split_at_clauses_only_when_asked():
    clause = "地域の通信インフラの維持について検討を進めておりますけれども、"
    text = clause * 10 + "以上です。"
    assert len(parse.sentence_spans(text)) == 1
    spans = parse.sentence_spans(text, split_long=True, max_chars=100)
    pieces = [text[a:b] for a, b in spans]
    assert len(pieces) > 1 and "".join(pieces) == text
    assert all(len(p) <= 100 for p in pieces)
    assert all(p.endswith("けれども、") for p in pieces[:-1])


def test_byte_chunks_cover_text_exactly():
    text = ("デジタル人材の育成、" * 2000) + "終わり。"
    chunks = parse.byte_chunks(text, 30000)
    assert len(chunks) > 1
    assert "".join(text[a:b] for a, b in chunks) == text
    assert all(len(text[a:b].encode()) <= 30000 for a, b in chunks)
    assert all(text[b - 1] == "、" for a, b in chunks[:-1])  # cut after a comma
    assert parse.byte_chunks("短い", 30000) == [(0, 2)]


def test_over_long_text_fails_clearly_instead_of_reaching_nlp_pipe():
    with pytest.raises(PipelineError, match="exceeds SudachiPy's limit"):
        parse.check_bytes(["あ" * 20000], ["m:u0001:s000"])


# --------------------------------------------------------------------------- sample: sentences

def test_every_sentence_belongs_to_exactly_one_speech_utterance(parsed, sample_tables):
    utts, _ = sample_tables
    s = parsed.sentences
    by_id = utts.set_index("utterance_id")
    assert s["sentence_id"].is_unique
    assert set(s["kind"]) == {"speech"}
    assert set(s["utterance_id"]) == set(utts.loc[utts["kind"] == "speech", "utterance_id"])
    for r in s.itertuples():
        u = by_id.loc[r.utterance_id]
        assert r.sentence_id.startswith(f"{r.utterance_id}:s") and re.fullmatch(r".+:s\d{3}", r.sentence_id)
        assert parse.clean_sentence_text(u["text"][r.start:r.end]) == r.text
        assert r.speaker == u["speaker_name"] and r.meeting_id == u["meeting_id"]
    # order is the sentence's position in the meeting
    assert s["order"].tolist() == list(range(len(s)))


def test_sentences_have_no_artefacts(parsed):
    s = parsed.sentences
    assert not s["text"].str.contains(r"-\s*\d+\s*-|○|\n|\r").any()
    assert not s["text"].str.fullmatch(r"[\W_]*").any()
    ends = s["text"].str.contains(r"[。？！?!][」』）)]*$")
    # a sentence not ending in 。？！ is the end of its turn
    last = s.groupby("utterance_id")["sentence_index"].transform("max") == s["sentence_index"]
    assert (ends | last).all()


def test_sentences_match_the_label_texts(parsed):
    files = sorted((ROOT / "data" / "labels").glob("sample_*.jsonl"))
    if not files:
        pytest.skip("no sample labels")
    labelled = {unicodedata.normalize("NFKC", json.loads(line)["text"]).replace("\n", "")
                for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()}
    ours = {unicodedata.normalize("NFKC", t) for t in parsed.sentences["text"]}
    assert len(labelled - ours) == 0, sorted(labelled - ours)[:3]
    assert len(ours) == len(labelled)


# --------------------------------------------------------------------------- sample: terms

def test_domain_compounds_are_single_terms(parsed):
    terms = Counter(t for ts in parsed.sentences["terms"] for t in ts)
    for t in ["デジタル人材", "データ連携基盤", "オール光ネットワーク"]:
        assert terms[t] >= 3, t
    assert terms["ラスト・ワンマイル"] + terms["ラストワンマイル"] >= 3
    # the parts alone never stand in for them
    assert terms["ワンマイル"] == 0 and terms["オール"] == 0


def test_no_boilerplate_numbers_or_junk_compounds_in_terms(parsed):
    terms = Counter(t for ts in parsed.sentences["terms"] for t in ts)
    for w in BOILERPLATE:
        assert terms[w] == 0, w
    vocab = parse.load_vocab()
    listed = set(vocab.compounds) | set(vocab.aliases.values())
    assert not [t for t in terms if re.search(r"\d", t) and t not in listed]
    assert not [t for t in terms if re.fullmatch(r"[\u3040-\u30FFA-Za-z]", t)]  # list markers ア, イ, a
    assert not [t for t in terms if t.startswith(("御", "資料"))]
    assert len(terms) > 800  # plenty of real content left


def test_terms_use_dictionary_forms(tokens_only):
    terms = Counter(t for ts in tokens_only.sentences["terms"] for t in ts)
    assert terms["進める"] > 0 and terms["為る"] == 0 and terms["所"] == 0
    assert terms["DX"] > 0 and terms["dx"] == 0  # Latin words as written, not lower-cased


def test_tokens_table(parsed):
    t = parsed.tokens
    assert list(t.columns[:8]) == ["sentence_id", "i", "surface", "lemma", "norm", "pos", "tag", "is_stop"]
    assert set(t["sentence_id"]) == set(parsed.sentences["sentence_id"])
    texts = parsed.sentences.set_index("sentence_id")["text"]
    for sid, g in list(t.groupby("sentence_id"))[:50]:
        assert g["i"].tolist() == list(range(len(g)))
        assert all(texts[sid][a:a + len(w)] == w for a, w in zip(g["start"], g["surface"]))
    assert t.loc[t["lemma"] == "思う", "is_stop"].all()
    assert {"NOUN", "VERB", "PROPN"} <= set(t["pos"])


def test_tokenizer_only_path_gives_the_same_sentences_and_terms(parsed, tokens_only):
    a, b = parsed.sentences, tokens_only.sentences
    assert a["sentence_id"].tolist() == b["sentence_id"].tolist()
    assert a["terms"].map(list).tolist() == b["terms"].map(list).tolist()
    assert tokens_only.entities.empty and list(tokens_only.entities.columns) == parse.ENTITY_COLUMNS


# --------------------------------------------------------------------------- sample: entities

def test_entities_keep_ene_labels_and_add_coarse_labels(parsed):
    e = parsed.entities
    assert list(e.columns) == parse.ENTITY_COLUMNS
    assert e["label"].nunique() >= 30
    assert {"person", "organisation", "place", "date", "number"} <= set(e["coarse_label"])
    texts = parsed.sentences.set_index("sentence_id")["text"]
    assert all(texts[r.sentence_id][r.start:r.end] == r.text for r in e.itertuples())
    assert "総務省" in set(e.loc[e["coarse_label"] == "organisation", "text"])
    assert parse.coarse_label("Province") == "place" and parse.coarse_label("Plan") == "programme"
    assert parse.coarse_label("School") == "organisation" and parse.coarse_label("no_such") == "other"


def test_meeting_people_are_known_persons_not_schools(parsed):
    e = parsed.entities
    chair = e[e["text"] == "國領"]
    assert len(chair) >= 3
    assert (chair["label"] == "Person").all() and (chair["source"] == "known_speaker").all()
    known = set(e.loc[e["source"] == "known_speaker", "text"])
    assert {"越塚", "庄司", "前田", "島田"} <= known
    assert not e["text"].isin(["國領", "越塚"]).any() or not (e.loc[e["text"].isin(["國領", "越塚"]), "label"] != "Person").any()


def test_known_person_names_from_attendee_strings():
    nlp = parse.load_nlp("ja_ginza", ner=False)
    names = parse.known_person_names(["國領"], ["浦田構成員", "田邊情報通信政策課長", "知事（小池百合子君）", "関構成員"], nlp)
    assert {"國領", "浦田", "田邊", "小池百合子", "小池"} <= set(names)
    assert "関" not in names  # one-character names are too ambiguous


def test_entity_counts_per_meeting_and_speaker(parsed):
    c = parse.entity_counts(parsed.entities)
    assert list(c.columns) == ["meeting_id", "speaker", "coarse_label", "text", "count"]
    assert c["count"].sum() == len(parsed.entities)
    rep = parsed.report
    assert sum(sum(v.values()) for v in rep["entities_per_meeting"].values()) == len(parsed.entities)
    assert rep["n_sentences"] == len(parsed.sentences)


def test_gated_ner_keeps_097_of_full_ner_entities_on_the_sample(parsed, sample_tables):
    """The default ``ner: gated`` (tok2vec + ner only around rule or learned trigger tokens) against
    ``ner: full`` (every sentence): same sentences, tokens and known people; recall >= 0.97 and
    precision >= 0.95 of full NER's entities (benchmarks/parse.py measured 0.99 / 0.99)."""
    from pipeline.parse.gate import entity_agreement

    assert parse.resolve_params()["ner"] == "gated"
    utts, meets = sample_tables
    full = parse.parse_utterances(utts, meets, {"ner": "full"}, cache=False)
    pd.testing.assert_frame_equal(full.tokens, parsed.tokens)
    assert full.sentences["terms"].map(list).tolist() == parsed.sentences["terms"].map(list).tolist()
    ag = entity_agreement(full.entities, parsed.entities)
    assert ag["recall"] >= 0.97 and ag["precision"] >= 0.95, ag
    known = ["sentence_id", "start", "end", "text"]
    pd.testing.assert_frame_equal(
        full.entities.loc[full.entities["source"] == "known_speaker", known].reset_index(drop=True),
        parsed.entities.loc[parsed.entities["source"] == "known_speaker", known].reset_index(drop=True))


def test_learned_gate_triggers_nouns_the_rules_miss_and_no_function_words():
    """The learned triggers (pipeline/parse/gate_model.py, fitted on committee-olympic.json) pick
    common nouns GiNZA's NER tags (a facility, a dish) that no rule names; a sentence of plain
    procedure (particles, verbs, auxiliaries) opens no NER window at all."""
    from pipeline.parse.gate import NerGate, is_trigger, learned_triggers

    nlp = parse.load_nlp("ja_ginza", ner=False)
    learned = learned_triggers(nlp.vocab)
    doc = nlp.make_doc("選手村の食堂で弁当を配り、医師と看護師が待機しました。")
    picked = {doc[i].text for i in learned(doc)}
    assert {"食堂", "弁当"} <= picked
    assert not any(is_trigger(t.tag_, t.text) for t in doc if t.text in {"食堂", "弁当"})
    assert not picked & {"の", "で", "を", "配り", "と", "が", "し", "まし", "た", "。"}
    plain = nlp.make_doc("私どもとしては、引き続き丁寧に説明してまいりたいと考えております。")
    assert NerGate(margin=4, learned=learned).windows(plain) == []


def test_gated_ner_in_worker_processes_equals_in_process(sample_tables):
    utts, meets = sample_tables
    few = utts[utts["kind"] == "speech"].head(6)
    base = {**parse.resolve_params(), "ner": "gated", "batch_size": 3}
    one = parse.parse_utterances(few, meets, {**base, "n_process": 1}, cache=False)
    two = parse.parse_utterances(few, meets, {**base, "n_process": 2}, cache=False)
    assert len(one.entities) > 5
    pd.testing.assert_frame_equal(one.entities, two.entities)


def test_unknown_ner_mode_is_a_one_line_error():
    with pytest.raises(PipelineError, match="ner") as err:
        parse.resolve_params({"ner": "sometimes"})
    assert "\n" not in str(err.value)
    assert parse.resolve_params({"ner": True})["ner"] == "full" and parse.resolve_params({"ner": False})["ner"] == "off"


# --------------------------------------------------------------------------- long input, cache, CLI

def _one_utterance(text: str, mid: str = "long") -> pd.DataFrame:
    return pd.DataFrame({"meeting_id": [mid], "utterance_id": [f"{mid}:u0000"], "order": [0], "kind": ["speech"],
                         "speaker_raw": ["國領座長"], "speaker_name": ["國領"], "speaker_role": ["座長"],
                         "agenda_item": [None], "text": [text]})


def test_utterance_far_above_sudachi_limit_loses_nothing(sample_tables, tmp_path):
    utts, _ = sample_tables
    body = "".join(utts.loc[utts["kind"] == "speech", "text"])
    no_stops = re.sub(r"[。？！?!\n]", "、", body)  # one ~120 KB sentence: must be cut inside
    text = body + no_stops
    assert len(text.encode()) > 4 * parse.SUDACHI_MAX_BYTES
    res = parse.parse_utterances(_one_utterance(text), None, {**parse.resolve_params(), "ner": False},
                                 cache=False)
    s = res.sentences
    assert len(s) > 500
    longest = s.loc[s["text"].str.len().idxmax()]
    assert len(longest["text"].encode()) > parse.SUDACHI_MAX_BYTES
    for r in s.itertuples():
        toks = res.tokens[res.tokens["sentence_id"] == r.sentence_id] if r.sentence_id == longest["sentence_id"] \
            else None
        if toks is not None:  # the over-long sentence: tokens cover it exactly, in order
            rebuilt = "".join(toks["surface"])
            assert rebuilt == re.sub(r"\s", "", r.text)
    assert parse.clean_sentence_text(text[s["start"].iloc[-1]:s["end"].iloc[-1]]) == s["text"].iloc[-1]
    terms = Counter(t for ts in s["terms"] for t in ts)
    assert terms["デジタル人材"] >= 2 * 14 - 2  # found in both halves (at most a chunk border lost per chunk)


def test_multiprocess_ner_on_chunked_over_long_sentence_does_not_hang(tmp_path):
    text = "國領座長が総務省の会議でデジタル人材について発言し、" * 650  # ~51 KB, no 。
    assert len(text.encode()) > parse.SUDACHI_MAX_BYTES
    params = {**parse.resolve_params(), "ner": "full", "n_process": 2, "batch_size": 2, "max_chunk_bytes": 6000}
    res = parse.parse_utterances(_one_utterance(text), None, params, cache=False)
    assert len(res.sentences) == 1
    e = res.entities
    assert (e["text"] == "國領").sum() >= 640 and (e.loc[e["text"] == "國領", "source"] == "known_speaker").all()
    assert "総務省" in set(e["text"])
    # tokens and terms from the worker processes' docs equal the tokenizer-only path
    tok = parse.parse_utterances(_one_utterance(text), None, {**params, "ner": "off"}, cache=False)
    assert res.sentences["terms"].map(list).tolist() == tok.sentences["terms"].map(list).tolist()
    pd.testing.assert_frame_equal(res.tokens, tok.tokens)


def test_rerun_is_served_from_cache(parsed, sample_tables, cache_dir):
    utts, meets = sample_tables
    again = parse.parse_utterances(utts, meets, cache_dir=cache_dir)
    stats = last_run_stats["parse"]
    assert stats.n_cached == 1 and stats.n_computed == 0
    pd.testing.assert_frame_equal(again.entities, parsed.entities)
    # a speed-only parameter does not invalidate the cache
    parse.parse_utterances(utts, meets, {**parse.resolve_params(), "batch_size": 7}, cache_dir=cache_dir)
    assert last_run_stats["parse"].n_cached == 1


def test_cli_writes_outputs_and_report(parsed, sample_tables, cache_dir, tmp_path, monkeypatch):
    from pipeline.cli import main

    utts, meets = sample_tables
    utts.to_parquet(tmp_path / "u.parquet")
    meets.to_parquet(tmp_path / "m.parquet")
    monkeypatch.setenv("POLICY_TOPICS_CACHE_DIR", str(cache_dir))
    out = {k: tmp_path / f"{k}.parquet" for k in ("sentences", "tokens", "entities")}
    rc = main(["-q", "parse", str(tmp_path / "u.parquet"), "--meetings", str(tmp_path / "m.parquet"),
               "--sentences", str(out["sentences"]), "--tokens", str(out["tokens"]),
               "--entities", str(out["entities"]), "--report", str(tmp_path / "parse.json")])
    assert rc == 0
    s = pd.read_parquet(out["sentences"])
    assert len(s) == len(parsed.sentences) and list(s["terms"].iloc[0]) == list(parsed.sentences["terms"].iloc[0])
    rep = json.loads((tmp_path / "parse.json").read_text())
    assert rep["n_sentences"] == len(s) and rep["n_entities"] == len(pd.read_parquet(out["entities"]))


def test_cli_missing_input_is_a_one_line_error(tmp_path, capsys):
    from pipeline.cli import main

    rc = main(["parse", str(tmp_path / "nope.parquet"), "--sentences", str(tmp_path / "s.parquet"),
               "--tokens", str(tmp_path / "t.parquet"), "--entities", str(tmp_path / "e.parquet")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.parquet" in err[0]
    assert not (tmp_path / "s.parquet").exists()


@pytest.mark.skipif(not TOKYO.is_dir(), reason="Tokyo corpus not present")
def test_tokyo_utterances_over_the_byte_limit_tokenise(tmp_path):
    rows = []
    for f in sorted(TOKYO.glob("*.json")):
        for m_i, m in enumerate(json.loads(f.read_text(encoding="utf-8"))):
            for k, p in enumerate(m["Proceeding"]):
                if len(p["Utterance"].encode()) > parse.SUDACHI_MAX_BYTES:
                    rows.append({"meeting_id": f"{f.stem}#{m_i}", "utterance_id": f"{f.stem}#{m_i}:u{k:04d}",
                                 "order": k, "kind": "speech", "speaker_raw": p["Speaker"],
                                 "speaker_name": None, "speaker_role": None, "agenda_item": None,
                                 "text": unicodedata.normalize("NFKC", p["Utterance"])})
    assert rows
    utts = pd.DataFrame(rows)
    res = parse.parse_utterances(utts, None, {**parse.resolve_params(), "ner": False}, cache=False)
    s = res.sentences
    assert set(s["utterance_id"]) == set(utts["utterance_id"])
    n_tok = res.tokens.groupby("sentence_id").size()
    assert (n_tok.reindex(s["sentence_id"]).fillna(0) > 0).all()


def test_no_speech_gives_empty_tables_with_the_contract_columns(sample_tables):
    utts, _ = sample_tables
    res = parse.parse_utterances(utts[utts["kind"] != "speech"], None, cache=False)
    assert res.sentences.empty and list(res.sentences.columns) == parse.SENTENCE_COLUMNS
    assert res.tokens.empty and res.entities.empty and res.report["n_sentences"] == 0


def test_cli_table_without_text_column_names_the_file(sample_tables, tmp_path, capsys):
    from pipeline.cli import main

    utts, _ = sample_tables
    bad = tmp_path / "bad.parquet"
    utts.drop(columns=["text"]).to_parquet(bad)
    rc = main(["-q", "parse", str(bad), "--sentences", str(tmp_path / "s.parquet"),
               "--tokens", str(tmp_path / "t.parquet"), "--entities", str(tmp_path / "e.parquet")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.parquet" in err[0] and "text" in err[0]


def test_terms_for_new_text_of_any_length():
    """Callers outside the stage (topics transform, `tag`) get the stage's terms for any text,
    even a whole topic's sentences joined far beyond SudachiPy's byte limit."""
    from pipeline.parse import SUDACHI_MAX_BYTES, terms_for_texts

    one = "デジタル人材の育成とデータ連携基盤の整備が課題です。"
    long_text = one * (SUDACHI_MAX_BYTES // len(one.encode("utf-8")) + 50)
    assert len(long_text.encode("utf-8")) > SUDACHI_MAX_BYTES
    short, joined, empty = terms_for_texts([one, long_text, ""])
    assert "デジタル人材" in short and "データ連携基盤" in short
    assert empty == []
    assert joined.count("デジタル人材") == long_text.count("デジタル人材")
