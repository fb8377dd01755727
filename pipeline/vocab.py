"""Vocabularies from configs/ shared by several stages: stop words and the words that follow a
person's name. One loader each, so ingest, parse and topics cannot drift apart.

* :func:`load_stopwords` -- every list in ``configs/stopwords.yaml``, NFKC-normalised.
* :func:`role_vocabulary` -- ``configs/roles.yaml``: role suffixes of speaker labels
  (-> canonical role), official titles, honorifics; :func:`person_suffixes` is their union.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def _mapping(name: str, path: str | Path | None) -> tuple[Path, dict[str, Any]]:
    from pipeline.config import CONFIGS, load_config

    p = Path(path) if path else CONFIGS / f"{name}.yaml"
    data = load_config(name, p)
    if not isinstance(data, dict):
        raise PipelineError(p, "expected a YAML mapping")
    return p, data


def _words(value: Any, path: Path, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise PipelineError(path, f"{key} must be a list of words")
    return [str(v) for v in value]


def load_stopwords(path: str | Path | None = None, extra: Iterable[str] = ()) -> frozenset[str]:
    """Every list in ``configs/stopwords.yaml`` (or ``path``) plus ``extra``, NFKC-normalised."""
    p, data = _mapping("stopwords", path)
    words = [w for key, v in data.items() for w in _words(v, p, key)]
    return frozenset(nfkc(w) for w in [*words, *map(str, extra)])


@dataclass(frozen=True)
class RoleVocabulary:
    """configs/roles.yaml: what follows a person's name."""

    roles: dict[str, str]              # suffix of a speaker label -> canonical speaker_role
    officials: tuple[str, ...]         # executive titles (speaker_role 説明員)
    honorifics: tuple[str, ...]
    other: tuple[str, ...] = ()

    @property
    def person_suffixes(self) -> tuple[str, ...]:
        """Every word that follows a name, longest first (for suffix regexes and matching)."""
        words = {*self.roles, *self.officials, *self.honorifics, *self.other}
        return tuple(sorted(words, key=lambda w: (-len(w), w)))


def role_vocabulary(path: str | Path | None = None) -> RoleVocabulary:
    p, data = _mapping("roles", path)
    roles = data.get("roles") or {}
    if not isinstance(roles, dict):
        raise PipelineError(p, "roles must map a suffix to a role")
    return RoleVocabulary(roles={str(k): str(v) for k, v in roles.items()},
                          officials=tuple(_words(data.get("officials"), p, "officials")),
                          honorifics=tuple(_words(data.get("honorifics"), p, "honorifics")),
                          other=tuple(_words(data.get("other"), p, "other")))


def person_suffixes(path: str | Path | None = None) -> tuple[str, ...]:
    """All words that follow a person's name (roles, official titles, honorifics), longest first."""
    return role_vocabulary(path).person_suffixes
