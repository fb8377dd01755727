"""How sparingly the theme classifier tags a different council (Tokyo Metropolitan Assembly).

Two readings of ../shared/corpora/tokyo-assembly (mostly off-taxonomy for the MIC panel's
themes):

* ``lines``: N sentences sampled at random and tagged one per line, as ``policy-topics tag`` does;
* ``turns``: M whole speaker turns, sentences tagged with their turn as context, as the
  ``classify`` stage does for a new meeting.

Prints and (with ``--out``) writes the share of sentences that get any theme / a policy theme
(not ``procedural``) and the themes assigned. Uses models/classifier.joblib (``--model``).

Councils (``classify.domain_adaptation``): by default the text carries no council, so it is scored
as a council never seen in training (the shared weights only), as ``tag`` scores any input;
``--council tokyo-assembly`` scores the turns as the ``classify`` stage would score these files
placed under data/raw/tokyo-assembly/ (the Tokyo label records' council: shared + its own weights).

    .venv/bin/python benchmarks/classify_offtaxonomy.py [--model models/classifier.joblib] [--only plenary-2020]
        [--council NAME] [--out FILE]
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "tokyo-assembly"
sys.path.insert(0, str(ROOT))


def turns(only: str | None = None) -> list[tuple[str, str]]:
    out = []
    for f in sorted(CORPUS.glob("*.json")):
        if only and f.stem != only:
            continue
        for mi, meeting in enumerate(json.loads(f.read_text(encoding="utf-8"))):
            for pi, p in enumerate(meeting.get("Proceeding", [])):
                if p.get("Speaker") not in (None, "null"):
                    out.append((f"{f.stem}:{mi}:{pi}", p.get("Utterance", "")))
    return out


def split(text: str) -> list[str]:
    return [s.strip() + "。" for s in text.replace("\n", "").split("。") if len(s.strip()) >= 8]


def shares(results: list[dict]) -> dict:
    n = len(results)
    themes = collections.Counter(t for r in results for t in r["themes"])
    return {"sentences": n,
            "any_theme": round(sum(bool(r["themes"]) for r in results) / max(n, 1), 4),
            "policy_theme": round(sum(bool(set(r["themes"]) - {"procedural"}) for r in results) / max(n, 1), 4),
            "themes": dict(themes.most_common())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "classifier.joblib"))
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--turns", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default=None, help="one file of the corpus by stem, e.g. plenary-2020 (the held-out "
                                                  "plenary: measure there, never tune there)")
    ap.add_argument("--council", default=None, help="score the turns as this council (default: none, i.e. unseen)")
    args = ap.parse_args()
    if not CORPUS.is_dir():
        print(f"corpus not found: {CORPUS}", file=sys.stderr)
        return 1
    import pandas as pd

    from pipeline.classify.tagging import load_model, tag_texts

    model = load_model(args.model)
    all_turns = turns(args.only)
    rng = random.Random(args.seed)
    sentences = [s for _, t in all_turns for s in split(t)]
    lines = tag_texts(rng.sample(sentences, min(args.lines, len(sentences))), model=model)
    picked = rng.sample(all_turns, min(args.turns, len(all_turns)))
    X = pd.DataFrame([{"text": s, "group": uid} for uid, t in picked for s in split(t)])
    if args.council:
        X["domain"] = args.council
    in_context = model.tag(X)
    res = {"model": args.model, "corpus": args.only or "all files", "council": args.council, "lines": shares(lines), "turns": shares(in_context)}
    print(json.dumps(res, ensure_ascii=False, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(res, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
