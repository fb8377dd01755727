"""Growing the labels: the sentences the model is least sure about, or where rules and model disagree."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pipeline.labels import text_key

QUEUE_COLUMNS = ["sentence_id", "meeting_id", "speaker", "topic_id", "previous_text", "text", "predicted",
                 "rule_hits", "uncertainty", "reason", "labels"]

#: a candidate this similar (cosine of sentence embeddings) to a queued sentence is a near-duplicate
NEAR_DUPLICATE_COSINE = 0.9
#: without embeddings: character-trigram Jaccard similarity above which a candidate is a near-duplicate
NEAR_DUPLICATE_JACCARD = 0.6
#: priority lost per sentence already queued from the same topic / the same speaker (spread)
SPREAD_PENALTY = 0.25


def _trigrams(key: str) -> set[str]:
    return {key[i:i + 3] for i in range(max(len(key) - 2, 1))}


def _diverse(cands: list[dict], n: int) -> list[dict]:
    """Greedy pick by priority, minus SPREAD_PENALTY per already-picked sentence of the same
    topic and of the same speaker; near-duplicates of a picked sentence (``_vec``: its normalised
    embedding, cosine; else character trigrams) are skipped."""
    picked: list[dict] = []
    topic_n: dict = {}
    speaker_n: dict = {}
    vecs = []
    grams = []
    left = list(cands[:max(20 * n, 500)])  # candidates arrive sorted by priority
    while left and len(picked) < n:
        best, best_score = None, -np.inf
        for c in left:
            score = c["priority"] - SPREAD_PENALTY * (topic_n.get(c["topic_id"], 0) + speaker_n.get(c["speaker"], 0))
            if score > best_score:
                best, best_score = c, score
        left.remove(best)
        v = best.get("_vec")
        if v is not None and vecs:
            if max(float(v @ w) for w in vecs) >= NEAR_DUPLICATE_COSINE:
                continue
        g = _trigrams(text_key(best["text"]))
        if any(len(g & h) / max(len(g | h), 1) >= NEAR_DUPLICATE_JACCARD for h in grams):
            continue
        picked.append(best)
        if v is not None:
            vecs.append(v)
        grams.append(g)
        if best["topic_id"] not in ("", None, -1):
            topic_n[best["topic_id"]] = topic_n.get(best["topic_id"], 0) + 1
        speaker_n[best["speaker"]] = speaker_n.get(best["speaker"], 0) + 1
    return picked


def build_queue(model, sentences: pd.DataFrame, P: np.ndarray, rule_evidence: list[dict],
                labelled_keys=frozenset(), n: int = 50, embeddings=None, new_meetings_only: bool = True
                ) -> pd.DataFrame:
    """Pick the unlabelled sentences that teach the model most about the new meetings.

    Priority = uncertainty (+1 per theme where rules and model disagree); picked greedily
    with a penalty per sentence already queued from the same topic (``topic_id`` column,
    when present) and the same speaker, skipping near-duplicates of queued sentences
    (embedding cosine >= NEAR_DUPLICATE_COSINE, else character-trigram Jaccard). With
    ``new_meetings_only``, sentences come from meetings that are not yet (mostly) labelled
    whenever there are such meetings (the new council), else from every meeting (a meeting
    counts as labelled when at least half its sentences are).

    Uncertainty of a sentence = max over themes of 1 - |p - t| / max(t, 1 - t) (1 at the
    threshold t, 0 when the calibrated score p is at 0 or 1). Fill ``labels`` with theme ids
    separated by ``;`` (``-`` = deliberately no theme), save the CSV into data/labels/.

    ``labelled_keys`` may be a mapping key -> label ids: when fewer than ``n`` unlabelled
    sentences remain, the queue is topped up with labelled sentences whose label the model
    contradicts (``labels`` pre-filled with the current label, to confirm or correct).

    The whole table at once; :class:`QueueBuilder` builds the same queue meeting by meeting.
    """
    qb = QueueBuilder(model, labelled_keys, n, new_meetings_only)
    qb.add(sentences, P, rule_evidence, embeddings)
    return qb.queue()


class QueueBuilder:
    """:func:`build_queue` fed meeting by meeting (``add`` each meeting's rows whole, in corpus
    order; then ``queue()``): the same queue, holding only the best ``max(20 n, 500)`` candidates of
    labelled and of unlabelled meetings, the labelled sentences the model contradicts, and the text
    keys seen so far, never the corpus."""

    def __init__(self, model, labelled_keys=frozenset(), n: int = 50, new_meetings_only: bool = True):
        self.model, self.n, self.new_meetings_only = model, n, new_meetings_only
        self.ids = [str(c) for c in model.classes_]
        self.labelled_keys = labelled_keys
        self.labelled = set(labelled_keys)
        self.seen: set[str] = set(labelled_keys)
        self.limit = max(20 * n, 500)  # _diverse looks at no more candidates than these
        self.pools: dict[bool, list] = {False: [], True: []}  # in a labelled meeting? -> min-heap of the best
        self.review: list[dict] = []
        self.review_keys: set[str] = set()
        self.offset = 0

    def add(self, sentences: pd.DataFrame, P: np.ndarray, rule_evidence: list[dict], embeddings=None) -> None:
        """One or more whole meetings' rows (a meeting never split across calls)."""
        import heapq

        ids = self.ids
        ctx = _Context(self.model, sentences, P, self.labelled_keys)
        if embeddings is not None:
            embeddings = np.asarray(embeddings, dtype=np.float32)
            embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-9)
        # a meeting counts as labelled when at least half its sentences are (a new meeting sharing
        # a few stock phrases such as "ありがとうございました。" with the labels is still new)
        done = pd.Series([text_key(t) in self.labelled for t in ctx.texts], dtype=float).groupby(
            pd.Series(ctx.meeting)).mean()
        labelled_meetings = set(done.index[done >= 0.5])
        for i, text in enumerate(ctx.texts):
            key = text_key(text)
            if key in ctx.gold and text.strip():
                pred = {ids[j] for j in np.flatnonzero(ctx.Yp[i])}
                have = set(ctx.gold[key]) & set(ids)
                if pred != have and key not in self.review_keys:
                    self.review_keys.add(key)
                    self.review.append(_review_row(ctx, i, have, pred, rule_evidence[i]))
            if not key or key in self.seen:
                continue
            self.seen.add(key)
            pred = {ids[j] for j in np.flatnonzero(ctx.Yp[i])}
            rules = set(rule_evidence[i].keys()) & set(ids)
            dis = sorted(pred ^ rules)
            g = self.offset + i
            row = {**ctx.row(i, pred, rules), "_row": g, "_vec": None if embeddings is None else embeddings[i],
                   "priority": float(ctx.unc[i]) + len(dis),
                   "reason": ("rules vs model: " + ", ".join(dis)) if dis else "uncertain", "labels": ""}
            pool = self.pools[ctx.meeting[i] in labelled_meetings]
            item = (row["priority"], row["uncertainty"], -g, row)  # the heap's root: the worst kept
            if len(pool) < self.limit:
                heapq.heappush(pool, item)
            elif item[:3] > pool[0][:3]:
                heapq.heapreplace(pool, item)
        self.offset += len(ctx.texts)

    def queue(self) -> pd.DataFrame:
        new = [it[3] for it in self.pools[False]]
        rows = new if self.new_meetings_only and new else new + [it[3] for it in self.pools[True]]
        rows.sort(key=lambda r: (-r["priority"], -r["uncertainty"], r["_row"]))
        n = self.n
        q = pd.DataFrame(_diverse(rows[:self.limit], n), columns=QUEUE_COLUMNS + ["priority"])
        if len(q) < n and self.review:
            ex = pd.DataFrame(self.review).sort_values("priority", ascending=False, kind="stable").head(n - len(q))
            q = pd.concat([q, ex], ignore_index=True) if len(q) else ex
        return q[QUEUE_COLUMNS].reset_index(drop=True)


