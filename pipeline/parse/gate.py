"""NER only where it pays: the windows of a tokenised sentence that can hold an entity.

GiNZA's ``tok2vec`` + ``ner`` are nearly all of the parse stage's cost, and most tokens
of spoken minutes are not part of any entity. The gate looks at what the tokenizer
(SudachiPy) already says about every token and marks *trigger* tokens:

* proper nouns (``固有名詞``: people, places, organisations Sudachi knows);
* numerals -- Sudachi's ``名詞-数詞``, any digit, any kanji numeral (三十, 一番, 第二) -- and
  counters (``助数詞``: 年 月 日 円 人 件): DATE / TIME / MONEY / PERCENT / ordinals;
* katakana or Latin letters (ORG / PRODUCT / method names Sudachi tags as common nouns:
  スマートフォン, DX, ICT);
* nouns ending like an organisation (省 庁 局 課 部 会 ...: 総務省, 振興課, 事務局), a
  person / position / nationality (員 長 官 者 人 ... 先生 さん: 構成員, 座長, 参事官, 日本人), a
  language, place or colour (語 内 場 色 緑 ...: 英語, 都内, 競技場), and the role words
  of the shared role vocabulary;
* heads of programme, plan, law and contract names ending a compound (防災 + 計画, 支援 + 事業,
  増進 + 法, 住民税, 随意契約) and a few common nouns GiNZA tags as entities (選手, 宝くじ, 午前中);
* adverbial nouns (``副詞可能``) that name a time (来年, 本年, 金曜日, 午前, 下旬): dates without
  numerals -- not the many that do not (今, ところ, ため, 今回);
* the meeting's known people (matched by rule, pre-set as ``Person`` entities);
* *learned* (:class:`LearnedTriggers`): any other token whose logistic score -- from its static
  ja_ginza vector, Sudachi tag and character class, weights in :mod:`pipeline.parse.gate_model`
  fitted by ``benchmarks/ner_gate_fit.py`` on full NER of committee-olympic.json -- passes the
  threshold: the long tail of common nouns GiNZA tags (水門 Facility_Part, 飲料水 Food_Other,
  顔 Animal_Part) that no word list keeps up with.

Each trigger opens a window of ``margin`` tokens either side; overlapping windows merge.
``tok2vec`` + ``ner`` run on the windows only (as docs cut from the tokenised sentence, so
the tokens are exactly the sentence's). Entities are then predicted with a little less
context than the full sentence gives; recall and precision against full NER are measured
in ``benchmarks/parse.py`` and checked on the sample in the tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_KATAKANA = re.compile(r"[\u30A1-\u30FA]")
_LATIN = re.compile(r"[A-Za-zＡ-Ｚａ-ｚ]")
_DIGIT = re.compile(r"[0-9０-９]")
_KANJI_NUMERAL = re.compile(r"[一二三四五六七八九十百千万億兆〇]")
#: adverbial nouns (副詞可能) that name a time: 来年, 本年, 夏, 午前, 下旬, 年末, 半分 (not 今, ところ, ため)
_TIME_CHARS = re.compile(r"[年月日週曜時春夏秋冬朝晩夜午旬末半]")
#: last character of organisation names Sudachi tags as common nouns (総務省, 振興課, 事務局, 委員会)
ORG_ENDINGS = tuple("省庁局課部室院会団所館校園港駅県都府道市区町村国党社")
#: endings of person / position / nationality words (構成員, 座長, 参事官, 責任者, 高校生, 先生, 日本人)
PERSON_ENDINGS = (*"員長官師者家士生人", "先生", "さん", "様", "君", "氏")
#: endings of common-noun entities of other kinds: languages (日本語, 英語), places (都内, 競技場), colours,
#: federations (連盟), documents (報告書), charges (電気料金, 手数料率)
OTHER_ENDINGS = (*"語内場色", *"緑赤青白黒", "連盟", "料金", "料率")
#: heads of programme / plan / law / contract names (地域防災計画, 復興支援事業, 健康増進法, 住民税,
#: 随意契約, 招致決議): a trigger when the token is itself a compound or ends one (a noun before it)
PROGRAMME_HEADS = ("計画", "事業", "制度", "法", "条例", "条約", "契約", "決議", "委託", "税", "運動",
                   "主義", "基金", "協定", "構想", "戦略", "報告書")
#: common nouns GiNZA tags as entities of their own (titles, lotteries, times of day)
ENTITY_NOUNS = frozenset({"選手", "監督", "大使", "公使", "閣僚", "人間", "人類", "宝くじ", "午前中", "午後"})

MODES = ("gated", "full", "off")

#: character classes of a token (pipeline.parse.gate_model.CHAR weights): all kanji, all hiragana, 1 / 2 / 3+ chars
N_CHAR_FEATURES = 5
_ALL_KANJI = re.compile(r"^[\u4E00-\u9FFF々〆ヶ]+$")
_ALL_HIRAGANA = re.compile(r"^[\u3041-\u309Fー]+$")


def char_features(text: str) -> tuple[float, ...]:
    n = len(text)
    return (float(bool(_ALL_KANJI.match(text))), float(bool(_ALL_HIRAGANA.match(text))),
            float(n == 1), float(n == 2), float(n >= 3))


def ner_mode(value) -> str:
    """``parse.ner`` as one of :data:`MODES` (``true`` = full, ``false`` = off, as before)."""
    if value is True:
        return "full"
    if value is False or value is None:
        return "off"
    mode = str(value).strip().lower()
    if mode not in MODES:
        raise ValueError(f"parse.ner must be one of {', '.join(MODES)} (or true/false), not {value!r}")
    return mode


def is_trigger(tag: str, text: str, roles: frozenset[str] = frozenset(), prev_tag: str = "") -> bool:
    """Can this token (Sudachi POS ``tag``, surface ``text``; ``prev_tag``: the token before) be part
    of an entity?"""
    if "固有名詞" in tag or "助数詞" in tag or tag.startswith("名詞-数詞"):
        return True
    if "副詞可能" in tag and _TIME_CHARS.search(text):
        return True
    if _DIGIT.search(text) or _KANJI_NUMERAL.search(text) or _KATAKANA.search(text) or _LATIN.search(text):
        return True
    if tag.startswith(("名詞", "接尾辞")) and text.endswith(ORG_ENDINGS + OTHER_ENDINGS):  # 警視 + 庁 (接尾辞)
        return True
    if text in ENTITY_NOUNS:
        return True
    if tag.startswith("名詞") and text.endswith(PROGRAMME_HEADS) and (
            len(text) > 2 or prev_tag.startswith("名詞")):
        return True
    if tag.startswith(("名詞", "接尾辞")) and text.endswith(PERSON_ENDINGS):
        return True
    return text in roles


def features_of(doc, tags: tuple[str, ...]):
    """Feature rows of the learned gate, one per token of ``doc``: the token's static GiNZA vector,
    a one-hot of its Sudachi tag among ``tags``, :func:`char_features` (benchmarks/ner_gate_fit.py)."""
    import numpy as np

    index = {t: j for j, t in enumerate(tags)}
    n_vec = doc.vocab.vectors.shape[1]
    X = np.zeros((len(doc), n_vec + len(tags) + N_CHAR_FEATURES), dtype="float32")
    for i, t in enumerate(doc):
        if t.has_vector:
            X[i, :n_vec] = t.vector
        if t.tag_ in index:
            X[i, n_vec + index[t.tag_]] = 1.0
        X[i, n_vec + len(tags):] = char_features(t.text)
    return X


class LearnedTriggers:
    """The learned part of the gate (weights: :mod:`pipeline.parse.gate_model`, fitted by
    ``benchmarks/ner_gate_fit.py`` on committee-olympic.json): a token is a trigger when the
    logistic score of its static vector, Sudachi tag and character class passes ``THRESHOLD``.
    Scoring is a dot product per token on what the tokenizer already gives: no tok2vec."""

    def __init__(self, vocab, threshold: float | None = None):
        import numpy as np

        from pipeline.parse import gate_model as gm

        if vocab.vectors.shape[1] != len(gm.VECTOR):
            raise ValueError(f"NER gate weights are for {len(gm.VECTOR)}-d vectors (ja_ginza {gm.MODEL}), "
                             f"the model has {vocab.vectors.shape[1]}-d ones")
        self.vector = np.asarray(gm.VECTOR, dtype="float32")
        self.tag = dict(zip(gm.TAGS, gm.TAG))
        self.char = np.asarray(gm.CHAR, dtype="float32")
        self.bias = float(gm.BIAS)
        self.threshold = float(gm.THRESHOLD if threshold is None else threshold)

    def scores(self, doc):
        import numpy as np

        if not len(doc):
            return np.zeros(0, dtype="float32")
        vec = np.stack([t.vector if t.has_vector else np.zeros_like(self.vector) for t in doc]) @ self.vector
        other = [self.tag.get(t.tag_, 0.0) + float(np.dot(char_features(t.text), self.char)) for t in doc]
        return vec + np.asarray(other, dtype="float32") + self.bias

    def __call__(self, doc) -> list[int]:
        return [int(i) for i in (self.scores(doc) > self.threshold).nonzero()[0]]


@lru_cache(maxsize=4)
def learned_triggers(vocab) -> LearnedTriggers:
    """One :class:`LearnedTriggers` per vocab (i.e. per loaded model)."""
    return LearnedTriggers(vocab)


@dataclass(frozen=True)
class NerGate:
    """Trigger tokens and the NER windows around them (``margin`` tokens either side); ``learned``:
    also the tokens a :class:`LearnedTriggers` picks (None: the rules only)."""

    margin: int = 4
    roles: frozenset[str] = frozenset()
    learned: LearnedTriggers | None = None

    def triggers(self, doc) -> list[int]:
        """Indices of the trigger tokens of ``doc``, pre-set entities (known people) included."""
        hits = {i for i, t in enumerate(doc)
                if is_trigger(t.tag_, t.text, self.roles, doc[i - 1].tag_ if i else "")}
        if self.learned is not None:
            hits.update(self.learned(doc))
        for e in doc.ents:
            hits.update(range(e.start, e.end))
        return sorted(hits)

    def windows(self, doc) -> list[tuple[int, int]]:
        """Token spans ``(start, end)`` to run NER on: triggers +- ``margin``, merged, in order."""
        spans: list[list[int]] = []
        n = len(doc)
        for i in self.triggers(doc):
            a, b = max(0, i - self.margin), min(n, i + self.margin + 1)
            if spans and a <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], b)
            else:
                spans.append([a, b])
        return [(a, b) for a, b in spans]


def entity_agreement(reference, candidate, by: str = "label") -> dict:
    """Recall and precision of ``candidate`` entities against ``reference`` (e.g. gated vs full NER).

    An entity matches when sentence, start, end and label are equal. Returns
    ``{"recall", "precision", "n_reference", "n_candidate", "per_label": {label: {recall, n}}}``
    (per-label recall over the reference's labels in column ``by``).
    """
    key = ["sentence_id", "start", "end", "label"]
    ref = set(map(tuple, reference[key].itertuples(index=False)))
    cand = set(map(tuple, candidate[key].itertuples(index=False)))
    hit = ref & cand
    labels = dict(zip(map(tuple, reference[key].itertuples(index=False)), reference[by]))
    per: dict[str, list[int]] = {}
    for k in ref:
        per.setdefault(str(labels[k]), [0, 0])
        per[str(labels[k])][0] += k in hit
        per[str(labels[k])][1] += 1
    return {
        "recall": round(len(hit) / len(ref), 4) if ref else 1.0,
        "precision": round(len(hit) / len(cand), 4) if cand else 1.0,
        "n_reference": len(ref), "n_candidate": len(cand),
        "per_label": {lab: {"recall": round(h / n, 4), "n": n}
                      for lab, (h, n) in sorted(per.items(), key=lambda kv: -kv[1][1])},
    }
