"""Aggregates behind the report (HTML, Markdown and tables share them).

All functions take :class:`~pipeline.report.data.ReportData` and return plain
DataFrames / dicts; nothing here renders or escapes (that is the renderers' job).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.report.data import PROCEDURAL, ReportData
from pipeline.settings import default

_SENT_K = re.compile(r":s(\d+)$")


@dataclass
class Context:
    """Lookups shared by the aggregates: meeting index/labels, utterance positions, speaker anchors."""

    data: ReportData
    meeting_idx: dict[str, int]
    meeting_label: dict[str, str]
    utt_order: dict[str, int]
    utt_page: dict[str, Any]
    speaker_idx: dict[str, int]


def context(data: ReportData) -> Context:
    m = data.meetings
    meeting_idx = {mid: i for i, mid in enumerate(m["meeting_id"])}
    labels = {}
    for r in m.itertuples(index=False):
        title = r.meeting_title if isinstance(r.meeting_title, str) and r.meeting_title else r.meeting_id
        date = r.meeting_date if isinstance(r.meeting_date, str) and r.meeting_date else ""
        title = title if len(title) <= 28 else title[:27] + "…"
        labels[r.meeting_id] = f"{title} {date}".strip()
    u = data.utterances
    order = pd.to_numeric(u["order"], errors="coerce")
    utt_order = {k: (int(v) if pd.notna(v) else None) for k, v in zip(u["utterance_id"], order)}
    utt_page = {k: (int(v) if pd.notna(v) else None)
                for k, v in zip(u["utterance_id"], pd.to_numeric(u["page_start"], errors="coerce"))}
    counts = data.sentences.groupby("speaker").size().sort_values(ascending=False)
    speaker_idx = {sp: i for i, sp in enumerate(counts.index)}
    return Context(data, meeting_idx, labels, utt_order, utt_page, speaker_idx)


def quote(ctx: Context, row: Any) -> dict[str, Any]:
    """A quote with everything needed to link it back: meeting, speaker, position."""
    get = row.get if isinstance(row, dict) else (lambda k, d=None: getattr(row, k, d))
    sid = str(get("sentence_id"))
    uid = str(get("utterance_id"))
    k = _SENT_K.search(sid)
    mid = str(get("meeting_id"))
    speaker = str(get("speaker"))
    return {
        "text": str(get("text")),
        "speaker": speaker,
        "role": str(get("speaker_role") or ""),
        "speaker_anchor": f"sp{ctx.speaker_idx.get(speaker, 0)}",
        "meeting_id": mid,
        "meeting_anchor": f"m{ctx.meeting_idx.get(mid, 0)}",
        "meeting_label": ctx.meeting_label.get(mid, mid),
        "utterance_order": ctx.utt_order.get(uid),
        "sentence_k": int(k.group(1)) if k else None,
        "sentence_id": sid,
        "page": ctx.utt_page.get(uid),
        "agenda_item": get("agenda_item"),
    }


def position_label(q: dict[str, Any]) -> str:
    parts = []
    if q.get("utterance_order") is not None:
        parts.append(f"発言 #{q['utterance_order'] + 1}")
    if q.get("sentence_k") is not None:
        parts.append(f"文 {q['sentence_k'] + 1}")
    if q.get("page"):
        parts.append(f"p.{q['page']}")
    return " · ".join(parts)


# ---------------------------------------------------------------- overview
def safe_url(url: Any) -> str:
    """The source URL if it is plain http(s) (never ``javascript:`` etc.), else ""."""
    if isinstance(url, str) and re.match(r"^https?://[^\s<>\"']+$", url.strip()):
        return url.strip()
    return ""


def overview(ctx: Context) -> list[dict[str, Any]]:
    d = ctx.data
    n_sent = d.sentences.groupby("meeting_id").size()
    n_spk = d.sentences.groupby("meeting_id")["speaker"].nunique()
    out = []
    for i, r in enumerate(d.meetings.itertuples(index=False)):
        session = r.session if pd.notna(r.session) else None
        out.append({
            "anchor": f"m{i}", "meeting_id": r.meeting_id,
            "title": r.meeting_title if isinstance(r.meeting_title, str) and r.meeting_title else r.meeting_id,
            "date": r.meeting_date if isinstance(r.meeting_date, str) else "",
            "session": int(session) if session is not None else None,
            "venue": r.venue if isinstance(r.venue, str) else "",
            "source_file": r.source_file if isinstance(r.source_file, str) else "",
            "attendees": [str(a) for a in r.attendees], "absentees": [str(a) for a in r.absentees],
            "officials": [str(a) for a in r.officials], "url": safe_url(r.url),
            "agenda": [str(a) for a in r.agenda],
            "n_utterances": int(r.n_utterances) if pd.notna(r.n_utterances) else 0,
            "n_sentences": int(n_sent.get(r.meeting_id, 0)), "n_speakers": int(n_spk.get(r.meeting_id, 0)),
        })
    return out


def summary_counts(data: ReportData) -> dict[str, int]:
    s = data.sentences
    sub = data.substantive()
    proc = s["themes"].map(lambda ts: PROCEDURAL in ts and all(t == PROCEDURAL for t in ts)).sum()
    return {
        "meetings": len(data.meetings), "utterances": len(data.utterances), "sentences": len(s),
        "substantive": len(sub), "procedural": int(proc),
        "untagged": int(s["themes"].map(len).eq(0).sum()), "speakers": int(s["speaker"].nunique()),
        "topics": int((data.topic_info["topic_id"] >= 0).sum()) if data.topic_info is not None else 0,
        "entities": len(data.entities) if data.entities is not None else 0,
    }


# ---------------------------------------------------------------- themes
def coverage(data: ReportData) -> pd.DataFrame:
    """Share of substantive sentences per policy theme (multi-label: shares sum > 1)."""
    sub = data.substantive()
    long = data.theme_long()
    n = long.groupby("theme").size()
    spk = long.groupby("theme")["speaker"].nunique()
    rows = []
    for tid in data.policy_theme_ids:
        t = data.theme(tid)
        c = int(n.get(tid, 0))
        rows.append({"theme_id": tid, "theme_ja": t.ja, "theme_en": t.en, "sentences": c,
                     "share": c / len(sub) if len(sub) else 0.0, "speakers": int(spk.get(tid, 0))})
    return pd.DataFrame(rows)


def theme_by(data: ReportData, key: str, top: int | None = None) -> pd.DataFrame:
    """Sentence counts: rows = values of ``key`` (speaker / speaker_role / agenda_item), cols = themes."""
    long = data.theme_long()
    long = long[long[key].notna()]
    tab = pd.crosstab(long[key], long["theme"]).reindex(columns=data.policy_theme_ids, fill_value=0)
    if key == "agenda_item":  # agenda items in meeting order
        first = (data.sentences.sort_values(["meeting_id", "order"]).drop_duplicates(key)
                 .reset_index(drop=True).reset_index().set_index(key)["index"])
        tab = tab.loc[sorted(tab.index, key=lambda a: first.get(a, 1 << 30))]
    else:
        tab = tab.loc[tab.sum(axis=1).sort_values(ascending=False).index]
    if top:
        tab = tab.head(top)
    tab.index.name = key
    return tab


def speaker_table(ctx: Context, top_themes: int = 3) -> pd.DataFrame:
    """Per speaker: role, sentences, substantive sentences, leading themes (anchors for quotes)."""
    d = ctx.data
    s = d.sentences
    role = s.groupby("speaker")["speaker_role"].agg(lambda x: x.mode().iat[0] if len(x.mode()) else "")
    n = s.groupby("speaker").size()
    tab = theme_by(d, "speaker")
    n_sub = d.substantive().groupby("speaker").size()
    rows = []
    for sp, i in ctx.speaker_idx.items():
        lead = []
        if sp in tab.index:
            r = tab.loc[sp]
            lead = [(tid, int(c)) for tid, c in r.sort_values(ascending=False).items() if c > 0][:top_themes]
        rows.append({"anchor": f"sp{i}", "speaker": sp, "role": role.get(sp, ""), "sentences": int(n.get(sp, 0)),
                     "substantive": int(n_sub.get(sp, 0)), "lead": lead})
    return pd.DataFrame(rows)


def theme_quotes(ctx: Context, theme_id: str, k: int = default("report.top_quotes"), min_chars: int = 25, max_chars: int = 220,
                 used: set[str] | None = None) -> list[dict]:
    """Up to ``k`` quotes for a theme: highest theme score first, one per speaker where possible,
    preferring sentences of readable length not already quoted for another theme (``used``)."""
    long = ctx.data.theme_long()
    cand = long[long["theme"] == theme_id]
    if cand.empty:
        return []
    score = cand["theme_scores"].map(lambda d: float(d.get(theme_id, 0.0)) if isinstance(d, dict) else 0.0)
    length = cand["text"].str.len()
    good_len = length.between(min_chars, max_chars)
    fresh = ~cand["sentence_id"].isin(used or set())
    cand = cand.assign(_score=score, _len_ok=good_len, _fresh=fresh).sort_values(
        ["_fresh", "_len_ok", "_score"], ascending=False)
    picked, seen = [], set()
    for r in cand.itertuples(index=False):
        if r.speaker in seen:
            continue
        picked.append(r)
        seen.add(r.speaker)
        if len(picked) == k:
            break
    if len(picked) < k:  # not enough distinct speakers
        for r in cand.itertuples(index=False):
            if all(r.sentence_id != p.sentence_id for p in picked):
                picked.append(r)
            if len(picked) == k:
                break
    if used is not None:
        used.update(p.sentence_id for p in picked)
    return [quote(ctx, r) for r in picked]


def theme_headlines(ctx: Context, k: int = default("report.top_quotes")) -> list[dict[str, Any]]:
    """Per policy theme with any sentence: counts, who raised it, quotes."""
    d = ctx.data
    cov = coverage(d).set_index("theme_id")
    by_spk = theme_by(d, "speaker")
    by_role = theme_by(d, "speaker_role")
    used: set[str] = set()
    out = []
    for tid in cov.sort_values("sentences", ascending=False).index:
        c = cov.loc[tid]
        if c["sentences"] == 0:
            continue
        spk = by_spk[tid].sort_values(ascending=False)
        role = by_role[tid].sort_values(ascending=False)
        out.append({
            "theme_id": tid, "ja": c["theme_ja"], "en": c["theme_en"], "sentences": int(c["sentences"]),
            "share": float(c["share"]),
            "top_speakers": [(sp, int(n)) for sp, n in spk.items() if n > 0][:3],
            "roles": [(r, int(n)) for r, n in role.items() if n > 0][:3],
            "quotes": theme_quotes(ctx, tid, k, used=used),
        })
    return out


def theme_over_time(data: ReportData) -> pd.DataFrame | None:
    """Share of substantive sentences per theme per meeting date (None for a single date)."""
    m = data.meetings[["meeting_id", "meeting_date"]].dropna()
    if m["meeting_date"].nunique() < 2:
        return None
    date = dict(zip(m["meeting_id"], m["meeting_date"]))
    sub = data.substantive().assign(date=lambda x: x["meeting_id"].map(date)).dropna(subset=["date"])
    long = data.theme_long().assign(date=lambda x: x["meeting_id"].map(date)).dropna(subset=["date"])
    denom = sub.groupby("date").size()
    tab = pd.crosstab(long["date"], long["theme"]).reindex(columns=data.policy_theme_ids, fill_value=0)
    dates = sorted(set(date.values()))  # every meeting date, also those without policy content
    tab = tab.reindex(dates, fill_value=0)
    return tab.div(denom.reindex(dates), axis=0).fillna(0.0)


# ---------------------------------------------------------------- topics
def topic_table(ctx: Context, k: int = default("report.top_quotes"), min_chars: int = 20, max_chars: int = 200) -> list[dict[str, Any]]:
    """Topics (outliers last): label, top terms, size in this report's sentences, quotes."""
    d = ctx.data
    ti = d.topic_info
    s = d.sentences
    if ti is None or ti.empty:
        return []
    by_id = s.drop_duplicates("sentence_id").set_index("sentence_id")
    sizes = s.groupby("topic_id").size()
    long = d.theme_long()
    topic_themes = pd.crosstab(long["topic_id"], long["theme"]) if not long.empty else pd.DataFrame()
    rows = []
    for r in ti.sort_values(["topic_id"]).itertuples(index=False):
        tid = int(r.topic_id)
        size = int(sizes.get(tid, 0))
        if size == 0:
            continue
        # candidates: the topics stage's representative sentences (if in this subset), then members by
        # probability; sentences of readable length first
        reps = [rep.get("sentence_id") for rep in (r.representative or []) if isinstance(rep, dict)]
        reps = [sid for sid in dict.fromkeys(reps) if sid in by_id.index]
        members = s[s["topic_id"] == tid].sort_values("topic_prob", ascending=False, na_position="last")
        cand = list(dict.fromkeys([*reps, *members["sentence_id"].head(50)]))
        length = {sid: len(str(by_id.at[sid, "text"])) for sid in cand}
        cand.sort(key=lambda sid: not (min_chars <= length[sid] <= max_chars))  # stable: keeps rep order
        quotes = [quote(ctx, {**by_id.loc[sid].to_dict(), "sentence_id": sid}) for sid in cand[:k]]
        terms = [str(t) for t in (r.terms or [])][:10]
        procedural = bool(getattr(r, "is_procedural", False)) if pd.notna(getattr(r, "is_procedural", False)) else False
        rows.append({"topic_id": tid, "label": str(r.label), "terms": terms, "size": size, "procedural": procedural,
                     "share": size / len(s) if len(s) else 0.0, "quotes": quotes,
                     "speakers": [(sp, int(n)) for sp, n in
                                  s[s["topic_id"] == tid]["speaker"].value_counts().head(3).items()],
                     "themes": ([(th, int(n)) for th, n in topic_themes.loc[tid].sort_values(ascending=False).items()
                                 if n > 0][:2] if tid in topic_themes.index else [])})
    rows.sort(key=lambda x: (x["topic_id"] < 0, -x["size"]))
    return rows


