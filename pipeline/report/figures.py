"""Plotly figure specs (plain JSON dicts) for the HTML report.

Figures are plain ``{"data": [...], "layout": {...}}`` dicts rendered by the one
inlined copy of plotly.js; every string that comes from the minutes goes through
:func:`~pipeline.report.sanitize.plot_text` because plotly renders labels as pseudo-HTML.
"""
from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from pipeline.report.analysis import ENTITY_GROUPS
from pipeline.report.data import ReportData
from pipeline.report.sanitize import plot_text as esc

FONT = '"Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", "Yu Gothic", "Meiryo", sans-serif'
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac", "#2f4b7c", "#a05195", "#665191", "#d45087"]


#: sequential colour scales (explicit: plotly.js' named "Blues" runs dark-to-light)
SCALES = {
    "Blues": [[0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"], [1, "#08306b"]],
    "Purples": [[0, "#fcfbfd"], [0.25, "#dadaeb"], [0.5, "#9e9ac8"], [0.75, "#6a51a3"], [1, "#3f007d"]],
    "Oranges": [[0, "#fff5eb"], [0.25, "#fdd0a2"], [0.5, "#fd8d3c"], [0.75, "#d94801"], [1, "#7f2704"]],
    "Greens": [[0, "#f7fcf5"], [0.25, "#c7e9c0"], [0.5, "#74c476"], [0.75, "#238b45"], [1, "#00441b"]],
    "YlOrRd": [[0, "#ffffcc"], [0.25, "#fed976"], [0.5, "#fd8d3c"], [0.75, "#e31a1c"], [1, "#800026"]],
}


def topic_name(topic_id: int, label: str, n: int = 24) -> str:
    """``#3 デジタル · 人材`` from a BERTopic label like ``3_デジタル_人材`` (unescaped)."""
    label = re.sub(r"^-?\d+_", "", str(label)).replace("_", " · ")
    return f"#{topic_id} {short(label, n)}"


def layout(title: str = "", height: int = 420, **kw: Any) -> dict[str, Any]:
    base = {
        "title": {"text": title, "font": {"size": 15}} if title else None,
        "height": height, "font": {"family": FONT, "size": 12},
        "margin": {"l": 60, "r": 20, "t": 40 if title else 20, "b": 50},
        "paper_bgcolor": "white", "plot_bgcolor": "white", "hoverlabel": {"font": {"family": FONT}},
    }
    base = {k: v for k, v in base.items() if v is not None}
    base.update(kw)
    return base


def short(text: str, n: int = 14) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def theme_axis(data: ReportData, ids: list[str]) -> tuple[list[str], list[str]]:
    """Short (tick) and full (hover) labels of themes, escaped."""
    ticks, full = [], []
    for tid in ids:
        t = data.theme(tid)
        ticks.append(esc(short(t.ja, 12)))
        full.append(esc(f"{t.ja} / {t.en} ({tid})"))
    return ticks, full


def coverage_bar(data: ReportData, cov: pd.DataFrame) -> dict[str, Any]:
    cov = cov.sort_values("share")
    ticks, full = theme_axis(data, list(cov["theme_id"]))
    return {
        "data": [{
            "type": "bar", "orientation": "h", "x": [round(100 * v, 1) for v in cov["share"]], "y": ticks,
            "text": [f"{round(100 * v, 1)}% ({n})" for v, n in zip(cov["share"], cov["sentences"])],
            "textposition": "outside", "customdata": full, "marker": {"color": "#4c78a8"},
            "hovertemplate": "%{customdata}<br>%{x}% of substantive sentences<extra></extra>",
        }],
        "layout": layout(height=max(320, 34 * len(cov) + 80),
                         xaxis={"title": {"text": "政策的な文に占める割合 (%) / share of substantive sentences"},
                                "ticksuffix": "%", "rangemode": "tozero", "gridcolor": "#eee"},
                         yaxis={"automargin": True}, margin={"l": 200, "r": 60, "t": 20, "b": 50}),
    }


def heatmap(data: ReportData, tab: pd.DataFrame, row_labels: list[str], title: str,
            colorscale: str = "Blues", row_hover: list[str] | None = None) -> dict[str, Any]:
    """Rows = speakers/roles/agenda items (already escaped labels), cols = themes; z = sentence counts."""
    ticks, full = theme_axis(data, list(tab.columns))
    z = tab.to_numpy().tolist()
    hover_rows = row_hover or row_labels
    custom = [[f"{hr}<br>{fc}" for fc in full] for hr in hover_rows]
    return {
        "data": [{
            "type": "heatmap", "z": z, "x": ticks, "y": row_labels, "colorscale": SCALES.get(colorscale, colorscale),
            "customdata": custom, "hoverongaps": False, "xgap": 1, "ygap": 1,
            "hovertemplate": "%{customdata}<br>%{z} 文 sentences<extra></extra>",
            "colorbar": {"title": {"text": "文"}, "thickness": 12},
        }],
        "layout": layout(title, height=max(300, 24 * len(row_labels) + 160),
                         xaxis={"tickangle": -40, "side": "bottom", "automargin": True},
                         yaxis={"autorange": "reversed", "automargin": True},
                         margin={"l": 160, "r": 20, "t": 40, "b": 130}),
    }


def topic_map(topics: list[dict], xy: pd.DataFrame) -> dict[str, Any] | None:
    """Bubble chart of topics in a 2-D layout; bubble area ~ topic size."""
    if xy is None or xy.empty:
        return None
    info = {t["topic_id"]: t for t in topics}
    xy = xy[xy["topic_id"].isin(info)]
    if xy.empty:
        return None
    sizes = [info[t]["size"] for t in xy["topic_id"]]
    smax = max(sizes) or 1
    return {
        "data": [{
            "type": "scatter", "mode": "markers+text", "x": [round(float(v), 4) for v in xy["x"]],
            "y": [round(float(v), 4) for v in xy["y"]],
            "text": [esc(topic_name(t, info[t]["label"], 18)) + (" (議事進行)" if info[t].get("procedural") else "")
                     for t in xy["topic_id"]], "textposition": "top center",
            "textfont": {"size": 10},
            "customdata": [esc(topic_name(t, info[t]["label"], 60)) + "<br>" + esc(" · ".join(info[t]["terms"][:8]))
                           + f"<br>{info[t]['size']} 文<br>"
                           + esc("、".join(f"{sp} ({n})" for sp, n in info[t].get("speakers", [])))
                           for t in xy["topic_id"]],
            "hovertemplate": "%{customdata}<extra></extra>",
            "marker": {"size": [8 + 52 * math.sqrt(s / smax) for s in sizes],
                       "color": ["#bbbbbb" if info[t].get("procedural") else PALETTE[i % len(PALETTE)]
                                 for i, t in enumerate(xy["topic_id"])],
                       "opacity": 0.7, "line": {"width": 1, "color": "white"}},
        }],
        "layout": layout(height=520, xaxis={"visible": False, "range": _padded(xy["x"], 0.18)},
                         yaxis={"visible": False, "range": _padded(xy["y"], 0.12)},
                         margin={"l": 20, "r": 20, "t": 20, "b": 20}),
    }


def _padded(values, frac: float) -> list[float]:
    """Axis range with room for the text labels around the outermost bubbles."""
    lo, hi = float(min(values)), float(max(values))
    pad = (hi - lo) * frac or 1.0
    return [round(lo - pad, 4), round(hi + pad, 4)]


def topic_sizes(topics: list[dict]) -> dict[str, Any] | None:
    tt = [t for t in topics if t["topic_id"] >= 0][:30]
    if not tt:
        return None
    tt = tt[::-1]
    return {
        "data": [{"type": "bar", "orientation": "h", "x": [t["size"] for t in tt],
                  "y": [esc(topic_name(t["topic_id"], t["label"])) for t in tt],
                  "customdata": [esc(" · ".join(t["terms"][:8])) for t in tt],
                  "hovertemplate": "%{y}<br>%{customdata}<br>%{x} 文<extra></extra>",
                  "marker": {"color": ["#bbbbbb" if t.get("procedural") else "#72b7b2" for t in tt]}}],
        "layout": layout(height=max(300, 24 * len(tt) + 80), yaxis={"automargin": True},
                         xaxis={"title": {"text": "文 sentences"}, "gridcolor": "#eee"},
                         margin={"l": 220, "r": 20, "t": 20, "b": 50}),
    }


def topic_class_heatmap(tab: pd.DataFrame, labels: dict[int, str]) -> dict[str, Any]:
    rows = [esc(topic_name(t, labels.get(t, str(t)), 22)) for t in tab.index]
    return {
        "data": [{"type": "heatmap", "z": tab.to_numpy().tolist(), "x": [esc(c) for c in tab.columns], "y": rows,
                  "colorscale": SCALES["Greens"], "xgap": 1, "ygap": 1,
                  "hovertemplate": "%{y}<br>%{x}: %{z}<extra></extra>"}],
        "layout": layout(height=max(300, 24 * len(rows) + 140), yaxis={"autorange": "reversed", "automargin": True},
                         xaxis={"automargin": True}, margin={"l": 220, "r": 20, "t": 20, "b": 80}),
    }


def entities_bar(top: pd.DataFrame, n: int = 25) -> dict[str, Any] | None:
    if top is None or top.empty:
        return None
    traces = []
    overall = top.sort_values("mentions", ascending=False).head(n)
    order = [esc(t) for t in overall.sort_values("mentions")["text"]]
    for i, (group, title) in enumerate(ENTITY_GROUPS.items()):
        g = overall[overall["coarse_label"] == group]
        if g.empty:
            continue
        traces.append({"type": "bar", "orientation": "h", "name": title, "x": g["mentions"].tolist(),
                       "y": [esc(t) for t in g["text"]], "marker": {"color": PALETTE[i]},
                       "hovertemplate": "%{y}: %{x} 回<extra>" + esc(title) + "</extra>"})
    return {"data": traces,
            "layout": layout(height=max(300, 22 * len(overall) + 100), barmode="stack",
                             yaxis={"categoryorder": "array", "categoryarray": order, "automargin": True},
                             xaxis={"title": {"text": "言及回数 mentions"}, "gridcolor": "#eee"},
                             legend={"orientation": "h", "y": -0.15},
                             margin={"l": 180, "r": 20, "t": 20, "b": 80})}


def themes_over_time(data: ReportData, tab: pd.DataFrame) -> dict[str, Any]:
    ticks, full = theme_axis(data, list(tab.columns))
    z = (tab.T.to_numpy() * 100).round(1).tolist()
    return {
        "data": [{"type": "heatmap", "z": z, "x": [esc(d) for d in tab.index], "y": ticks, "colorscale": SCALES["YlOrRd"],
                  "customdata": [[f for _ in tab.index] for f in full], "xgap": 1, "ygap": 1,
                  "hovertemplate": "%{customdata}<br>%{x}: %{z}%<extra></extra>",
                  "colorbar": {"title": {"text": "%"}, "thickness": 12}}],
        "layout": layout(height=max(340, 30 * len(ticks) + 140), xaxis={"type": "category", "tickangle": -45,
                                                                       "automargin": True},
                         yaxis={"automargin": True}, margin={"l": 200, "r": 20, "t": 20, "b": 100}),
    }


def topics_over_time(tab: pd.DataFrame, labels: dict[int, str]) -> dict[str, Any]:
    traces = []
    for i, t in enumerate(tab.columns):
        traces.append({"type": "scatter", "mode": "lines+markers", "x": [esc(d) for d in tab.index],
                       "y": tab[t].astype(float).tolist(), "name": esc(topic_name(int(t), labels.get(int(t), str(t)), 20)),
                       "line": {"color": PALETTE[i % len(PALETTE)], "width": 2}, "marker": {"size": 5}})
    return {"data": traces,
            "layout": layout(height=460, xaxis={"type": "category", "tickangle": -45, "automargin": True},
                             yaxis={"title": {"text": "文 sentences"}, "gridcolor": "#eee"},
                             legend={"font": {"size": 10}}, margin={"l": 60, "r": 20, "t": 20, "b": 100})}


def flow_layout(data: ReportData) -> dict[str, Any]:
    """Base layout for the discussion-flow chart (traces are built in the page from ``flow`` data)."""
    ticks, _ = theme_axis(data, data.theme_ids)
    return {
        "themes": ticks, "colors": [PALETTE[i % len(PALETTE)] for i in range(len(ticks))],
        "layout": layout(height=max(380, 30 * len(ticks) + 160),
                         xaxis={"title": {"text": "文の順序 sentence position in the meeting"}, "gridcolor": "#f3f3f3",
                                "rangemode": "tozero"},
                         yaxis={"type": "category", "categoryorder": "array", "categoryarray": ticks[::-1],
                                "automargin": True},
                         showlegend=False, margin={"l": 200, "r": 20, "t": 60, "b": 50}),
    }
