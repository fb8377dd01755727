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

from pipeline.config_files import load_config_file


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def load_stopwords(path: str | Path | None = None, extra: Iterable[str] = ()) -> frozenset[str]:
    """Every list in ``configs/stopwords.yaml`` (or ``path``) plus ``extra``, NFKC-normalised."""
    lists = load_config_file("stopwords", path).root
    return frozenset(nfkc(w) for w in [*(w for words in lists.values() for w in words), *map(str, extra)])


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
    """``configs/roles.yaml`` (or ``path``), validated (:class:`pipeline.config_files.RolesFile`)."""
    f = load_config_file("roles", path)
    return RoleVocabulary(roles=dict(f.roles), officials=tuple(f.officials), honorifics=tuple(f.honorifics),
                          other=tuple(f.other))


def person_suffixes(path: str | Path | None = None) -> tuple[str, ...]:
    """All words that follow a person's name (roles, official titles, honorifics), longest first."""
    return role_vocabulary(path).person_suffixes