def topic_layout(data: ReportData) -> pd.DataFrame | None:
    """2-D coordinates of topics: the topics stage's own (x/y columns of topic_info) if present,
    else classical MDS over cosine distances between the topics' c-TF-IDF vectors. The vectors
    come from the content terms of each topic's sentences (``terms`` of sentences.parquet);
    without those, from the top terms and weights in topic_info."""
    ti = data.topic_info
    if ti is None:
        return None
    ti = ti[ti["topic_id"] >= 0]
    if ti.empty:
        return None
    if {"x", "y"} <= set(ti.columns) and ti[["x", "y"]].notna().all().all():
        return pd.DataFrame({"topic_id": ti["topic_id"], "x": ti["x"].astype(float), "y": ti["y"].astype(float)})
    ids = ti["topic_id"].astype(int).tolist()
    X = _topic_term_matrix(data, ids)
    if X is None:
        X = _topic_info_matrix(ti)
    xy = _classical_mds(X)
    return pd.DataFrame({"topic_id": ids, "x": xy[:, 0], "y": xy[:, 1]})


def _topic_term_matrix(data: ReportData, ids: list[int]) -> np.ndarray | None:
    s = data.sentences
    if "terms" in s.columns:
        s = s[s["topic_id"].isin(ids)]
        long = s[["topic_id", "terms"]].explode("terms").dropna()
        if long.empty:
            return None
        # topic x term counts, terms in sorted order (as pd.crosstab gave them, ~2 s on full Tokyo)
        rows = pd.Index(ids).get_indexer(long["topic_id"])
        cols, vocab = pd.factorize(long["terms"].astype(str), sort=True)
        counts = np.zeros((len(ids), len(vocab)), dtype=np.int64)
        np.add.at(counts, (rows, cols), 1)
    else:  # loaded lean: the same counts aggregated from the sentences table on disk, part by part
        from pipeline.report.data import topic_term_counts

        path = data.input_dir / "sentences.parquet"
        got = topic_term_counts(path, ids, set(s["sentence_id"]) if data.subset else None) \
            if path.exists() else None
        if got is None:
            return None
        counts = got[0]
    tf = counts.astype(float)
    tf = tf / np.maximum(tf.sum(axis=1, keepdims=True), 1)
    avg = counts.sum() / max(len(ids), 1)
    idf = np.log(1 + avg / np.maximum(counts.sum(axis=0), 1))  # BERTopic's c-TF-IDF weighting
    return tf * idf


