"""Fast tests of pure helpers on tiny inputs: no GiNZA, no BERTopic, no encoder loads."""
from __future__ import annotations

import numpy as np
import pytest


def test_l2_normalize_is_unit_rows_and_keeps_zero_rows():
    from pipeline.vectors import l2_normalize

    x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]])
    y = l2_normalize(x)
    assert y.dtype == np.float32 and y.shape == (3, 2)
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], atol=1e-6)
    assert l2_normalize(np.array([0.0, 2.0])).shape == (1, 2)  # one vector -> one row


def test_knn_vote_places_points_by_their_neighbours_clusters():
    from pipeline.topics.geometry import knn_vote

    rng = np.random.default_rng(0)
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    R = np.vstack([a + 0.05 * rng.normal(size=(20, 3)), b + 0.05 * rng.normal(size=(20, 3)),
                   [[0.0, 0.0, 1.0]] * 5])
    R /= np.linalg.norm(R, axis=1, keepdims=True)
    labels = np.array([3] * 20 + [7] * 20 + [-1] * 5)  # -1: points the clusterer left as noise
    Q = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.05, 1.0]])
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    assert knn_vote(Q, R, labels, k=5).tolist() == [3, 7, -1]
    assert knn_vote(Q, R, labels, k=5, chunk=1).tolist() == [3, 7, -1]  # chunking changes nothing
    assert knn_vote(Q[:1], R[:1], labels[:1], k=15).tolist() == [3]  # k > reference rows
    assert knn_vote(Q[:0], R, labels, k=5).shape == (0,)


def test_fast_bootstrap_f1_equals_sklearn():
    from sklearn.metrics import f1_score

    from pipeline.classify.evaluate import f1_from_counts, multilabel_counts, prf

    rng = np.random.default_rng(0)
    Y = rng.random((60, 5)) < 0.3
    P = rng.random((60, 5)) < 0.3
    Y[:, 2] = False  # a label without support is left out of macro F1
    micro, macro = f1_from_counts(*multilabel_counts(Y, P))
    assert micro == pytest.approx(f1_score(Y, P, average="micro", zero_division=0))
    keep = Y.sum(0) > 0
    assert macro == pytest.approx(f1_score(Y[:, keep], P[:, keep], average="macro", zero_division=0))
    m = prf(Y, P)
    assert m["micro_f1"] == pytest.approx(micro) and m["macro_f1"] == pytest.approx(macro)
    np.testing.assert_allclose(m["f1"], f1_score(Y, P, average=None, zero_division=0))
    # one label with support (a held-out group): macro F1 is that label's F1, not a binary average
    Y1 = np.zeros_like(Y)
    Y1[:5, 0] = True
    f1_one = f1_score(Y1[:, 0], P[:, 0], zero_division=0)
    assert prf(Y1, P)["macro_f1"] == pytest.approx(f1_one)
    assert f1_from_counts(*multilabel_counts(Y1, P))[1] == pytest.approx(f1_one)


def test_best_threshold_sits_in_the_separating_gap():
    from pipeline.classify.model import _best_threshold

    y = np.array([0] * 10 + [1] * 10)
    p = np.r_[np.linspace(0.05, 0.3, 10), np.linspace(0.6, 0.9, 10)]
    t = _best_threshold(y, p)
    assert 0.3 < t <= 0.6


def test_stopwords_one_loader_nfkc(tmp_path):
    from pipeline.vocab import load_stopwords

    p = tmp_path / "stopwords.yaml"
    p.write_text("a: [思う, ＡＢＣ]\nb: [こと]\n", encoding="utf-8")
    assert load_stopwords(p, extra=["ｶﾀｶﾅ"]) == {"思う", "ABC", "こと", "カタカナ"}
    shipped = load_stopwords()
    assert "思う" in shipped and all(isinstance(w, str) for w in shipped)


