"""Term vocabularies from configs/: stop words, compounds, aliases, prefixes."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.settings import default


def nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s)


def match_key(s: str) -> str:
    """Space-free NFKC form: how compound-list entries are matched against token surfaces."""
    return re.sub(r"\s+", "", nfkc(s))


@dataclass(frozen=True)
class TermVocab:
    """What :class:`~pipeline.parse.terms.ContentTerms` needs from configs/: stop words, compounds, prefixes."""

    stopwords: frozenset[str] = frozenset()
    compounds: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    #: the word lists' one home is configs/compounds.yaml (:func:`load_vocab`); bare, there are none
    drop_prefixes: frozenset[str] = frozenset()
    break_suffixes: frozenset[str] = frozenset()
    max_parts: int = default("parse.max_compound_parts")  # params.yaml parse.max_compound_parts

    @property
    def match_table(self) -> dict[str, str]:
        """Space-free NFKC key -> canonical term, for compounds and aliases."""
        table = {match_key(c): self.aliases.get(c, c) for c in self.compounds}
        table.update({match_key(a): c for a, c in self.aliases.items()})
        return table


def load_vocab(stopwords_path: str | Path | None = None, compounds_path: str | Path | None = None,
               max_parts: int = default("parse.max_compound_parts")) -> TermVocab:
    """Read ``configs/stopwords.yaml`` (the shared loader, :func:`pipeline.vocab.load_stopwords`) and
    ``configs/compounds.yaml`` (or the given files; validated, :class:`pipeline.config_files.CompoundsFile`);
    ``max_parts`` is params.yaml ``parse.max_compound_parts``."""
    from pipeline.config_files import load_config_file
    from pipeline.vocab import load_stopwords

    stop = load_stopwords(stopwords_path)
    cp = load_config_file("compounds", compounds_path)
    # longest first; ties in a fixed order (set order varies with PYTHONHASHSEED, which made the
    # parse cache key -- and so every re-run -- differ between processes)
    compounds = tuple(sorted({nfkc(c) for c in cp.compounds}, key=lambda c: (-len(c), c)))
    aliases = {nfkc(k): nfkc(v) for k, v in cp.aliases.items()}
    return TermVocab(stopwords=stop, compounds=compounds, aliases=aliases, max_parts=int(max_parts),
                     drop_prefixes=frozenset(map(nfkc, cp.drop_prefixes)),
                     break_suffixes=frozenset(map(nfkc, cp.break_suffixes)))