def _topic_info_matrix(ti: pd.DataFrame) -> np.ndarray:
    vocab: dict[str, int] = {}
    for terms in ti["terms"]:
        for t in terms:
            vocab.setdefault(str(t), len(vocab))
    X = np.zeros((len(ti), max(len(vocab), 1)))
    for i, (terms, weights) in enumerate(zip(ti["terms"], ti["weights"])):
        weights = list(weights or [])
        for j, t in enumerate(terms):
            w = float(weights[j]) if j < len(weights) and weights[j] is not None else 1.0 / (j + 1)
            X[i, vocab[str(t)]] = max(w, 0.0)
    return X


def _classical_mds(X: np.ndarray) -> np.ndarray:
    """2-D classical MDS of the rows of X under cosine distance (deterministic)."""
    n = len(X)
    if n <= 1:
        return np.zeros((n, 2))
    from pipeline.vectors import l2_normalize

    Xn = l2_normalize(X, dtype=np.float64)
    D2 = np.clip(1 - Xn @ Xn.T, 0, None) ** 2
    J = np.eye(n) - 1.0 / n
    B = -0.5 * J @ D2 @ J
    vals, vecs = np.linalg.eigh(B)
    order = np.argsort(vals)[::-1][:2]
    xy = vecs[:, order] * np.sqrt(np.clip(vals[order], 0, None))
    if xy.shape[1] < 2:
        xy = np.hstack([xy, np.zeros((n, 2 - xy.shape[1]))])
    for j in range(2):  # fix the sign so reruns give the same picture
        if xy[np.argmax(np.abs(xy[:, j])), j] < 0:
            xy[:, j] = -xy[:, j]
    return xy


