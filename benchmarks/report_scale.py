"""Report stage at corpus scale: size of report.html and build time.

    .venv/bin/python benchmarks/report_scale.py --input data/processed     # a real pipeline run
    .venv/bin/python benchmarks/report_scale.py                            # Tokyo Assembly scale proxy

With ``--input`` the report is built from a real pipeline output directory (e.g. a run on
the Tokyo Assembly corpus). Without it, a *scale proxy* is built from the 66 Tokyo
Assembly meetings in ../shared/corpora/tokyo-assembly: real ingest (utterances, speakers,
roles, dates, agenda) and real sentence splitting (pipeline.parse.sentence_spans), but
cheap stand-ins for the expensive annotations (content terms by a character-class
regex, themes by the taxonomy's cue words, topics by k-means over term TF-IDF, entities by
regex). The proxy has the real corpus's meetings, dates, speakers and sentence texts, which
is what the report's size depends on; it says nothing about annotation quality.

Prints one JSON object: meetings, sentences, html_mb, seconds, sections present.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKYO = ROOT.parent / "shared" / "corpora" / "tokyo-assembly"

_TERM = re.compile(r"[ァ-ヴー]{3,}|[一-龥々]{2,6}")
_ENTITY = re.compile(r"(?:東京都|[一-龥]{1,6}(?:局|省|庁|委員会|組織委員会|区|市|町|村|県|財団|協会))")


def scale_proxy(out: Path, n_topics: int = 40) -> Path:
    import numpy as np
    import pandas as pd
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    from pipeline.config import load_config
    from pipeline.ingest import ingest_paths
    from pipeline.parse import sentence_spans

    res = ingest_paths([TOKYO], cache=False)
    u, m = res.utterances, res.meetings
    speech = u[u["kind"] == "speech"]
    rows = []
    for r in speech.itertuples(index=False):
        for k, (a, b) in enumerate(sentence_spans(r.text)):
            rows.append((f"{r.utterance_id}:s{k:03d}", r.meeting_id, r.utterance_id, r.speaker_name or r.speaker_raw,
                         r.speaker_role, r.agenda_item, a, b, r.text[a:b], "speech"))
    s = pd.DataFrame(rows, columns=["sentence_id", "meeting_id", "utterance_id", "speaker", "speaker_role",
                                    "agenda_item", "start", "end", "text", "kind"])
    s["order"] = s.groupby("meeting_id").cumcount()
    s["terms"] = s["text"].map(lambda t: _TERM.findall(t)[:20])
    themes = load_config("taxonomy")["themes"]
    cues = {t["id"]: [c for c in t.get("cues", [])] for t in themes}
    s["themes"] = s["text"].map(lambda t: [tid for tid, cs in cues.items() if any(c in t for c in cs)])
    s["theme_scores"] = s["themes"].map(lambda ts: json.dumps({t: 0.8 for t in ts}))
    s["theme_evidence"] = "{}"
    vec = TfidfVectorizer(analyzer=lambda x: x, min_df=3, max_features=20000)
    X = vec.fit_transform(s["terms"])
    km = MiniBatchKMeans(n_topics, random_state=0, n_init=3, batch_size=4096).fit(X)
    s["topic_id"] = km.labels_.astype(int)
    s.loc[s["terms"].map(len) < 2, "topic_id"] = -1
    vocab = np.array(vec.get_feature_names_out())
    info = []
    for t in sorted(s["topic_id"].unique()):
        sub = s[s["topic_id"] == t]
        if t >= 0:
            c = km.cluster_centers_[t]
            idx = c.argsort()[::-1][:10]
            terms, weights = vocab[idx].tolist(), [float(c[i]) for i in idx]
        else:
            terms, weights = [], []
        rep = [json.dumps({"sentence_id": r.sentence_id, "speaker": r.speaker, "text": r.text}, ensure_ascii=False)
               for r in sub.head(3).itertuples()]
        info.append({"topic_id": int(t), "label": "・".join(terms[:3]) or "outliers", "size": len(sub),
                     "terms": terms, "weights": weights, "representative": rep,
                     "is_procedural": False, "is_outlier": bool(t == -1)})
    ti = pd.DataFrame(info)
    s["topic_label"] = s["topic_id"].map(dict(zip(ti["topic_id"], ti["label"])))
    s["topic_prob"] = 0.5
    date = dict(zip(m["meeting_id"], m["meeting_date"]))
    tot = s[s["topic_id"] >= 0].assign(timestamp=s["meeting_id"].map(date)).groupby(
        ["topic_id", "timestamp"]).size().reset_index(name="frequency")
    tot["terms"] = tot["topic_id"].map(dict(zip(ti["topic_id"], ti["terms"])))
    tpc = s[s["topic_id"] >= 0].groupby(["topic_id", "speaker_role"]).size().reset_index(name="frequency")
    tpc = tpc.rename(columns={"speaker_role": "class"}).assign(class_kind="role", terms=[[]] * len(tpc))
    ents = [(r.sentence_id, r.meeting_id, r.utterance_id, r.speaker, e.group(), "X", "organisation", e.start(),
             e.end(), "ner") for r in s.itertuples() for e in _ENTITY.finditer(r.text)]
    ents = pd.DataFrame(ents, columns=["sentence_id", "meeting_id", "utterance_id", "speaker", "text", "label",
                                       "coarse_label", "start", "end", "source"])
    out.mkdir(parents=True, exist_ok=True)
    for name, df in {"sentences": s, "utterances": u, "meetings": m, "topic_info": ti, "topics_over_time": tot,
                     "topics_per_class": tpc, "entities": ents}.items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", type=Path, help="a pipeline output directory (default: build the Tokyo proxy)")
    ap.add_argument("--out", type=Path, help="where to write the report (default: a temp dir)")
    args = ap.parse_args(argv)
    from pipeline.io import setup_logging
    from pipeline.report import build_report

    setup_logging(-1)
    work = Path(tempfile.mkdtemp(prefix="report-scale-"))
    t0 = time.perf_counter()
    src = args.input or scale_proxy(work / "processed")
    t_proxy = time.perf_counter() - t0
    out = args.out or work / "reports" / "report.html"
    t0 = time.perf_counter()
    res = build_report(src, out)
    seconds = time.perf_counter() - t0
    html = out.read_text(encoding="utf-8")
    result = {
        "input": str(src), "proxy": args.input is None, "meetings": res.stats["meetings"],
        "sentences": res.stats["sentences"], "html_mb": round(out.stat().st_size / 1e6, 2),
        "md_kb": round(res.markdown.stat().st_size / 1e3, 1),
        "xlsx_mb": round(res.tables["workbook"].stat().st_size / 1e6, 2),
        "report_seconds": round(seconds, 1), "proxy_seconds": round(t_proxy, 1) if args.input is None else None,
        "themes_over_time": 'id="fig-time-themes"' in html, "topics_over_time": 'id="fig-time-topics"' in html,
        "out": str(out),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0 if result["html_mb"] < 20 else 1


if __name__ == "__main__":
    sys.exit(main())
