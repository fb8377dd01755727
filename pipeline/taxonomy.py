"""Taxonomy as configuration: ``configs/taxonomy.yaml`` (IDs, names, definitions, cue rules).

The one model of the taxonomy (:class:`Theme`, :class:`Taxonomy`) and its reader, shared by
classify and report. Nothing about the default categories is hard-coded: swap the YAML
for another council's categories and rerun ``dvc repro``. The rule expressions are
compiled (and a typo reported) by :func:`pipeline.classify.taxonomy.load_taxonomy`, which
owns the rule language.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


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
    #: sentences either side in which the scope rule must match for this theme (None: the
    #: taxonomy's ``scope_window``)
    scope_window: int | None = None

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
    #: rule whose match gives the scope to its own sentence only, never to neighbours (words that
    #: name a digital angle when the sentence itself is about them: システム in a neighbour is as
    #: often 社会システム or 交通システム)
    scope_in_sentence: str = ""

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


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read a taxonomy YAML, validated against :class:`pipeline.config_files.TaxonomyFile` (an unknown
    key or a wrong type is a one-line error naming the key and the file)."""
    from pipeline.config_files import load_config_file

    path = Path(path) if path is not None else default_taxonomy_path()
    f = load_config_file("taxonomy", path)
    themes: list[Theme] = []
    seen: set[str] = set()
    for raw in f.themes:
        if raw.id in seen:
            raise PipelineError(path, f"duplicate theme id {raw.id!r}")
        seen.add(raw.id)
        themes.append(Theme(
            id=raw.id, ja=raw.ja, en=raw.en,
            definition=" ".join(raw.definition.split()), notes=" ".join(raw.notes.split()),
            cues=tuple(raw.cues), rules=tuple(raw.rules), prototypes=tuple(raw.prototypes),
            # absent flags take the Theme defaults (declared once, on the dataclass)
            **{k: v for k in ("exclusive", "requires_scope", "scope_window") if (v := getattr(raw, k)) is not None},
        ))
    return Taxonomy(name=f.name or path.stem, themes=tuple(themes), source=str(path),
                    boundary_notes=tuple(f.boundary_notes), scope=" ".join(f.scope.split()),
                    scope_in_sentence=" ".join(f.scope_in_sentence.split()),
                    **({"scope_window": f.scope_window} if f.scope_window is not None else {}))
