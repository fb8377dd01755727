"""Term vocabularies from configs/: stop words, compounds, aliases, prefixes."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineError
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
    drop_prefixes: frozenset[str] = frozenset({"御", "お", "ご", "本", "当", "同", "各", "計", "約", "第"})
    break_suffixes: frozenset[str] = frozenset({"なり", "とも"})
    max_parts: int = default("parse.max_compound_parts")  # compounds.yaml max_parts overrides it

    @property
    def match_table(self) -> dict[str, str]:
        """Space-free NFKC key -> canonical term, for compounds and aliases."""
        table = {match_key(c): self.aliases.get(c, c) for c in self.compounds}
        table.update({match_key(a): c for a, c in self.aliases.items()})
        return table


def load_vocab(stopwords_path: str | Path | None = None, compounds_path: str | Path | None = None,
               max_parts: int = default("parse.max_compound_parts")) -> TermVocab:
    """Read ``configs/stopwords.yaml`` (the shared loader, :func:`pipeline.vocab.load_stopwords`) and
    ``configs/compounds.yaml`` (or the given files)."""
    from pipeline.config import CONFIGS, ConfigError, load_config
    from pipeline.vocab import load_stopwords

    def _load(name, path):
        p = Path(path) if path else CONFIGS / f"{name}.yaml"
        try:
            data = load_config(name, p)
        except ConfigError as exc:
            raise PipelineError(p, str(exc).split(": ", 1)[-1]) from exc
        if not isinstance(data, dict):
            raise PipelineError(p, "expected a YAML mapping")
        return data

    stop = load_stopwords(stopwords_path)
    cp = _load("compounds", compounds_path)
    # longest first; ties in a fixed order (set order varies with PYTHONHASHSEED, which made the
    # parse cache key -- and so every re-run -- differ between processes)
    compounds = tuple(sorted({nfkc(str(c)) for c in (cp.get("compounds") or [])}, key=lambda c: (-len(c), c)))
    aliases = {nfkc(str(k)): nfkc(str(v)) for k, v in (cp.get("aliases") or {}).items()}
    kw = {}
    for name in ("drop_prefixes", "break_suffixes"):
        if cp.get(name) is not None:
            kw[name] = frozenset(nfkc(str(p)) for p in cp[name])
    return TermVocab(stopwords=stop, compounds=compounds, aliases=aliases,
                     max_parts=int(cp.get("max_parts", max_parts)), **kw)
