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
FORMAT = 1
LEDGER_COLUMNS = ["sentence_id", "text_hash", "meeting_id", "topic_id", "topic_prob", "is_procedural"]


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


def plan(frame: pd.DataFrame, model_dir: Path, key: dict, params: dict, refit: bool = False) -> Plan:
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
    keys = pd.Series(frame["sentence_id"].astype(str).to_numpy()) + "\0" + pd.Series(text_hashes(frame["text"]))
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


def new_state(model, frame: pd.DataFrame, key: dict, reason: str) -> dict:
    meetings = sorted(set(frame["meeting_id"].astype(str))) if "meeting_id" in frame.columns else []
    state = {"format": FORMAT, "fitted_at": now(), "fit_reason": reason, "meetings": meetings,
             "n_meetings": len(meetings), "n_sentences_fitted": int(len(frame)), "fit_key": key,
             "since_fit": {"substantive": 0, "unfamiliar": 0}, "updates": []}
    state["reference"] = dict(model.reference_)
    return state


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def ledger_frame(frame: pd.DataFrame, assignments: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "sentence_id": frame["sentence_id"].astype(str).to_numpy(),
        "text_hash": text_hashes(frame["text"]),
        "meeting_id": (frame["meeting_id"].astype(str).to_numpy() if "meeting_id" in frame.columns
                       else np.full(len(frame), "")),
        "topic_id": assignments["topic_id"].astype(int).to_numpy(),
        "topic_prob": assignments["topic_prob"].astype(float).to_numpy(),
        "is_procedural": assignments["is_procedural"].astype(bool).to_numpy(),
    })


def model_summary(state: dict, mode: str, reason: str, signals: dict | None = None) -> dict[str, Any]:
    """What metrics/topics.json and the report say about the model in use."""
    out = {"mode": mode, "reason": reason, "fitted_at": state["fitted_at"], "n_meetings_fitted": state["n_meetings"],
           "n_sentences_fitted": state["n_sentences_fitted"], "updates_since_fit": len(state.get("updates") or [])}
    if signals:
        out["drift"] = signals
    return out


def save_state(model_dir: Path, state: dict, ledger: pd.DataFrame, direct: bool = False) -> None:
    """``direct``: plain writes into a folder that is itself being written atomically."""
    if direct:
        ledger[LEDGER_COLUMNS].to_parquet(model_dir / LEDGER_FILE, index=False)
        (model_dir / STATE_FILE).write_text(json.dumps(state, ensure_ascii=False, indent=2), encoding="utf-8")
        return
    from pipeline.io import write_json, write_parquet

    write_parquet(ledger[LEDGER_COLUMNS], model_dir / LEDGER_FILE)
    write_json(state, model_dir / STATE_FILE)
