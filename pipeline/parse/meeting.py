"""One meeting (one partition): sentences -> chunks -> tokens, content terms and entities."""
from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field

import pandas as pd

from pipeline.parse.entities import ENTITY_COLUMNS, coarse_label, known_spans, names_pattern, set_known_entities
from pipeline.parse.gate import NerGate, learned_triggers, ner_mode
from pipeline.parse.models import KNOWN_PERSONS, STRIP, load_nlp
from pipeline.parse.sentences import SENTENCE_COLUMNS, SUDACHI_MAX_BYTES, byte_chunks, check_bytes, split_utterances
from pipeline.parse.terms import extractor
from pipeline.parse.vocab import TermVocab
from pipeline.settings import ParseSettings
from pipeline.vocab import person_suffixes

TOKEN_COLUMNS = ["sentence_id", "i", "surface", "lemma", "norm", "pos", "tag", "is_stop", "start"]


def _in_daemon() -> bool:
    return bool(multiprocessing.current_process().daemon)


def pipe_settings(n_docs: int, params: dict) -> tuple[int, int]:
    """``(n_process, batch_size)`` for nlp.pipe: batches small enough to keep every process busy;
    one process inside daemonic workers (they cannot fork) or for a handful of docs."""
    n_process = max(1, int(params["n_process"]))
    batch_size = max(1, int(params["batch_size"]))
    if n_process > 1 and (_in_daemon() or n_docs < 2 * n_process):
        n_process = 1
    if n_process > 1:
        # ~8 batches per process: the last batches keep both workers busy (measured on the sample:
        # batches of ~35 sentences run ~5 % faster than ~70)
        batch_size = max(1, min(batch_size, -(-n_docs // (8 * n_process))))
    return n_process, batch_size


@dataclass
class Chunks:
    """The texts that reach the tokenizer: every sentence, cut only where it exceeds ``max_bytes``."""

    sent: list[int] = field(default_factory=list)    # row of the sentence in the meeting's table
    offset: list[int] = field(default_factory=list)  # char offset of the chunk in the sentence text
    text: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, sents: pd.DataFrame, max_bytes: int) -> Chunks:
        out, where = cls(), []
        for si, (sid, text) in enumerate(zip(sents["sentence_id"], sents["text"])):
            for a, b in byte_chunks(text, max_bytes):
                out.sent.append(si)
                out.offset.append(a)
                out.text.append(text[a:b])
                where.append(sid)
        check_bytes(out.text, where)
        return out


class MeetingTables:
    """Accumulates one meeting's token rows, terms and entity rows, doc by doc."""

    def __init__(self, sents: pd.DataFrame, vocab: TermVocab):
        self.sents = sents
        self.vocab = vocab
        self.terms_of = extractor(vocab)
        self.terms: list[list[str]] = [[] for _ in range(len(sents))]
        self.n_tok = [0] * len(sents)
        self.tok_rows: dict[str, list] = {c: [] for c in TOKEN_COLUMNS}
        self.sid = sents["sentence_id"].tolist()
        self.meta = sents[["meeting_id", "utterance_id", "speaker"]].to_dict("records")
        self.ent_recs: list[dict] = []

    def add_tokens(self, si: int, off: int, doc) -> None:
        """Tokens and content terms of chunk ``doc`` (sentence row ``si``, at char ``off``)."""
        self.terms[si] += self.terms_of(doc)
        stop, rows, sid = self.vocab.stopwords, self.tok_rows, self.sid[si]
        for t in doc:
            if t.is_space:
                continue
            lemma, norm = t.lemma_, t.norm_
            rows["sentence_id"].append(sid)
            rows["i"].append(self.n_tok[si])
            rows["surface"].append(t.text)
            rows["lemma"].append(lemma)
            rows["norm"].append(norm)
            rows["pos"].append(t.pos_)
            rows["tag"].append(t.tag_)
            rows["is_stop"].append(bool(t.is_stop or lemma in stop or norm in stop or t.text in stop))
            rows["start"].append(off + t.idx)
            self.n_tok[si] += 1

    def add_entities(self, si: int, off: int, ents, known: set[tuple[int, int]]) -> None:
        """Entity rows of one chunk: ``ents`` = ``(text, label, start_char, end_char)`` in the chunk;
        ``source`` says whether the known-person rule set them (their span is in ``known``)."""
        m = self.meta[si]
        for text, label, a, b in ents:
            self.ent_recs.append({
                "sentence_id": self.sid[si], "meeting_id": m["meeting_id"], "utterance_id": m["utterance_id"],
                "speaker": m["speaker"], "text": text, "label": label,
                "coarse_label": coarse_label(label), "start": off + a, "end": off + b,
                "source": "known_speaker" if (a, b) in known else "ner",
            })

    def tables(self) -> dict[str, pd.DataFrame]:
        sents = self.sents
        sents["terms"] = self.terms
        sents["n_tokens"] = self.n_tok
        return {"sentences": sents[SENTENCE_COLUMNS],
                "tokens": pd.DataFrame(self.tok_rows, columns=TOKEN_COLUMNS),
                "entities": pd.DataFrame.from_records(self.ent_recs, columns=ENTITY_COLUMNS)}


def _ents(doc) -> list[tuple[str, str, int, int]]:
    return [(e.text, e.label_, e.start_char, e.end_char) for e in doc.ents]


def _parse_full(nlp, chunks: Chunks, out: MeetingTables, pattern, params: dict) -> None:
    """tok2vec + ner on every chunk. nlp.pipe tokenises (in its worker processes too), so nothing is
    tokenised twice. Texts, not Docs, go to nlp.pipe; Chunks.of guarantees that no text is over
    Sudachi's limit (which would make multi-process nlp.pipe hang)."""
    nlp.get_pipe(KNOWN_PERSONS).pattern = pattern
    n_process, batch_size = pipe_settings(len(chunks.text), params)
    docs = nlp.pipe(chunks.text, batch_size=batch_size, n_process=n_process)
    for si, off, doc in zip(chunks.sent, chunks.offset, docs):
        out.add_tokens(si, off, doc)
        if doc.ents:
            out.add_entities(si, off, _ents(doc), known_spans(doc, pattern))


def gated_entities(nlp, docs: list, gate: NerGate, params: dict) -> list[list[tuple[str, str, int, int]]]:
    """Entities of tokenised ``docs`` (known people pre-set) with tok2vec + ner run only on the gate's
    windows; per doc, ``(text, label, start_char, end_char)`` in text order."""
    where: list[tuple[int, int]] = []  # (doc index, char offset of the window in the doc)
    windows = []
    for k, doc in enumerate(docs):
        doc.user_data.clear()  # Sudachi's sub-tokens: not needed, and not serialisable for worker processes
        for a, b in gate.windows(doc):
            where.append((k, doc[a].idx))
            windows.append(doc if (a, b) == (0, len(doc)) else doc[a:b].as_doc())
    n_process, batch_size = pipe_settings(len(windows), params)
    out: list[list] = [[] for _ in docs]
    with nlp.select_pipes(enable=["tok2vec", "ner", *([STRIP] if n_process > 1 else [])]):
        for (k, off), w in zip(where, nlp.pipe(windows, batch_size=batch_size, n_process=n_process)):
            out[k] += [(text, label, off + a, off + b) for text, label, a, b in _ents(w)]
    return out


def _parse_gated(nlp, chunks: Chunks, out: MeetingTables, pattern, params: dict) -> None:
    """Tokenise every chunk once (tokens, terms, known people), then NER on the gate's windows only."""
    docs = [nlp.make_doc(t) for t in chunks.text]
    known = []
    for si, off, doc in zip(chunks.sent, chunks.offset, docs):
        out.add_tokens(si, off, doc)
        known.append(set_known_entities(doc, pattern))
    gate = NerGate(margin=int(params["ner_context"]), roles=frozenset(person_suffixes()),
                   learned=learned_triggers(nlp.vocab))
    for si, off, ents, kn in zip(chunks.sent, chunks.offset, gated_entities(nlp, docs, gate, params), known):
        out.add_entities(si, off, ents, kn)


def parse_partition(payload: dict) -> dict[str, pd.DataFrame]:
    """Parse one meeting: ``payload = {rows, params, vocab, known_names}`` -> sentences/tokens/entities.

    Module-level and picklable (runs in pool / Dask workers); the GiNZA model loads
    lazily once per process (:func:`~pipeline.parse.models.load_nlp`).
    """
    params: dict = {**ParseSettings().to_params(), **(payload.get("params") or {})}
    sents = split_utterances(payload["rows"], params)
    mode = ner_mode(params["ner"])
    nlp = load_nlp(params["model"], ner=mode != "off")
    chunks = Chunks.of(sents, min(int(params["max_chunk_bytes"]), SUDACHI_MAX_BYTES))
    out = MeetingTables(sents, payload["vocab"])
    pattern = names_pattern(payload.get("known_names") or [])
    if mode == "full":
        _parse_full(nlp, chunks, out, pattern, params)
    elif mode == "gated":
        _parse_gated(nlp, chunks, out, pattern, params)
    else:
        for si, off, text in zip(chunks.sent, chunks.offset, chunks.text):
            out.add_tokens(si, off, nlp.make_doc(text))  # tokenizer only (SudachiPy)
    return out.tables()