def topics_over_time(data: ReportData, top: int = default("report.top_topics_over_time")) -> pd.DataFrame | None:
    """Topic frequency per date (rows = dates, cols = topic ids) for the ``top`` largest topics.
    Uses the topics stage's topics_over_time table, else counts sentences per meeting date."""
    m = data.meetings[["meeting_id", "meeting_date"]].dropna()
    tot = data.topics_over_time
    if tot is not None and not tot.empty and {"topic_id", "timestamp", "frequency"} <= set(tot.columns):
        t = tot[tot["topic_id"] >= 0].copy()
        t["date"] = pd.to_datetime(t["timestamp"], errors="coerce").dt.strftime("%Y-%m-%d")
        tab = t.pivot_table(index="date", columns="topic_id", values="frequency", aggfunc="sum", fill_value=0)
    else:
        if m["meeting_date"].nunique() < 2:
            return None
        date = dict(zip(m["meeting_id"], m["meeting_date"]))
        s = data.sentences[data.sentences["topic_id"] >= 0].assign(date=lambda x: x["meeting_id"].map(date))
        tab = pd.crosstab(s["date"], s["topic_id"])
    if tab.shape[0] < 2 or tab.empty:
        return None
    keep = tab.sum().sort_values(ascending=False).head(top).index
    return tab[keep].sort_index()


