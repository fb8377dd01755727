"""The taxonomy as the classifier reads it: :mod:`pipeline.taxonomy` with every rule compiled."""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.taxonomy import Taxonomy, Theme, default_taxonomy_path

__all__ = ["Taxonomy", "Theme", "default_taxonomy_path", "load_taxonomy"]


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """:func:`pipeline.taxonomy.load_taxonomy`, then compile every cue, coding rule and the scope
    so a typo fails here, naming the file."""
    from pipeline import taxonomy
    from pipeline.classify.rules import RuleSyntaxError, compile_rule

    tax = taxonomy.load_taxonomy(path)
    specs = [(f"theme {tid}", expr) for tid, expr in tax.rule_specs()]
    specs += [(key, expr) for key, expr in (("scope", tax.scope), ("scope_in_sentence", tax.scope_in_sentence)) if expr]
    for where, expr in specs:
        try:
            compile_rule(expr)
        except RuleSyntaxError as exc:
            raise PipelineError(tax.source, f"{where}: bad rule {expr!r}: {exc}") from exc
    return tax