def test_role_vocabulary_is_the_one_ingest_reads(tmp_path):
    from pipeline.vocab import person_suffixes, role_vocabulary

    v = role_vocabulary()
    assert v.roles["君"] == "議員" and v.roles["事務局長"] == "事務局" and "課長" in v.officials
    suf = person_suffixes()
    assert suf.index("座長代理") < suf.index("座長")  # longest first
    assert {"君", "様", "課長", "知事", "センター長"} <= set(suf)
    bad = tmp_path / "roles.yaml"
    bad.write_text("roles: [a, b]\n", encoding="utf-8")
    from pipeline.errors import PipelineError

    with pytest.raises(PipelineError, match="roles.yaml"):
        role_vocabulary(bad)


def test_taxonomy_one_model_for_classify_and_report():
    from pipeline import taxonomy
    from pipeline.classify.taxonomy import load_taxonomy as checked
    from pipeline.report.data import Theme as ReportTheme

    plain, ruled = taxonomy.load_taxonomy(), checked()
    assert ReportTheme is taxonomy.Theme and plain == ruled
    assert all(t.label for t in plain.themes)


def test_taxonomy_defaults_live_on_the_model_only(tmp_path):
    """A taxonomy YAML without the optional keys gets the dataclass defaults (no second copy in
    the reader); a key that is present wins."""
    from pipeline import taxonomy

    p = tmp_path / "tax.yaml"
    p.write_text("themes:\n  - id: a\n  - id: b\n    exclusive: true\n    requires_scope: false\n"
                 "scope_window: 5\n", encoding="utf-8")
    t = taxonomy.load_taxonomy(p)
    assert t.theme("a") == taxonomy.Theme(id="a") and t.scope_window == 5
    assert (t.theme("b").exclusive, t.theme("b").requires_scope) == (True, False)
    p.write_text("themes:\n  - id: a\n", encoding="utf-8")
    assert taxonomy.load_taxonomy(p).scope_window == taxonomy.Taxonomy(name="x", themes=()).scope_window