def topics_by_class(data: ReportData, kind: str = "role", top_topics: int = 15) -> pd.DataFrame | None:
    """Topic x class frequency from topics_per_class (rows = topics, cols = classes)."""
    tpc = data.topics_per_class
    if tpc is None or tpc.empty or not {"topic_id", "class", "frequency"} <= set(tpc.columns):
        return None
    t = tpc[(tpc["topic_id"] >= 0)]
    if "class_kind" in t.columns:
        t = t[t["class_kind"] == kind]
    if t.empty:
        return None
    tab = t.pivot_table(index="topic_id", columns="class", values="frequency", aggfunc="sum", fill_value=0)
    return tab.loc[tab.sum(axis=1).sort_values(ascending=False).index].head(top_topics)


# ---------------------------------------------------------------- entities
#: GiNZA coarse labels shown, with the report's heading
ENTITY_GROUPS = {
    "organisation": "組織 Organisations",
    "place": "地名・地域 Places",
    "programme": "制度・事業・施策 Programmes",
    "product": "製品・技術 Products",
    "event": "出来事 Events",
    "law": "法令 Laws",
}


def entity_top(data: ReportData, n: int = default("report.top_entities")) -> pd.DataFrame | None:
    """Most mentioned entities per coarse label: coarse_label, text, mentions, sentences, speakers."""
    e = data.entities
    if e is None or e.empty or "text" not in e.columns:
        return None
    e = e.copy()
    if "coarse_label" not in e.columns:
        e["coarse_label"] = e.get("label", "other")
    e["coarse_label"] = e["coarse_label"].fillna("other").astype(str).str.lower()
    if "source" in e.columns:  # speaker names found by the known-speaker matcher are not "mentions"
        e = e[e["source"] != "known_speaker"]
    e = e[e["coarse_label"].isin(ENTITY_GROUPS)]
    if e.empty:
        return None
    e["text"] = e["text"].astype(str).str.strip()
    e = e[e["text"].str.len() > 1]
    agg = e.groupby(["coarse_label", "text"]).agg(
        mentions=("text", "size"),
        sentences=("sentence_id", "nunique") if "sentence_id" in e.columns else ("text", "size"),
        speakers=("speaker", "nunique") if "speaker" in e.columns else ("text", "size"),
    ).reset_index()
    group_rank = {g: i for i, g in enumerate(ENTITY_GROUPS)}
    agg = agg.assign(_g=agg["coarse_label"].map(group_rank)).sort_values(
        ["_g", "mentions", "speakers", "text"], ascending=[True, False, False, True]).drop(columns="_g")
    return agg.groupby("coarse_label", group_keys=False).head(n).reset_index(drop=True)


