"""Documented rules of the topic model: which sentences are procedural, and how topics are named."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

from pipeline.settings import default

PROCEDURAL_LABEL = "議事進行・挨拶"
OUTLIER_LABEL = "未分類"


def procedural_mask(texts: Sequence[str], terms: Sequence[Sequence[str]], *,
                    min_terms: int = default("topics.procedural.min_terms"),
                    max_chars: int = default("topics.procedural.max_chars"), cues: Sequence[str] = ()) -> np.ndarray:
    """The documented procedural rule: True where a sentence is meeting management, not policy.

    A sentence is procedural when it has fewer than ``min_terms`` content terms
    (after the boilerplate stop list: "ありがとうございます", "以上です", "次をお願いします"),
    or when it is short (<= ``max_chars`` characters) and contains a procedural cue
    ("ページ", "御覧", "御発言", "議題", ... — params.yaml ``topics.procedural.cues``).
    """
    pattern = re.compile("|".join(re.escape(c) for c in cues)) if cues else None
    out = np.zeros(len(texts), dtype=bool)
    for i, (t, ts) in enumerate(zip(texts, terms)):
        t = unicodedata.normalize("NFKC", str(t or "")).strip()
        if len(ts) < min_terms:
            out[i] = True
        elif pattern is not None and len(t) <= max_chars and pattern.search(t):
            out[i] = True
    return out


def short_label(words: Sequence[str], n: int = default("topics.label_terms"),
                max_chars: int = default("topics.label_max_chars")) -> str:
    """First ``n`` top terms of at most ``max_chars`` characters, skipping terms nested in a chosen one."""
    chosen: list[str] = []
    for pool in ([w for w in words if len(w) <= max_chars], list(words)):
        for w in pool:
            if len(chosen) >= n:
                break
            if w and not any(w in c or c in w for c in chosen):
                chosen.append(w)
        if chosen:
            break
    return "・".join(chosen)


def topic_labels(topics: Sequence[int], procedural_topic: int | None, words_of,
                 n_terms: int = default("topics.label_terms"),
                 max_chars: int = default("topics.label_max_chars")) -> dict[int, str]:
    """Label of every topic id: 未分類 for -1, 議事進行・挨拶 for the procedural topic, else its top terms."""
    labels = {}
    for t in sorted(set(int(x) for x in topics)):
        if t == -1:
            labels[t] = OUTLIER_LABEL
        elif t == procedural_topic:
            labels[t] = PROCEDURAL_LABEL
        else:
            labels[t] = short_label([w for w, _ in words_of(t)], n_terms, max_chars) or f"topic {t}"
    return labels
