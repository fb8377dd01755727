"""Settings: params.yaml (stage parameters) and configs/ (vocabularies).

Every stage reads its own section through :func:`stage_params`, so notebooks and
tests can call the library functions with the same defaults as `dvc repro`.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

#: project root: the folder holding params.yaml (overridable for tests/notebooks)
ROOT = Path(os.environ.get("POLICY_TOPICS_ROOT", Path(__file__).resolve().parent.parent))
CONFIGS = ROOT / "configs"


class ConfigError(ValueError):
    """A configuration file is missing or malformed."""


@lru_cache(maxsize=None)
def _load_yaml(path: str) -> Any:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: configuration file not found")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:  # pragma: no cover - message passthrough
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """The whole params.yaml as a dict."""
    return dict(_load_yaml(str(path or ROOT / "params.yaml")) or {})


def stage_params(stage: str, path: str | Path | None = None) -> dict[str, Any]:
    """One stage's section of params.yaml (empty dict when absent)."""
    return dict(load_params(path).get(stage) or {})


def load_config(name: str, path: str | Path | None = None) -> Any:
    """A vocabulary file from configs/, e.g. ``load_config("taxonomy")``."""
    return _load_yaml(str(path or CONFIGS / f"{name}.yaml"))
