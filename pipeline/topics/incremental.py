"""A new meeting in seconds: keep the saved topic model, assign only new sentences, refit on demand
or on drift.

The saved model folder (``models/topics``, a ``persist: true`` DVC output so ``dvc repro`` leaves
it in place for the next run) holds, next to the model, ``state.json`` (when and on which
meetings it was fitted, the fit's reference figures, every later update) and
``assignments.parquet`` (the topic of every sentence assigned so far, keyed by sentence id and
text). A run then:

* **refits** when asked (``--refit`` or ``topics.incremental.refit: true``), when there is no
  usable saved model, or when the model was fitted under other settings, other topics code or
  another BERTopic / embedding backend (the model is a cache of the fit: its key must match);
* otherwise **assigns only new sentences** (``PolicyTopicModel.transform`` with utterance
  context), keeps every earlier assignment unchanged and drops sentences no longer in the
  corpus, unless a **drift signal** passes its threshold (then it refits):

  - ``new_meeting_share``: meetings added, removed or changed (sentences re-parsed or edited)
    since the fit / meetings fitted on, above ``topics.incremental.max_new_meeting_share``
    (default 0.25);
  - ``unfamiliar_share``: among the substantive sentences added since the fit (counted over
    every update, judged once there are ``min_new_sentences``, default 20), the share whose
    cosine to the nearest topic centroid is below the fit's 5th percentile of the same figure,
    above ``topics.incremental.max_unfamiliar_share`` (default 0.5; measured 0.13-0.17 for
    parts of the sample held out of the fit, i.e. ~3x the 0.05 of fitted sentences).
    Cluster-model outliers are reported but not used: HDBSCAN's ``approximate_predict`` leaves
    40-60 % of new (and even of re-transformed fitted) sentences unassigned, so it says little.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("policy_topics.topics")

STATE_FILE = "state.json"
LEDGER_FILE = "assignments.parquet"
#: the last run's topics_per_class / topics_over_time rows (the next run recomputes only the groups
#: an added meeting touches)
PER_CLASS_FILE = "topics_per_class.parquet"
OVER_TIME_FILE = "topics_over_time.parquet"
FORMAT = 1
#: what the group rows of a sentence depend on besides its topic (checked before saved rows are reused)
CLASS_STATE = ["speaker", "speaker_role", "agenda_item", "meeting_date"]
LEDGER_COLUMNS = ["sentence_id", "text_hash", "meeting_id", "topic_id", "topic_prob", "is_procedural", "rep_score",
                  *CLASS_STATE]


def incremental_settings(params: dict) -> dict:
    """``topics.incremental`` (pipeline.settings.IncrementalSettings declares the defaults)."""
    from pipeline.settings import IncrementalSettings

    return IncrementalSettings.model_validate(params.get("incremental") or {}).model_dump()


def fit_key(params: dict, backend: str) -> dict:
    """What the saved model depends on: settings (minus ``incremental``), code (the topics package, the
    project modules it imports and their libraries, as for the partition cache), BERTopic, backend."""
    from importlib.metadata import version

    from pipeline.sources import code_digest

    settings = {k: v for k, v in params.items() if k != "incremental"}
    blob = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return {"settings": hashlib.sha256(blob.encode()).hexdigest()[:16], "code": code_digest(fit_key),
            "bertopic": version("bertopic"), "embedding_backend": backend, "format": FORMAT}


def text_hashes(texts) -> list[str]:
    from pipeline.topics.terms import norm_text

    return [hashlib.sha1(norm_text(t).encode()).hexdigest()[:16] for t in texts]


@dataclass
class Plan:
    """What a run does: ``refit`` (with ``reason``) or assign ``new_rows`` of the frame."""

    refit: bool
    reason: str
    new_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    ledger: pd.DataFrame | None = None
    state: dict | None = None
    signals: dict = field(default_factory=dict)


def load_state(model_dir: Path) -> tuple[dict | None, pd.DataFrame | None]:
    sp, lp = model_dir / STATE_FILE, model_dir / LEDGER_FILE
    if not sp.exists() or not lp.exists():
        return None, None
    try:
        return json.loads(sp.read_text(encoding="utf-8")), pd.read_parquet(lp)
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable saved topic state (%s); refitting", model_dir, exc)
        return None, None


def sentence_keys(frame: pd.DataFrame, hashes: list[str] | None = None) -> pd.Series:
    """Ledger key of every sentence: sentence id + hash of its text."""
    hashes = text_hashes(frame["text"]) if hashes is None else hashes
    return pd.Series(frame["sentence_id"].astype(str).to_numpy()) + "\0" + pd.Series(list(hashes))


def plan(frame: pd.DataFrame, model_dir: Path, key: dict, params: dict, refit: bool = False,
         hashes: list[str] | None = None) -> Plan:
    """Refit or assign? Everything but the drift signal that needs the model (see :func:`drift`)."""
    inc = incremental_settings(params)
    if refit or inc["refit"]:
        return Plan(True, "requested (--refit)" if refit else "requested (topics.incremental.refit)")
    state, ledger = load_state(model_dir)
    if state is None:
        return Plan(True, "no saved model")
    changed = [k for k in ("settings", "code", "bertopic", "embedding_backend", "format")
               if state.get("fit_key", {}).get(k) != key[k]]
    if changed:
        return Plan(True, f"saved model is stale ({', '.join(changed)} changed)")
    keys = sentence_keys(frame, hashes)
    ledger_keys = ledger["sentence_id"].astype(str) + "\0" + ledger["text_hash"].astype(str)
    new_rows = np.where(~keys.isin(set(ledger_keys)).to_numpy())[0]
    has_meeting = "meeting_id" in frame.columns
    meetings = set(frame["meeting_id"].astype(str)) if has_meeting else set()
    fitted = set(state.get("meetings") or [])
    # a fitted meeting whose sentences changed (re-parsed, edited) counts as changed too
    gone = ledger.loc[~ledger_keys.isin(set(keys)).to_numpy(), "meeting_id"].astype(str)
    came = frame["meeting_id"].astype(str).to_numpy()[new_rows] if has_meeting else []
    modified = (set(gone) | set(came)) & fitted & meetings | set(state.get("meetings_modified") or [])
    share = len((meetings ^ fitted) | modified) / max(1, len(fitted))
    signals = {"new_meeting_share": round(share, 4), "max_new_meeting_share": inc["max_new_meeting_share"],
               "meetings_added": sorted(meetings - fitted), "meetings_removed": sorted(fitted - meetings),
               "meetings_modified": sorted(modified)}
    if share > float(inc["max_new_meeting_share"]):
        return Plan(True, f"drift: meetings changed since the fit {share:.2f} > "
                          f"{inc['max_new_meeting_share']} (topics.incremental.max_new_meeting_share)",
                    signals=signals)
    return Plan(False, "saved model up to date", new_rows, ledger, state, signals)


def unfamiliar(details: dict, state: dict) -> np.ndarray:
    """New substantive sentences farther from every topic centroid than 95 % of the fitted ones."""
    low = details["similarity"] < float(state["reference"]["similarity_p05"])
    return low & ~details["procedural"]


def drift(details: dict, state: dict, params: dict) -> tuple[dict, bool]:
    """Cumulative unfamiliar share since the fit (this update's new sentences included)."""
    inc = incremental_settings(params)
    since = dict(state.get("since_fit") or {"substantive": 0, "unfamiliar": 0})
    since["substantive"] += int((~details["procedural"]).sum())
    since["unfamiliar"] += int(unfamiliar(details, state).sum())
    share = since["unfamiliar"] / since["substantive"] if since["substantive"] else 0.0
    judged = since["substantive"] >= int(inc["min_new_sentences"])
    return ({**since, "unfamiliar_share": round(share, 4), "judged": judged},
            judged and share > float(inc["max_unfamiliar_share"]))


def new_state(model, frame: pd.DataFrame, key: dict, reason: str, n_fit: int | None = None) -> dict:
    """``n_sentences_fitted``: sentences of the corpus at the fit (the fit sample and the rest it
    placed); ``n_fit``: the sentences the model was fitted on (the sample)."""
    meetings = sorted(set(frame["meeting_id"].astype(str))) if "meeting_id" in frame.columns else []
    state = {"format": FORMAT, "fitted_at": now(), "fit_reason": reason, "meetings": meetings,
             "n_meetings": len(meetings), "n_sentences_fitted": int(len(frame)),
             "n_fit": int(len(frame) if n_fit is None else n_fit), "fit_key": key,
             "since_fit": {"substantive": 0, "unfamiliar": 0}, "updates": []}
    state["reference"] = dict(model.reference_)
    return state


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def class_state(frame: pd.DataFrame) -> pd.DataFrame:
    """:data:`CLASS_STATE` columns of every sentence as text ("" = none)."""
    return pd.DataFrame({c: (frame[c].astype("string").fillna("").astype(str).to_numpy() if c in frame.columns
                             else np.full(len(frame), "", dtype=object)) for c in CLASS_STATE})


def ledger_frame(frame: pd.DataFrame, assignments: pd.DataFrame, hashes: list[str] | None = None,
                 scores: np.ndarray | None = None) -> pd.DataFrame:
    out = pd.DataFrame({
        "sentence_id": frame["sentence_id"].astype(str).to_numpy(),
        "text_hash": text_hashes(frame["text"]) if hashes is None else list(hashes),
        "meeting_id": (frame["meeting_id"].astype(str).to_numpy() if "meeting_id" in frame.columns
                       else np.full(len(frame), "")),
        "topic_id": assignments["topic_id"].astype(int).to_numpy(),
        "topic_prob": assignments["topic_prob"].astype(float).to_numpy(),
        "is_procedural": assignments["is_procedural"].astype(bool).to_numpy(),
        "rep_score": np.full(len(frame), np.nan) if scores is None else np.asarray(scores, dtype=np.float64),
    })
    return pd.concat([out, class_state(frame)], axis=1)


def load_group_tables(model_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    pc, ot = model_dir / PER_CLASS_FILE, model_dir / OVER_TIME_FILE
    if not pc.exists() or not ot.exists():
        return None
    try:
        per_class, over_time = pd.read_parquet(pc), pd.read_parquet(ot)
    except (OSError, ValueError):
        return None
    for df in (per_class, over_time):
        df["terms"] = [list(t) for t in df["terms"]]
    return per_class, over_time


def group_tables(terms, frame: pd.DataFrame, topics: np.ndarray, keys: pd.Series, plan: Plan,
                 model_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """topics_per_class / topics_over_time after adding ``plan.new_rows``: the saved rows of every
    group (speaker, role, agenda item or date x topic) without a new sentence, the groups with one
    recomputed over all their sentences (a group's row depends only on its own sentences and the
    fitted c-TF-IDF, :mod:`pipeline.topics.ctfidf`). None, i.e. compute everything, unless the saved
    rows stand for exactly the earlier sentences: none removed or changed, the same speaker, role,
    agenda item and date for each, and the same topics over time (BERTopic indexes its global rows
    by them)."""
    from pipeline.topics import tables

    saved = load_group_tables(model_dir)
    led = plan.ledger
    tstate = (plan.state or {}).get("tables")
    if saved is None or led is None or tstate is None or any(c not in led.columns for c in CLASS_STATE):
        return None
    is_new = np.zeros(len(frame), dtype=bool)
    is_new[np.asarray(plan.new_rows, dtype=int)] = True
    led_keys = pd.Index(led["sentence_id"].astype(str) + "\0" + led["text_hash"].astype(str))
    old_keys = keys[~is_new].to_numpy()
    if len(led_keys) != len(old_keys) or led_keys.has_duplicates:
        return None
    pos = led_keys.get_indexer(old_keys)
    if (pos < 0).any():
        return None
    now = class_state(frame)[~is_new].reset_index(drop=True)
    then = led.iloc[pos][CLASS_STATE].astype("string").fillna("").astype(str).reset_index(drop=True)
    if not all((now[c].to_numpy() == then[c].to_numpy()).all() for c in CLASS_STATE):
        return None
    topics = np.asarray(topics, dtype=int)
    if tables.over_time_topics(frame, topics) != tstate.get("over_time_topics"):
        return None
    new = np.where(is_new)[0]
    touched_pc = {kind: {(cls[i], int(topics[i])) for i in new if cls[i]}
                  for kind, cls in tables.class_values(frame).items()}
    per_class = tables.merge_group_rows(saved[0], tables.topics_per_class(terms, frame, topics, only=touched_pc),
                                        ["class_kind", "class", "topic_id"], tables.sort_per_class)
    dates = tables.meeting_dates(frame)
    if dates is None:
        return per_class, saved[1]
    touched_ot = {(pd.Timestamp(dates.iat[i]), int(topics[i])) for i in new if pd.notna(dates.iat[i])}
    over_time = tables.merge_group_rows(saved[1], tables.topics_over_time(terms, frame, topics, only=touched_ot),
                                        ["timestamp", "topic_id"], tables.sort_over_time)
    return per_class, over_time


def model_summary(state: dict, mode: str, reason: str, signals: dict | None = None) -> dict[str, Any]:
    """What metrics/topics.json and the report say about the model in use."""
    out = {"mode": mode, "reason": reason, "fitted_at": state["fitted_at"], "n_meetings_fitted": state["n_meetings"],
           "n_sentences_fitted": state["n_sentences_fitted"], "n_fit": state.get("n_fit"),
           "updates_since_fit": len(state.get("updates") or [])}
    if signals:
        out["drift"] = signals
    return out


def save_state(model_dir: Path, state: dict, ledger: pd.DataFrame, direct: bool = False,
               tables: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> None:
    """``direct``: plain writes into a folder that is itself being written atomically. ``tables``:
    this run's topics_per_class and topics_over_time (see :func:`group_tables`)."""
    cols = [c for c in LEDGER_COLUMNS if c in ledger.columns]
    if direct:
        ledger[cols].to_parquet(model_dir / LEDGER_FILE, index=False)
        if tables is not None:
            tables[0].to_parquet(model_dir / PER_CLASS_FILE, index=False)
            tables[1].to_parquet(model_dir / OVER_TIME_FILE, index=False)
        (model_dir / STATE_FILE).write_text(json.dumps(state, ensure_ascii=False, indent=2), encoding="utf-8")
        return
    from pipeline.io import write_json, write_parquet

    write_parquet(ledger[cols], model_dir / LEDGER_FILE)
    if tables is not None:
        write_parquet(tables[0], model_dir / PER_CLASS_FILE)
        write_parquet(tables[1], model_dir / OVER_TIME_FILE)
    write_json(state, model_dir / STATE_FILE)
