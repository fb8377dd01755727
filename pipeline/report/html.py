"""Self-contained HTML report: Jinja2 (autoescape) + one inlined plotly.js + JSON data.

The page makes no external request: plotly.js, CSS, JS and all data are inlined, and a
Content-Security-Policy forbids fetching anything. Data travels in one
``<script type="application/json">`` block (see :func:`~pipeline.report.sanitize.script_json`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.report import analysis as A
from pipeline.report import figures as F
from pipeline.report.data import ReportData, topic_model_note
from pipeline.report.sanitize import plot_text, script_code, script_json

HERE = Path(__file__).resolve().parent


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.globals["pos"] = A.position_label
    return env


def _sha256_b64(code: str) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii")


def report_title(data: ReportData) -> str:
    m = data.meetings
    if len(m) == 1:
        t = m["meeting_title"].iloc[0]
        return f"{t if isinstance(t, str) and t else m['meeting_id'].iloc[0]} — 議事録分析レポート"
    dates = m["meeting_date"].dropna()
    span = f"{dates.min()} – {dates.max()}" if len(dates) else ""
    return f"議事録分析レポート: {len(m)} 会議 {span}".strip()


def _speaker_figures(data: ReportData, top_speakers: int, figures: dict[str, Any]) -> bool:
    """Theme x role and theme x speaker heatmaps; True when the speaker table was cut."""
    role_tab = A.theme_by(data, "speaker_role")
    if not role_tab.empty:
        figures["fig-role"] = F.heatmap(data, role_tab, [plot_text(r) for r in role_tab.index], "", "Purples")
    spk_tab = A.theme_by(data, "speaker")
    truncated = len(spk_tab) > top_speakers
    spk_tab = spk_tab.head(top_speakers)
    if not spk_tab.empty:
        role_of = data.sentences.groupby("speaker")["speaker_role"].agg(lambda x: x.mode().iat[0])
        labels = [plot_text(f"{sp}（{role_of.get(sp, '')}）") for sp in spk_tab.index]
        figures["fig-speaker"] = F.heatmap(data, spk_tab, labels, "", "Blues")
    return truncated


def _flow(data: ReportData, ctx, hover_chars: int, figures: dict[str, Any]) -> tuple[list, bool]:
    """Agenda heatmap (when there are 1-40 items) and the discussion-flow traces (escaped)."""
    agenda_tab = A.theme_by(data, "agenda_item")
    has_agenda = 0 < len(agenda_tab) <= 40
    if has_agenda:
        figures["fig-agenda"] = F.heatmap(data, agenda_tab, [plot_text(F.short(a, 26)) for a in agenda_tab.index], "",
                                          "Oranges", row_hover=[plot_text(a) for a in agenda_tab.index])
    flow = A.flow(ctx, hover_chars)
    for f in flow:  # plotly pseudo-HTML: escape here; the <select> label stays raw (set as text)
        f["texts"] = [[plot_text(sp), plot_text(t)] for sp, t in f["texts"]]
        f["agenda"] = [[pos, plot_text(F.short(a, 24)), plot_text(a)] for pos, a in f["agenda"]]
    return flow, has_agenda


_TOPIC_MAP_MDS_NOTE = ("各トピックの文の内容語による c-TF-IDF ベクトルのコサイン距離を多次元尺度法で2次元に配置。"
                       "円の面積は文の数。Topics placed by classical MDS over cosine distances of their c-TF-IDF "
                       "term vectors; bubble area = sentences; grey = procedural topic.")


def _topic_figures(data: ReportData, topics: list, figures: dict[str, Any]) -> dict[str, Any]:
    """Topic map, sizes and topic x role; returns the template variables of the topics section."""
    labels_by_id = {t["topic_id"]: t["label"] for t in topics}
    if data.topic_info is not None:
        labels_by_id.update(dict(zip(data.topic_info["topic_id"], data.topic_info["label"])))
    xy = A.topic_layout(data)
    has_coords = data.topic_info is not None and {"x", "y"} <= set(data.topic_info.columns)
    if topics:
        for key, fig in (("fig-topicmap", F.topic_map(topics, xy)), ("fig-topicsizes", F.topic_sizes(topics))):
            if fig:
                figures[key] = fig
    trole = A.topics_by_class(data, "role")
    has_topic_role = trole is not None and topics != []
    if has_topic_role:
        figures["fig-topicrole"] = F.topic_class_heatmap(trole, labels_by_id)
    note = "トピックの2次元配置（トピック段階の座標）。円の面積は文の数。" if has_coords else _TOPIC_MAP_MDS_NOTE
    return {"labels_by_id": labels_by_id, "topic_map_note": note, "has_topic_role": has_topic_role}


def _entity_groups(data: ReportData, top: int, figures: dict[str, Any]) -> list[dict]:
    etop = A.entity_top(data, top)
    groups = []
    if etop is not None:
        figures["fig-entities"] = F.entities_bar(etop)
        for key, title in A.ENTITY_GROUPS.items():
            rows = etop[etop["coarse_label"] == key].to_dict("records")
            if rows:
                groups.append({"title": title, "rows": rows})
    return groups


def _over_time(data: ReportData, top_topics: int, labels_by_id: dict, figures: dict[str, Any]) -> dict | None:
    tt = A.theme_over_time(data)
    to = A.topics_over_time(data, top_topics)
    if tt is None and to is None:
        return None
    if tt is not None:
        figures["fig-time-themes"] = F.themes_over_time(data, tt)
    if to is not None:
        figures["fig-time-topics"] = F.topics_over_time(to, labels_by_id)
    return {"themes": tt is not None, "topics": to is not None}


def render_html(data: ReportData, params: Any = None) -> str:
    """The report page as a string (all sections, figures and data inlined). ``params``: a
    ReportSettings, a dict of overrides or None (params.yaml ``report``)."""
    import plotly.offline
    from markupsafe import Markup

    from pipeline import __version__
    from pipeline.settings import resolve

    p = resolve("report", params)
    ctx = A.context(data)
    figures: dict[str, Any] = {"fig-coverage": F.coverage_bar(data, A.coverage(data))}
    speakers_truncated = _speaker_figures(data, p.top_speakers, figures)
    flow, has_agenda = _flow(data, ctx, p.hover_chars, figures)
    topics = A.topic_table(ctx, p.top_quotes)
    tvars = _topic_figures(data, topics, figures)
    entity_groups = _entity_groups(data, p.top_entities, figures)
    time = _over_time(data, p.top_topics_over_time, tvars["labels_by_id"], figures)

    payload = {"figures": {k: v for k, v in figures.items() if v}, "flow": flow, "flow_layout": F.flow_layout(data)}
    js = script_code((HERE / "report.js").read_text(encoding="utf-8"))
    plotly_js = script_code(plotly.offline.get_plotlyjs())
    # CSP: only these two exact scripts may run (no 'unsafe-inline'): defence in depth behind escaping
    script_hashes = " ".join(f"'sha256-{_sha256_b64(code)}'" for code in (plotly_js, js))
    tpl = _env().get_template("report.html.j2")
    return tpl.render(
        title=report_title(data), subset=data.subset, counts=A.summary_counts(data), meetings=A.overview(ctx),
        headlines=A.theme_headlines(ctx, p.top_quotes), speaker_rows=A.speaker_table(ctx).to_dict("records"),
        speakers_truncated=speakers_truncated, top_speakers=p.top_speakers, has_agenda=has_agenda, topics=topics,
        topic_map_note=tvars["topic_map_note"], has_topic_role=tvars["has_topic_role"],
        topic_model_note=topic_model_note(data), entity_groups=entity_groups,
        time=time, theme_name=lambda tid: data.theme(tid).ja,
        input_dir=str(data.input_dir), missing=data.missing, version=__version__,
        # trusted, ours: CSS, JS, plotly.js, and the JSON payload (escaped by script_json)
        css=Markup((HERE / "report.css").read_text(encoding="utf-8")),
        js=Markup(js), plotlyjs=Markup(plotly_js), script_hashes=script_hashes,
        payload=Markup(script_json(payload)),
    )
