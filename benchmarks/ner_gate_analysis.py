"""Why gated NER loses entities: an analysis on a *tuning* corpus (committee-olympic.json).

Not a benchmark of the stage (``benchmarks/parse.py`` is): this script tokenises the first
``--chars`` speech characters of one Tokyo committee file once, runs full NER on every sentence
(the reference), then replays gate variants on the same tokenised docs and says, per variant:

* ``share``  -- tokens sent through tok2vec + ner / all tokens (what the gate costs);
* ``recall`` / ``precision`` against full NER (sentence, start, end, label);
* why each missed entity was missed: ``uncovered`` (some of its tokens lie in no window: a
  missing trigger), ``edge`` (covered, but within ``--field`` tokens of a window's cut: less
  context than the sentence gives), ``interior`` (covered with full context and still different:
  a decision earlier in the window, e.g. a neighbouring entity, changed);
* the uncovered entities' labels and texts (which triggers are missing).

    .venv/bin/python benchmarks/ner_gate_analysis.py --file committee-olympic.json --chars 200000

plenary-2020.json is held out and refused; the parse benchmark measures on the sample and on the
first 200k speech characters of committee-disaster-prevention.json, so tune on other text.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKYO = ROOT.parent / "shared" / "corpora" / "tokyo-assembly"
HELD_OUT = {"plenary-2020.json"}


def load(file: str, skip_chars: int, chars: int):
    import logging

    logging.disable(logging.WARNING)
    from pipeline import io as pio
    from pipeline.ingest import ingest_paths

    pio.QUIET = True
    if Path(file).name in HELD_OUT:
        raise SystemExit(f"{file}: held out, never analysed")
    res = ingest_paths([TOKYO / file], cache=False)
    utts = res.utterances
    speech = utts["kind"] == "speech"
    cum = utts["text"].where(speech, "").str.len().cumsum().shift(fill_value=0)
    keep = speech & (cum >= skip_chars) & (cum < skip_chars + chars)
    return utts[keep].reset_index(drop=True), res.meetings


def tokenised(utts, meetings, params):
    """Per meeting: (docs with known people pre-set, sentence ids) -- as ``ner: gated`` makes them."""
    from pipeline.parse.entities import names_pattern, set_known_entities
    from pipeline.parse.meeting import Chunks
    from pipeline.parse.models import load_nlp
    from pipeline.parse.sentences import split_utterances
    from pipeline.parse.stage import _meeting_names

    nlp = load_nlp(params["model"], ner=True)
    docs, keys = [], []
    for _, rows in utts.groupby("meeting_id", sort=False):
        rows = rows.reset_index(drop=True)
        pattern = names_pattern(_meeting_names(meetings, rows, nlp))
        sents = split_utterances(rows, params)
        chunks = Chunks.of(sents, int(params["max_chunk_bytes"]))
        for si, off, text in zip(chunks.sent, chunks.offset, chunks.text):
            d = nlp.make_doc(text)
            d.user_data.clear()
            set_known_entities(d, pattern)
            docs.append(d)
            keys.append((sents["sentence_id"].iloc[si], off))
    return nlp, docs, keys


def run_ner(nlp, docs):
    """Token-index entities ``{(doc, start, end, label)}`` of tok2vec + ner over copies of ``docs``."""
    out = []
    with nlp.select_pipes(enable=["tok2vec", "ner"]):
        for d in nlp.pipe([x.copy() for x in docs], batch_size=64):
            out.append([(e.start, e.end, e.label_) for e in d.ents])
    return out


def run_windows(nlp, docs, windows):
    """Entities of NER run on each doc's ``windows`` (cut as the stage cuts them), in doc token indices."""
    where, cut = [], []
    for k, d in enumerate(docs):
        for a, b in windows[k]:
            where.append((k, a))
            cut.append(d.copy() if (a, b) == (0, len(d)) else d[a:b].as_doc())
    out = [[] for _ in docs]
    with nlp.select_pipes(enable=["tok2vec", "ner"]):
        for (k, a), w in zip(where, nlp.pipe(cut, batch_size=64)):
            out[k] += [(a + e.start, a + e.end, e.label_) for e in w.ents]
    return out


def diagnose(docs, ref, cand, windows, field: int):
    n_tok = sum(len(d) for d in docs)
    covered = sum(b - a for ws in windows for a, b in ws)
    why, unc = Counter(), Counter()
    examples: dict[str, Counter] = {}
    hit = n_ref = n_cand = 0
    for k, d in enumerate(docs):
        r, c = set(ref[k]), set(cand[k])
        hit += len(r & c)
        n_ref += len(r)
        n_cand += len(c)
        for s, e, lab in r - c:
            win = [(a, b) for a, b in windows[k] if a <= s and e <= b]
            if not win:
                why["uncovered"] += 1
                unc[lab] += 1
                toks = [t for t in d[s:e] if not any(a <= t.i < b for a, b in windows[k])]
                examples.setdefault(lab, Counter())[
                    d[s:e].text + " <" + ",".join(f"{t.text}/{t.tag_}" for t in toks) + ">"] += 1
            else:
                a, b = win[0]
                edge = (s - a < field and a > 0) or (b - e < field and b < len(d))
                why["edge" if edge else "interior"] += 1
    return {"share": round(covered / n_tok, 4), "recall": round(hit / n_ref, 4),
            "precision": round(hit / n_cand, 4), "n_ref": n_ref, "missed": dict(why),
            "uncovered_by_label": dict(unc.most_common()),
            "uncovered_examples": {lab: [f"{t} x{n}" for t, n in cnt.most_common(8)]
                                   for lab, cnt in sorted(examples.items(), key=lambda kv: -unc[kv[0]])}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", default="committee-olympic.json")
    ap.add_argument("--skip-chars", type=int, default=0, help="start after this many speech chars")
    ap.add_argument("--chars", type=int, default=200_000)
    ap.add_argument("--variants", default="windows:4,windows:6,windows:8,sentence",
                    help="windows:MARGIN (rule triggers) | learned:MARGIN (rules + pipeline.parse.gate_model) | "
                         "sentence (whole sentence when it has a rule trigger)")
    ap.add_argument("--field", type=int, default=4, help="tokens from a cut that count as 'edge'")
    ap.add_argument("--out")
    args = ap.parse_args(argv)

    from pipeline.parse import resolve_params
    from pipeline.parse.gate import NerGate, learned_triggers
    from pipeline.vocab import person_suffixes

    params = resolve_params()
    utts, meets = load(args.file, args.skip_chars, args.chars)
    nlp, docs, _ = tokenised(utts, meets, params)
    print(f"{args.file}: {int(utts['text'].str.len().sum()):,} speech chars, {len(docs):,} sentences, "
          f"{sum(map(len, docs)):,} tokens", file=sys.stderr, flush=True)
    ref = run_ner(nlp, docs)
    roles = frozenset(person_suffixes())
    results = {}
    for v in args.variants.split(","):
        kind, _, m = v.partition(":")
        gate = NerGate(margin=int(m or params["ner_context"]), roles=roles,
                       learned=learned_triggers(nlp.vocab) if kind == "learned" else None)
        if kind == "sentence":
            windows = [[(0, len(d))] if gate.triggers(d) else [] for d in docs]
        else:
            windows = [gate.windows(d) for d in docs]
        cand = run_windows(nlp, docs, windows)
        results[v] = diagnose(docs, ref, cand, windows, args.field)
        r = results[v]
        print(f"{v:<14} share {r['share']:.3f} recall {r['recall']:.4f} precision {r['precision']:.4f} "
              f"missed {r['missed']} uncovered {r['uncovered_by_label']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
