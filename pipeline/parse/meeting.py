"""One meeting (one partition): sentences -> chunks -> tokens, content terms and entities."""
from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field

import pandas as pd

from pipeline.parse.entities import ENTITY_COLUMNS, coarse_label, known_spans, names_pattern
from pipeline.parse.models import KNOWN_PERSONS, load_nlp
from pipeline.parse.sentences import SENTENCE_COLUMNS, SUDACHI_MAX_BYTES, byte_chunks, check_bytes, split_utterances
from pipeline.parse.terms import extractor
from pipeline.parse.vocab import TermVocab
from pipeline.settings import ParseSettings

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

    def add_entities(self, si: int, off: int, doc, pattern) -> None:
        """Entity rows of chunk ``doc``; ``source`` says whether the known-person rule set them."""
        if not doc.ents:
            return
        known = known_spans(doc, pattern)
        m = self.meta[si]
        for e in doc.ents:
            self.ent_recs.append({
                "sentence_id": self.sid[si], "meeting_id": m["meeting_id"], "utterance_id": m["utterance_id"],
                "speaker": m["speaker"], "text": e.text, "label": e.label_,
                "coarse_label": coarse_label(e.label_), "start": off + e.start_char,
                "end": off + e.end_char,
                "source": "known_speaker" if (e.start_char, e.end_char) in known else "ner",
            })

    def tables(self) -> dict[str, pd.DataFrame]:
        sents = self.sents
        sents["terms"] = self.terms
        sents["n_tokens"] = self.n_tok
        return {"sentences": sents[SENTENCE_COLUMNS],
                "tokens": pd.DataFrame(self.tok_rows, columns=TOKEN_COLUMNS),
                "entities": pd.DataFrame.from_records(self.ent_recs, columns=ENTITY_COLUMNS)}


def parse_partition(payload: dict) -> dict[str, pd.DataFrame]:
    """Parse one meeting: ``payload = {rows, params, vocab, known_names}`` -> sentences/tokens/entities.

    Module-level and picklable (runs in pool / Dask workers); the GiNZA model loads
    lazily once per process (:func:`~pipeline.parse.models.load_nlp`).
    """
    params: dict = {**ParseSettings().to_params(), **(payload.get("params") or {})}
    sents = split_utterances(payload["rows"], params)
    do_ner = bool(params["ner"])
    nlp = load_nlp(params["model"], ner=do_ner)
    chunks = Chunks.of(sents, min(int(params["max_chunk_bytes"]), SUDACHI_MAX_BYTES))

    # One pass over the docs: tokens and content terms from the tokenizer's annotations,
    # entities from tok2vec + ner. With NER, nlp.pipe tokenises in its worker processes too,
    # so nothing is tokenised twice. Texts, not Docs, go to nlp.pipe (a pickled Doc drags the
    # whole Vocab, vectors included, to the workers); check_bytes (Chunks.of) guarantees that no
    # text is over Sudachi's limit (which would make multi-process nlp.pipe hang).
    if do_ner:
        pattern = names_pattern(payload.get("known_names") or [])
        nlp.get_pipe(KNOWN_PERSONS).pattern = pattern
        n_process, batch_size = pipe_settings(len(chunks.text), params)
        docs = nlp.pipe(chunks.text, batch_size=batch_size, n_process=n_process)
    else:
        pattern = None
        docs = (nlp.make_doc(t) for t in chunks.text)  # tokenizer only (SudachiPy)

    out = MeetingTables(sents, payload["vocab"])
    for si, off, doc in zip(chunks.sent, chunks.offset, docs):
        out.add_tokens(si, off, doc)
        if do_ner:
            out.add_entities(si, off, doc, pattern)
    return out.tables()