# ---------------------------------------------------------------- flow
def flow(ctx: Context, hover_chars: int = default("report.hover_chars")) -> list[dict[str, Any]]:
    """Per meeting, the themes along sentence order (compact, built into charts by the page's JS).

    Each meeting: points [[position, theme_index, text_index]], texts (truncated), agenda
    marks [[position, label]]."""
    d = ctx.data
    theme_index = {tid: i for i, tid in enumerate(d.theme_ids)}
    out = []
    s_all = d.sentences
    for mid, s in s_all.groupby("meeting_id", sort=False):
        s = s.sort_values("order")
        pos = np.arange(len(s))
        points, texts, marks = [], [], []
        last_agenda = object()
        for p, r in zip(pos, s.itertuples(index=False)):
            if r.agenda_item != last_agenda and isinstance(r.agenda_item, str) and r.agenda_item:
                marks.append([int(p), r.agenda_item])
            last_agenda = r.agenda_item
            if not r.themes:
                continue
            text = r.text if len(r.text) <= hover_chars else r.text[:hover_chars] + "…"
            texts.append([r.speaker, text])
            for t in r.themes:
                if t in theme_index:
                    points.append([int(p), theme_index[t], len(texts) - 1])
        out.append({"meeting_id": mid, "anchor": f"m{ctx.meeting_idx.get(mid, 0)}",
                    "label": ctx.meeting_label.get(mid, mid), "n": int(len(s)),
                    "points": points, "texts": texts, "agenda": marks})
    order = {mid: i for i, mid in enumerate(d.meetings["meeting_id"])}
    out.sort(key=lambda f: order.get(f["meeting_id"], 1 << 30))
    return out