@pytest.mark.parametrize("name,text,error", [
    ("taxonomy", "themes:\n  - id: a\nscope_windw: 3\n", "unknown key 'scope_windw'"),
    ("taxonomy", "themes:\n  - id: a\n    cue: [x]\n", "unknown key 'themes.0.cue'"),
    ("taxonomy", "themes:\n  - id: a-b\n", "themes.0.id: String should match pattern"),
    ("taxonomy", "labelling_unit: utterance\nthemes:\n  - id: a\n", "labelling_unit: Input should be 'sentence'"),
    ("taxonomy", "multi_label: false\nthemes:\n  - id: a\n", "multi_label: Input should be True"),
    ("taxonomy", "themes: []\n", "themes: List should have at least 1 item"),
    ("stopwords", "verbs: [思う]\nnouns: こと: x\n", "invalid YAML"),
    ("stopwords", "verbs: [思う, no]\n", "verbs.1: Input should be a valid string (got False)"),
    ("stopwords", "verbs: {思う: 1}\n", "verbs: Input should be a valid list"),
    ("roles", "roles: {君: 議員}\nhonorific: [様]\n", "unknown key 'honorific'"),
    ("compounds", "alias: {B5G: Beyond 5G}\n", "unknown key 'alias'"),
])
def test_config_files_are_validated_on_load(tmp_path, name, text, error):
    """configs/*.yaml, like params.yaml: a misspelled key or a wrong type is one line naming it and the file."""
    from pipeline import taxonomy, vocab
    from pipeline.config import ConfigError
    from pipeline.parse.vocab import load_vocab

    p = tmp_path / f"{name}.yaml"
    p.write_text(text, encoding="utf-8")
    load = {"taxonomy": taxonomy.load_taxonomy, "stopwords": vocab.load_stopwords, "roles": vocab.role_vocabulary,
            "compounds": lambda q: load_vocab(compounds_path=q)}[name]
    with pytest.raises(ConfigError) as exc:
        load(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: ") and error in msg and "\n" not in msg


def test_shipped_config_files_validate_and_keep_the_label_ids():
    from pipeline import taxonomy
    from pipeline.config import CONFIGS
    from pipeline.config_files import FILES, load_config_file

    assert {p.stem for p in CONFIGS.glob("*.yaml")} == set(FILES)  # every config file has a model
    for name in FILES:
        load_config_file(name)
    raw = load_config_file("taxonomy")
    assert (raw.labelling_unit, raw.multi_label) == ("sentence", True)
    assert taxonomy.load_taxonomy().ids == [t.id for t in raw.themes] and len(raw.themes) == 12


def test_bad_rule_fails_in_the_classifier_loader_only(tmp_path):
    from pipeline import taxonomy
    from pipeline.classify.taxonomy import load_taxonomy
    from pipeline.errors import PipelineError

    p = tmp_path / "tax.yaml"
    p.write_text("themes:\n  - id: a\n    rules: ['x AND']\n", encoding="utf-8")
    assert taxonomy.load_taxonomy(p).ids == ["a"]  # the report only needs ids and names
    with pytest.raises(PipelineError, match="tax.yaml.*bad rule"):
        load_taxonomy(p)
    p.write_text("scope: デジタル\nscope_in_sentence: 'システム OR'\nthemes:\n  - id: a\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="tax.yaml: scope_in_sentence: bad rule"):
        load_taxonomy(p)


def test_select_meetings_keeps_order_and_names_a_missing_meeting():
    """One meeting filter for `label-queue --meeting` and `score --meeting` (each its own message)."""
    import pandas as pd

    from pipeline.dataset import select_meetings
    from pipeline.errors import PipelineError

    df = pd.DataFrame({"meeting_id": ["m1", "m2", "m1", "m3"], "text": ["a", "b", "c", "d"]}, index=[7, 8, 9, 10])
    got = select_meetings(df, ["m1", "m3"], "sents.parquet", "no sentences of meeting {}")
    assert got["text"].tolist() == ["a", "c", "d"] and got.index.tolist() == [0, 1, 2]
    with pytest.raises(PipelineError, match=r"sents\.parquet.*no sentences of meeting 'nope'"):
        select_meetings(df, ["m1", "nope"], "sents.parquet", "no sentences of meeting {}")


def test_topics_evaluation_does_not_import_bertopic():
    import subprocess
    import sys

    code = "import sys, pipeline.topics.evaluate; print('bertopic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_one_line_break_rule_for_readers_and_cells():
    """pipeline.textio is the one home of the line-break rule: ``split_lines`` breaks where
    ``str.splitlines`` does and joins back exactly; spreadsheet cells normalise the same breaks."""
    from pipeline.cells import neutralise_cell
    from pipeline.textio import LINE_BREAKS, lines_of, normalize_breaks, split_lines

    text = "a\r\nb\rc\u2028d\x85e\ff\n\n=g"
    assert lines_of(text) == text.splitlines()
    assert "".join(line + nl for line, nl in split_lines(text)) == text
    assert split_lines("x\r\n")[-1] == ("x", "\r\n") and split_lines("") == []
    assert set(LINE_BREAKS) == {c for c in map(chr, range(0x3000)) if len((c + "x").splitlines()) == 2}
    assert normalize_breaks(text, " ") == "a b c d e f  =g"
    assert neutralise_cell(text) == normalize_breaks(text).replace("\n=g", "\n'=g")


def test_text_decoding_is_strict(tmp_path):
    from pipeline.errors import PipelineError
    from pipeline.textio import decode_bytes, read_input

    s = "令和６年４月２４日　会議を開きます。\n"
    assert decode_bytes(s.encode("cp932")) == (s, "cp932")
    assert decode_bytes(s.encode("euc_jp")) == (s, "euc_jp")
    assert decode_bytes(b"\xef\xbb\xbf" + s.encode()) == (s, "utf-8-sig")
    assert decode_bytes(s.encode("utf-16-le"))[0] == s  # no BOM, one clean byte order
    with pytest.raises(PipelineError, match="NUL byte"):
        decode_bytes(s.encode() * 300 + b"\x00")
    with pytest.raises(PipelineError, match="not a regular file"):
        read_input(tmp_path, "dir")
    f = tmp_path / "m.txt"
    f.write_bytes(s.encode())
    assert read_input(f, "m.txt") == s.encode()
