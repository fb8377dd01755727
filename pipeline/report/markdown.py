"""Concise Markdown briefing: the report's findings for pasting into documents.

Every string from the minutes goes through :func:`~pipeline.report.sanitize.md_text`
(one line, Markdown/HTML markup escaped), so pasted text cannot become links or HTML.
"""
from __future__ import annotations

from typing import Any

from pipeline.report import analysis as A
from pipeline.report.data import ReportData, topic_model_note
from pipeline.report.html import report_title
from pipeline.report.sanitize import md_text as t


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _quote(q: dict[str, Any], with_meeting: bool = True) -> str:
    where = " · ".join(x for x in [t(q["meeting_label"]) if with_meeting else "", A.position_label(q)] if x)
    role = f"（{t(q['role'])}）" if q.get("role") else ""
    sid = " ".join(str(q["sentence_id"]).split()).replace("`", "'")  # code span: no escapes, no backticks
    return f"> 「{t(q['text'])}」\n> — {t(q['speaker'])}{role}, {where} `{sid}`"


def render_markdown(data: ReportData, params: dict[str, Any] | None = None) -> str:
    from pipeline.settings import resolve

    p = resolve("report", params).to_params()  # ReportSettings declares the defaults
    k = int(p["top_quotes"])
    ctx = A.context(data)
    c = A.summary_counts(data)
    out = [f"# {t(report_title(data))}", ""]
    if data.subset:
        out += [f"対象 subset: {t(data.subset)}", ""]
    out += [f"{c['meetings']} 会議 · {c['utterances']} 発言 · {c['sentences']} 文（政策的な文 {c['substantive']}、"
            f"議事進行 {c['procedural']}）· {c['speakers']} 発言者" + (f" · {c['topics']} トピック" if c["topics"] else ""), ""]

    meetings = A.overview(ctx)
    out += ["## 会議概要 Meetings", ""]
    for m in meetings[:20]:
        sess = f" 第{m['session']}回" if m["session"] is not None else ""
        out.append(f"- **{t(m['title'])}**{sess} {t(m['date'])} — {m['n_utterances']} 発言, {m['n_speakers']} 発言者"
                   + (f"; 議事: {t(' / '.join(m['agenda']))}" if m["agenda"] else ""))
    if len(meetings) > 20:
        out.append(f"- … ほか {len(meetings) - 20} 会議 (see report.html)")
    out.append("")

    out += ["## テーマ別の要点 Themes", "",
            "割合は政策的な文（議事進行以外のテーマが付いた文）に対する比率。Share of substantive sentences.", ""]
    for h in A.theme_headlines(ctx, k):
        who = "、".join(f"{t(sp)} ({n})" for sp, n in h["top_speakers"])
        roles = "、".join(f"{t(r)} ({n})" for r, n in h["roles"])
        out += [f"### {t(h['ja'])} ({t(h['theme_id'])})", "",
                f"**{h['sentences']} 文, {100 * h['share']:.1f}%** — 主な発言者 {who}; 役割 {roles}.", ""]
        for q in h["quotes"]:
            out += [_quote(q, with_meeting=c["meetings"] > 1), ""]

    topics = [x for x in A.topic_table(ctx, 1) if x["topic_id"] >= 0]
    if topics:
        note = topic_model_note(data)
        out += ["## トピック Topics (BERTopic)", ""] + ([t(note), ""] if note else []) + [
                "| # | ラベル label | 文 size | 上位語 top terms | 例 example |", "|---:|---|---:|---|---|"]
        for x in topics[: int(p["md_topics"])]:
            ex = x["quotes"][0] if x["quotes"] else None
            exs = f"{t(_short(ex['text'], 60))} — {t(ex['speaker'])}" if ex else ""
            out.append(f"| {x['topic_id']} | {t(x['label'])} | {x['size']} | {t(' · '.join(x['terms'][:6]))} | {exs} |")
        if len(topics) > int(p["md_topics"]):
            out.append(f"\n… ほか {len(topics) - int(p['md_topics'])} トピック (see report.html)")
        out.append("")

    ents = A.entity_top(data, 8)
    if ents is not None:
        out += ["## よく言及された固有表現 Entities", ""]
        for key, title in A.ENTITY_GROUPS.items():
            g = ents[ents["coarse_label"] == key]
            if not g.empty:
                out.append(f"- **{title}**: " + "、".join(f"{t(r.text)} ({r.mentions})" for r in g.itertuples()))
        out.append("")

    tt = A.theme_over_time(data)
    if tt is not None:
        out += ["## テーマの推移 Themes over time", "",
                "| 日付 date | " + " | ".join(t(data.theme(c).ja) for c in tt.columns) + " |",
                "|---|" + "---:|" * len(tt.columns)]
        for date, row in tt.iterrows():
            out.append(f"| {t(date)} | " + " | ".join(f"{100 * v:.0f}%" for v in row) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
