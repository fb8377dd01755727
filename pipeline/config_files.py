"""Typed models of the vocabulary files in configs/: stopwords, roles, compounds, taxonomy.

Like params.yaml (:mod:`pipeline.settings`), each file is validated on load: an unknown or
misspelled key, or a value of the wrong type, is a one-line :class:`~pipeline.config.ConfigError`
naming the key and the file (exit 2 from the CLI). The files hold vocabularies (what words mean);
numeric knobs live in params.yaml, so a value has one home: a key that moved there is rejected
with a pointer to its new place (:data:`MOVED`).

Readers: :mod:`pipeline.vocab` (stopwords, roles), :mod:`pipeline.parse.vocab` (compounds),
:mod:`pipeline.taxonomy` (taxonomy).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, ValidationError

__all__ = ["error_line", "load_config_file", "StopwordsFile", "RolesFile", "CompoundsFile", "TaxonomyFile",
           "ThemeEntry", "MOVED"]


def error_line(exc: ValidationError, prefix: str = "") -> str:
    """The first validation error as one line: ``unknown key 'a.b'`` or ``a.b: problem (got ...)``."""
    err = exc.errors()[0]
    key = ".".join(str(x) for x in (*([prefix] if prefix else []), *err["loc"]))
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if err["type"] == "extra_forbidden":
        return f"unknown key {key!r}{more}"
    got = repr(err.get("input"))
    got = got if len(got) <= 80 else got[:77] + "..."
    return f"{key}: {err['msg']} (got {got}){more}"


def _word(v: Any) -> Any:
    """YAML reads ``5`` or ``1.0`` as numbers; a vocabulary entry is text (a bool stays an error)."""
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


Word = Annotated[str, BeforeValidator(_word)]
#: a string, or ``null`` for empty
Text = Annotated[str, BeforeValidator(lambda v: "" if v is None else _word(v))]
#: a list of words; ``null`` or an absent key is empty, a single word is a one-item list
Words = Annotated[list[Word], BeforeValidator(lambda v: [] if v is None else [v] if isinstance(v, str) else v)]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StopwordsFile(RootModel[dict[str, Words]]):
    """``configs/stopwords.yaml``: named lists of stop words (the names group them for the reader)."""


class RolesFile(_File):
    """``configs/roles.yaml``: the words that follow a person's name."""

    roles: dict[Word, Word] = Field(default_factory=dict, description="speaker-label suffix -> speaker_role")
    officials: Words = Field(default_factory=list, description="executive titles (speaker_role 説明員)")
    honorifics: Words = Field(default_factory=list)
    other: Words = Field(default_factory=list, description="other words after a name in running text")


class CompoundsFile(_File):
    """``configs/compounds.yaml``: what the parse stage keeps whole in a content term."""

    compounds: Words = Field(default_factory=list, description="terms always kept whole")
    aliases: dict[Word, Word] = Field(default_factory=dict, description="spelling variant -> canonical term")
    drop_prefixes: Words = Field(default_factory=list, description="prefixes that are not part of a term")
    break_suffixes: Words = Field(default_factory=list, description="noun suffixes that end a term")


class ThemeEntry(_File):
    """One theme of ``configs/taxonomy.yaml``. Absent flags take the :class:`pipeline.taxonomy.Theme` defaults."""

    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="the contract: letters, digits, _")
    ja: Text = Field("", description="Japanese name (the report label)")
    en: Text = ""
    definition: Text = ""
    notes: Text = ""
    cues: Words = Field(default_factory=list, description="atomic rules used as classifier features")
    rules: Words = Field(default_factory=list, description="coding-rule expressions (AND/OR/NOT, near())")
    prototypes: Words = Field(default_factory=list, description="plain example sentences from the definition")
    exclusive: bool | None = Field(None, description="dropped when another theme is assigned "
                                                     "(absent: the Theme default)")
    requires_scope: bool | None = Field(None, description="assigned only within the taxonomy scope "
                                                          "(absent: the Theme default)")
    scope_window: int | None = Field(None, ge=0, description="this theme's sentences either side for scope "
                                                             "(absent: the taxonomy's scope_window)")


class TaxonomyFile(_File):
    """``configs/taxonomy.yaml``: the policy themes (IDs are a contract), their definitions and cue rules.

    ``labelling_unit`` and ``multi_label`` document what the classifier does (one sentence, any
    number of themes); they are checked, not choices: another value fails instead of being ignored.
    """

    name: Text = Field("", description="shown in reports (absent: the file name)")
    labelling_unit: Literal["sentence"] = Field("sentence", description="documented: a label applies to a sentence")
    multi_label: Literal[True] = Field(True, description="documented: a sentence may carry several themes")
    scope: Text = Field("", description="rule naming the council's domain; themes with requires_scope are "
                                        "assigned only near a match ('' = no gate)")
    scope_window: int | None = Field(None, ge=0, description="sentences either side for scope "
                                                             "(absent: the Taxonomy dataclass default)")
    scope_in_sentence: Text = Field("", description="rule that gives the scope to its own sentence only, not "
                                                    "to neighbours ('' = none; no gate without scope)")
    themes: list[ThemeEntry] = Field(min_length=1, description="one entry per theme")
    boundary_notes: Words = Field(default_factory=list, description="how to tell neighbouring themes apart")


FILES: dict[str, type[BaseModel]] = {"stopwords": StopwordsFile, "roles": RolesFile, "compounds": CompoundsFile,
                                     "taxonomy": TaxonomyFile}

#: (file, key) that moved to params.yaml: one home per value
MOVED: dict[tuple[str, str], str] = {("compounds", "max_parts"): "params.yaml parse.max_compound_parts"}


def load_config_file(name: str, path: str | Path | None = None) -> Any:
    """``configs/<name>.yaml`` (or ``path``) validated against its model; one-line ConfigError."""
    from pipeline.config import CONFIGS, ConfigError, load_yaml

    p = Path(path) if path else CONFIGS / f"{name}.yaml"
    data = load_yaml(p)
    if not isinstance(data, dict):
        raise ConfigError(p, f"expected a YAML mapping, got {type(data).__name__}")
    for (file, key), home in MOVED.items():
        if file == name and key in data:
            raise ConfigError(p, f"key {key!r} is no longer read here: set {home}")
    try:
        return FILES[name].model_validate(data)
    except ValidationError as exc:
        raise ConfigError(p, error_line(exc)) from None
