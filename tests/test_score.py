"""`policy-topics score`: the pipeline's theme tags against a held-out gold file (issue 12's
measurement) -- figures as sklearn computes them, gold texts that match nothing counted, gold
texts the model was trained on flagged, bad input a one-line error."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "data" / "labels"


def _sample_records(n: int) -> list[dict]:
    """The first ``n`` distinct sentences of annotator A's sample labels: real text, real labels."""
    out, seen = [], set()
    for line in (LABELS / "sample_a.jsonl").open(encoding="utf-8"):
        rec = json.loads(line)
        if rec["text"] not in seen and len(rec["text"]) > 15:
            seen.add(rec["text"])
            out.append({"text": rec["text"], "labels": rec["labels"]})
        if len(out) == n:
            return out
    pytest.skip("sample labels not present")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _case(tmp_path):
    """Gold: 12 sample sentences (training labels), one plain sentence that is not, and one that is
    in no prediction. Predictions (``tag`` output): the gold themes for some, a theme dropped or a
    wrong one added for others, one sentence written longer than its gold text (matched by
    containment)."""
    from pipeline.classify.taxonomy import load_taxonomy

    ids = load_taxonomy().ids
    gold = [*_sample_records(12), {"text": "住民が使うオンライン申請の共通基盤を複数の市で共同利用する。",
                                   "labels": ["digital_platform"]}]
    gold_file = _write_jsonl(tmp_path / "held_out.jsonl",
                             [*gold, {"text": "この文は予測のどこにもない文である。", "labels": ["coverage_gap"]}])
    preds = []
    for i, g in enumerate(gold):
        themes = list(g["labels"])
        if i % 4 == 1 and themes:
            themes = themes[1:]  # a theme missed
        if i % 4 == 2:
            themes = sorted(set(themes) | {"cybersecurity"})  # a wrong theme added
        if i == 5:
            themes = [*themes, "old_theme_id"]  # an id of another taxonomy: reported, not scored
        text = g["text"] + "（拍手）" if i == 3 else g["text"]
        preds.append({"id": i, "text": text, "themes": themes, "turn": i // 3})
    pred_file = _write_jsonl(tmp_path / "tags.jsonl", preds)
    Y = np.array([[t in g["labels"] for t in ids] for g in gold])
    P = np.array([[t in p["themes"] for t in ids] for p in preds])
    return ids, gold_file, pred_file, Y, P


def test_score_equals_sklearn_counts_unmatched_gold_and_flags_training_labels(tmp_path):
    from sklearn.metrics import f1_score

    from pipeline.classify.scoring import read_predictions, score
    from pipeline.classify.taxonomy import load_taxonomy

    ids, gold_file, pred_file, Y, P = _case(tmp_path)
    res = score(gold_file, read_predictions(pred_file), load_taxonomy(), training_labels=LABELS, n_boot=200)
    assert res["n_gold_texts"] == 14 and res["n_scored_sentences"] == 13
    assert res["matched_by_containment"] == 1 and res["unmatched"] == 1
    assert res["unmatched_examples"] == ["この文は予測のどこにもない文である。"]
    assert res["micro_f1"] == pytest.approx(f1_score(Y, P, average="micro"), abs=1e-4)
    present = np.flatnonzero(Y.sum(0) > 0)
    assert res["macro_f1"] == pytest.approx(f1_score(Y, P, labels=present, average="macro", zero_division=0), abs=1e-4)
    assert res["micro_f1"] < 1.0 and res["predicted_ids_not_in_taxonomy"] == {"old_theme_id": 1}
    cyber = res["per_label"]["cybersecurity"]
    assert cyber["predicted"] == int(P[:, ids.index("cybersecurity")].sum()) and cyber["precision"] < 1.0
    lo, hi = res["ci95"]["micro_f1"]
    assert 0.0 <= lo <= res["micro_f1"] + 1e-9 and res["micro_f1"] - 1e-9 <= hi <= 1.0
    # a gold sentence with no theme given a wrong one counts against precision on off-taxonomy text
    policy = [not t.exclusive for t in load_taxonomy().themes]
    none = ~Y[:, policy].any(1)
    assert res["no_policy_theme_tagged"]["n_sentences"] == int(none.sum())
    # the sample's sentences are training labels: 12 of the 14 gold texts (the made-up ones are not)
    assert res["in_training_labels"] == 12
    held = score(gold_file, read_predictions(pred_file), load_taxonomy(), training_labels=LABELS,
                 held_out_only=True, n_boot=10)
    assert (held["n_gold_texts"], held["n_scored_sentences"], held["left_out_as_training_labels"]) == (2, 1, 12)
    assert held["micro_f1"] == 1.0 and held["per_label"]["digital_platform"]["support"] == 1
    assert "in_training_labels" not in score(gold_file, read_predictions(pred_file), load_taxonomy(), n_boot=10)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "-q", "score", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_cli_score_writes_json_and_rejects_bad_input_in_one_line(tmp_path):
    _, gold_file, pred_file, _, _ = _case(tmp_path)
    out = tmp_path / "score.json"
    r = _cli(gold_file, "--predictions", pred_file, "--labels", tmp_path / "no-labels", "--n-boot", 50, "-o", out)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["gold"] == "held_out.jsonl" and res["predictions"] == "tags.jsonl" and 0 < res["micro_f1"] < 1

    bad_gold = tmp_path / "gold.txt"
    bad_gold.write_text("テキスト\n", encoding="utf-8")
    nothing = _write_jsonl(tmp_path / "nothing.jsonl", [{"text": "どの予測にも現れない文。", "labels": []}])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "文", "themes": []}\nnot json\n', encoding="utf-8")
    bom = tmp_path / "bom.jsonl"  # as a Windows editor saves it
    bom.write_bytes(b"\xef\xbb\xbf" + gold_file.read_bytes())
    r = _cli(bom, "--predictions", pred_file, "--labels", tmp_path / "no-labels", "--n-boot", 10)
    assert r.returncode == 0 and json.loads(r.stdout)["n_gold_texts"] == res["n_gold_texts"], r.stderr
    for args, says in (((bad_gold, "--predictions", pred_file), "gold.txt: labels must be a .jsonl or .csv"),
                       ((tmp_path / "absent-gold.jsonl", "--predictions", pred_file), "absent-gold.jsonl: gold file not"),
                       ((nothing, "--predictions", pred_file), "nothing.jsonl: none of its 1 labelled texts"),
                       ((gold_file, "--predictions", tmp_path / "absent.jsonl"), "absent.jsonl: predictions not found"),
                       ((gold_file, "--predictions", broken), "broken.jsonl: line 2: invalid JSON"),
                       ((gold_file, "--predictions", pred_file, "--meeting", "m1"), "--meeting needs the sentences")):
        r = _cli(*args, "-o", tmp_path / "never.json")
        assert r.returncode == 2 and says in r.stderr, (args, r.stderr)
        errors = [x for x in r.stderr.splitlines() if x.startswith("policy-topics: error:")]
        assert len(errors) == 1 and says in errors[0] and not (tmp_path / "never.json").exists()


@pytest.mark.slow
def test_score_reads_the_classify_stages_sentences_table(tmp_path_factory):
    """The whole pipeline's output on the sample, scored against annotator B's labels of it:
    every gold text matches a sentence, and all of them are flagged as training labels (the
    pipeline trained on data/labels), which is why the figure is high."""
    from pipeline.classify.scoring import read_predictions, score
    from pipeline.classify.taxonomy import load_taxonomy
    from tests.report_fixtures import processed_dir, sample_outputs

    table = processed_dir(sample_outputs(tmp_path_factory.getbasetemp())) / "sentences.parquet"
    preds = read_predictions(table, ["mic-chiiki-ict-06_2024-04-24"])
    assert len(preds) > 500 and preds["group"].str.startswith("mic-chiiki-ict-06_2024-04-24:u").all()
    res = score(LABELS / "sample_b.jsonl", preds, load_taxonomy(), training_labels=LABELS, n_boot=100)
    assert res["unmatched"] == 0 and res["in_training_labels"] == res["n_gold_texts"] > 200
    assert res["micro_f1"] > 0.8 and res["macro_f1"] > 0.7
    with pytest.raises(Exception, match="no meeting 'nope'"):
        read_predictions(table, ["nope"])
