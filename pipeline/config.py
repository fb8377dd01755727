"""Where configuration lives: params.yaml (typed stage settings) and configs/ (vocabularies).

Stage settings are pydantic models in :mod:`pipeline.settings` (the only place a
default is declared); :func:`stage_params` is the dict view of one validated
section, kept for call sites not yet on the models.
"""
from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import PipelineError

#: project root: the folder holding params.yaml (overridable for tests/notebooks)
ROOT = Path(os.environ.get("POLICY_TOPICS_ROOT", Path(__file__).resolve().parent.parent))
CONFIGS = ROOT / "configs"


class ConfigError(PipelineError, ValueError):
    """A configuration file is missing or malformed: ``FILE: problem`` on one line (exit 2)."""


@lru_cache(maxsize=64)
def _parse_yaml(path: str, mtime_ns: int, size: int) -> Any:
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(p, f"invalid YAML: {where}{getattr(exc, 'problem', None) or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(p, f"cannot read ({exc})") from None


def load_yaml(path: str | Path) -> Any:
    """A YAML file's content, parsed once per file version; each call returns a fresh deep copy."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise ConfigError(p, "configuration file not found") from None
    return copy.deepcopy(_parse_yaml(str(p), st.st_mtime_ns, st.st_size))


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """The whole params.yaml, validated, as plain dicts (every key present, defaults filled in)."""
    from pipeline.settings import load_settings

    return load_settings(path).to_params()


def stage_params(stage: str, path: str | Path | None = None) -> dict[str, Any]:
    """One stage's validated section of params.yaml as a fresh dict (defaults filled in)."""
    return load_params(path)[stage]


def load_config(name: str, path: str | Path | None = None) -> Any:
    """A vocabulary file from configs/ as plain data, e.g. ``load_config("taxonomy")`` (a fresh copy),
    validated by its model in :mod:`pipeline.config_files` (absent keys filled in)."""
    from pipeline.config_files import load_config_file

    return load_config_file(name, path).model_dump()
