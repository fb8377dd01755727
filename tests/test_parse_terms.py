"""Content-term extraction as a pure object: hand-built Sudachi-tagged tokens, no model load.

The tags are the ones SudachiPy (split mode C, as GiNZA uses it) gives these words; the
same rules run on real GiNZA docs in tests/test_parse.py.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from pipeline.parse.terms import ContentTerms, compound_matches, token_category
from pipeline.parse.vocab import TermVocab

NOUN, SAHEN, PROPER = "名詞-普通名詞-一般", "名詞-普通名詞-サ変可能", "名詞-固有名詞-一般"


def tok(text, tag, lemma=None, norm=None, pos="NOUN"):
    return SimpleNamespace(text=text, tag_=tag, pos_=pos, lemma_=lemma or text, norm_=norm or lemma or text,
                           is_space=False)


PARTICLE = ("を", "助詞-格助詞")


def test_noun_runs_become_one_compound_term_and_verbs_their_lemma():
    doc = [tok("デジタル", NOUN), tok("人材", NOUN), tok(*PARTICLE, pos="ADP"), tok("育成", SAHEN),
           tok("し", "動詞-非自立可能", lemma="する", pos="AUX"), tok("、", "補助記号-読点", pos="PUNCT"),
           tok("地域", NOUN), tok("を", "助詞-格助詞", pos="ADP"), tok("支え", "動詞-一般", lemma="支える", pos="VERB")]
    assert ContentTerms(TermVocab())(doc) == ["デジタル人材", "育成", "地域", "支える"]


def test_compound_list_entries_match_first_and_stay_whole():
    vocab = TermVocab(compounds=("ラスト・ワンマイル",))
    doc = [tok("ラスト", NOUN), tok("・", "補助記号-一般", pos="SYM"), tok("ワンマイル", NOUN), tok("の", "助詞-格助詞"),
           tok("整備", SAHEN)]
    assert ContentTerms(vocab)(doc) == ["ラスト・ワンマイル", "整備"]
    assert compound_matches(["ラスト", "・", "ワンマイル", "の"], vocab.match_table) == {0: (3, "ラスト・ワンマイル")}


def test_honorific_prefix_numbers_and_stop_words_are_dropped():
    vocab = TermVocab(stopwords=frozenset({"こと"}), drop_prefixes=frozenset({"御"}))
    doc = [tok("御", "接頭辞", pos="NOUN"), tok("意見", NOUN), tok("2020", "名詞-数詞", pos="NUM"),
           tok("年", "接尾辞-名詞的-助数詞"), tok("比", "接尾辞-名詞的-一般"), tok("の", "助詞-格助詞"),
           tok("検討", SAHEN), tok("こと", "名詞-普通名詞-一般")]
    assert ContentTerms(vocab)(doc) == ["意見", "検討"]


def test_a_run_longer_than_max_parts_is_a_list_of_nouns():
    doc = [tok("東京", PROPER), tok("大阪", PROPER), tok("名古屋", PROPER)]
    assert ContentTerms(TermVocab(max_parts=2))(doc) == ["東京", "大阪", "名古屋"]
    assert ContentTerms(TermVocab(max_parts=6))(doc) == ["東京大阪名古屋"]


def test_compound_word_lists_and_max_parts_have_one_home_each(tmp_path):
    """Prefix/suffix lists come from configs/compounds.yaml only (TermVocab declares none), and
    the part limit from params.yaml parse.max_compound_parts: the YAML key that used to override
    it silently is now an error pointing there."""
    from pipeline.config import ConfigError
    from pipeline.parse.vocab import load_vocab
    from pipeline.settings import Settings

    assert not TermVocab().drop_prefixes and not TermVocab().break_suffixes
    shipped = load_vocab()
    assert {"御", "第", "諸"} <= shipped.drop_prefixes and "なり" in shipped.break_suffixes
    assert shipped.max_parts == Settings().parse.max_compound_parts and load_vocab(max_parts=3).max_parts == 3
    bad = tmp_path / "compounds.yaml"
    bad.write_text("compounds: [5G]\nmax_parts: 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"compounds\.yaml: .*'max_parts'.*params\.yaml parse\.max_compound_parts"):
        load_vocab(compounds_path=bad)
    bad.write_text("compounds: [5G]\ndrop_prefix: [御]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"compounds\.yaml: unknown key 'drop_prefix'$"):
        load_vocab(compounds_path=bad)
    bad.write_text("compounds: [5G, 2020]\n", encoding="utf-8")
    assert load_vocab(compounds_path=bad).compounds == ("2020", "5G")  # numbers read as words


def test_token_categories_follow_the_sudachi_tag():
    assert token_category(tok("3", "名詞-数詞", pos="NUM")) == "num"
    assert token_category(tok("今", "名詞-普通名詞-副詞可能")) == "advnoun"
    assert token_category(tok("・", "補助記号-一般")) == "dot"
    assert token_category(tok("的", "接尾辞-形状詞的")) == "other"


# --------------------------------------------------------------------------- NER gate (pure)

class _Doc(list):
    ents = ()


def test_ner_gate_windows_surround_trigger_tokens_and_merge():
    from pipeline.parse.gate import NerGate, is_trigger

    assert is_trigger("名詞-固有名詞-地名-一般", "東京") and is_trigger("名詞-数詞", "三")
    assert is_trigger("名詞-普通名詞-一般", "総務省") and is_trigger("名詞-普通名詞-一般", "構成員")
    assert is_trigger("名詞-普通名詞-一般", "スマートフォン") and is_trigger("名詞-普通名詞-一般", "DX")
    assert is_trigger("名詞-普通名詞-副詞可能", "昨年") and not is_trigger("名詞-普通名詞-副詞可能", "ところ") and is_trigger("名詞-普通名詞-一般", "一番")
    assert not is_trigger("名詞-普通名詞-一般", "地域") and not is_trigger("動詞-一般", "支える")
    # programme heads only at the end of a compound (防災 + 計画), not alone (この計画, 方法)
    assert is_trigger("名詞-普通名詞-サ変可能", "計画", prev_tag="名詞-普通名詞-一般")
    assert not is_trigger("名詞-普通名詞-サ変可能", "計画", prev_tag="連体詞")
    assert is_trigger("名詞-普通名詞-一般", "住民税") and not is_trigger("名詞-普通名詞-一般", "方法")
    assert is_trigger("接尾辞-名詞的-一般", "庁") and is_trigger("名詞-普通名詞-一般", "選手")
    plain = tok("地域", NOUN)
    doc = _Doc([plain] * 5 + [tok("東京", PROPER)] + [plain] * 12 + [tok("三", "名詞-数詞", pos="NUM")] + [plain] * 3)
    gate = NerGate(margin=2)
    assert gate.triggers(doc) == [5, 18]
    assert gate.windows(doc) == [(3, 8), (16, 21)]
    assert NerGate(margin=6).windows(doc) == [(0, 22)]  # windows 0-12 and 12-22 touch: one window
    assert NerGate(margin=2).windows(_Doc([plain] * 4)) == []


def test_learned_gate_weights_fit_the_features():
    """pipeline/parse/gate_model.py (generated by benchmarks/ner_gate_fit.py): one weight per vector
    dimension of ja_ginza (300), per listed Sudachi tag and per character feature; a finite threshold."""
    import math

    from pipeline.parse import gate_model as gm
    from pipeline.parse.gate import N_CHAR_FEATURES, char_features

    assert len(gm.VECTOR) == 300 and len(gm.TAG) == len(gm.TAGS) == len(set(gm.TAGS))
    assert len(gm.CHAR) == N_CHAR_FEATURES == len(char_features("水門"))
    assert math.isfinite(gm.THRESHOLD) and math.isfinite(gm.BIAS)
    assert char_features("水門") == (1.0, 0.0, 0.0, 1.0, 0.0) and char_features("さき")[1] == 1.0


def test_ner_mode_accepts_the_old_booleans():
    import pytest

    from pipeline.parse.gate import ner_mode

    assert [ner_mode(v) for v in ("gated", "FULL", True, False)] == ["gated", "full", "full", "off"]
    with pytest.raises(ValueError):
        ner_mode("partial")
