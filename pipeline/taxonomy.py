"""Taxonomy as configuration: ``configs/taxonomy.yaml`` (IDs, names, definitions, cue rules).

The one model of the taxonomy (:class:`Theme`, :class:`Taxonomy`) and its reader, shared by
classify and report. Nothing about the default categories is hard-coded: swap the YAML
for another council's categories and rerun ``dvc repro``. The rule expressions are
compiled (and a typo reported) by :func:`pipeline.classify.taxonomy.load_taxonomy`, which
owns the rule language.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Theme:
    id: str
    ja: str = ""
    en: str = ""
    definition: str = ""
    notes: str = ""
    cues: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    #: plain-wording example sentences written from the definition: embedded and used as
    #: extra training rows and as the definition-similarity prior (see ThemeClassifier)
    prototypes: tuple[str, ...] = ()
    #: exclusive themes (e.g. procedural) are dropped when any other theme is assigned
    exclusive: bool = False
    #: only assigned in text within the taxonomy's ``scope`` (when the taxonomy defines one)
    requires_scope: bool = True

    @property
    def label(self) -> str:
        """Name shown in reports: Japanese, else the ID."""
        return self.ja or self.id


@dataclass(frozen=True)
class Taxonomy:
    name: str
    themes: tuple[Theme, ...]
    source: str = ""
    boundary_notes: tuple[str, ...] = field(default_factory=tuple)
    #: rule naming the council's domain (e.g. digital / ICT); themes with requires_scope are
    #: only assigned when it matches the sentence or a neighbour within ``scope_window``
    scope: str = ""
    scope_window: int = 2

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.themes]

    def theme(self, theme_id: str) -> Theme:
        for t in self.themes:
            if t.id == theme_id:
                return t
        raise KeyError(theme_id)

    def rule_specs(self, include_rules: bool = True) -> list[tuple[str, str]]:
        """(theme_id, expression) for every cue (an atomic rule) and every coding rule."""
        out: list[tuple[str, str]] = []
        for t in self.themes:
            seen: set[str] = set()
            for expr in list(t.cues) + (list(t.rules) if include_rules else []):
                if expr not in seen:
                    seen.add(expr)
                    out.append((t.id, expr))
        return out

    def prototype_texts(self) -> list[tuple[str, str]]:
        """(theme_id, text) for every definition prototype; the theme's Japanese name and
        definition count as prototypes too, so a taxonomy without examples still has one."""
        out: list[tuple[str, str]] = []
        for t in self.themes:
            for text in ([t.ja] if t.ja else []) + list(t.prototypes):
                out.append((t.id, text))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "themes": [t.__dict__.copy() for t in self.themes],
            "boundary_notes": list(self.boundary_notes),
        }


def default_taxonomy_path() -> Path:
    from pipeline.config import CONFIGS

    return CONFIGS / "taxonomy.yaml"


def _strs(value: Any, path: Path, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise PipelineError(path, f"{where} must be a list of strings")
    return tuple(str(v) for v in value)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read and validate a taxonomy YAML; errors name the file and the problem."""
    import yaml

    path = Path(path) if path is not None else default_taxonomy_path()
    if not path.exists():
        raise PipelineError(path, "taxonomy file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PipelineError(path, f"invalid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("themes"), list) or not data["themes"]:
        raise PipelineError(path, "expected a mapping with a non-empty `themes:` list")
    themes: list[Theme] = []
    seen: set[str] = set()
    for i, raw in enumerate(data["themes"]):
        if not isinstance(raw, dict) or "id" not in raw:
            raise PipelineError(path, f"themes[{i}] needs an `id`")
        tid = str(raw["id"])
        if not _ID.match(tid):
            raise PipelineError(path, f"themes[{i}]: invalid id {tid!r} (letters, digits, _)")
        if tid in seen:
            raise PipelineError(path, f"duplicate theme id {tid!r}")
        seen.add(tid)
        themes.append(Theme(
            id=tid,
            ja=str(raw.get("ja") or ""),
            en=str(raw.get("en") or ""),
            definition=" ".join(str(raw.get("definition") or "").split()),
            notes=" ".join(str(raw.get("notes") or "").split()),
            cues=_strs(raw.get("cues"), path, f"themes[{tid}].cues"),
            rules=_strs(raw.get("rules"), path, f"themes[{tid}].rules"),
            prototypes=_strs(raw.get("prototypes"), path, f"themes[{tid}].prototypes"),
            # absent flags take the Theme defaults (declared once, on the dataclass)
            **{k: bool(raw[k]) for k in ("exclusive", "requires_scope") if k in raw},
        ))
    tax = Taxonomy(name=str(data.get("name") or path.stem), themes=tuple(themes), source=str(path),
                   boundary_notes=_strs(data.get("boundary_notes"), path, "boundary_notes"),
                   scope=" ".join(str(data.get("scope") or "").split()),
                   **({"scope_window": int(data["scope_window"])} if "scope_window" in data else {}))
    return tax