class _Context:
    """Per-sentence columns the queue rows are built from."""

    def __init__(self, model, sentences: pd.DataFrame, P: np.ndarray, labelled_keys):
        self.ids = [str(c) for c in model.classes_]
        thr = np.asarray(model.thresholds_)
        self.Yp = model.decide(P) if len(P) else np.zeros((0, len(self.ids)), dtype=int)
        scale = np.maximum(thr, 1 - thr)[None, :]
        self.unc = (1 - np.abs(P - thr[None, :]) / scale).max(1) if len(P) else np.zeros(0)
        self.sentences = sentences
        self.texts = sentences["text"].fillna("").astype(str).tolist()
        self.prev_text = [""] + self.texts[:-1]
        self.utt = sentences["utterance_id"].astype(str).tolist() if "utterance_id" in sentences.columns \
            else [""] * len(self.texts)
        self.gold = labelled_keys if isinstance(labelled_keys, dict) else {}
        self.topic = sentences["topic_id"].tolist() if "topic_id" in sentences.columns else [""] * len(self.texts)
        self.meeting = sentences["meeting_id"].astype(str).tolist() if "meeting_id" in sentences.columns \
            else [""] * len(self.texts)
        # plain lists: a pandas .iloc per candidate row cost ~3 s on 25k candidates
        self.sids = sentences["sentence_id"].tolist() if "sentence_id" in sentences.columns \
            else [str(i) for i in range(len(self.texts))]
        self.speakers = sentences["speaker"].tolist() if "speaker" in sentences.columns else [""] * len(self.texts)

    def row(self, i: int, pred: set, rules: set) -> dict:
        ids = self.ids
        return {
            "topic_id": self.topic[i],
            "sentence_id": self.sids[i],
            "meeting_id": self.meeting[i],
            "speaker": self.speakers[i],
            "previous_text": self.prev_text[i] if i > 0 and self.utt[i - 1] == self.utt[i] else "",
            "text": self.texts[i],
            "predicted": ";".join(sorted(pred, key=ids.index)),
            "rule_hits": ";".join(sorted(rules, key=ids.index)),
            "uncertainty": round(float(self.unc[i]), 4),
        }


def _review_row(ctx: _Context, i: int, have: set, pred: set, rule_evidence: dict) -> dict:
    """A labelled sentence whose label the model contradicts (``labels`` pre-filled with the
    current label, to confirm or correct); the most contradicted come first in the queue."""
    ids = ctx.ids
    return {
        **ctx.row(i, pred, set(rule_evidence) & set(ids)),
        "priority": float(ctx.unc[i]) + len(have ^ pred),
        "reason": "review: labelled " + (";".join(sorted(have, key=ids.index)) or "-")
                  + ", model says " + (";".join(sorted(pred, key=ids.index)) or "-"),
        "labels": ";".join(sorted(have, key=ids.index)) or "-",
    }


def evidence_from_column(values) -> list[dict]:
    return [json.loads(v) if isinstance(v, str) and v else {} for v in values]
