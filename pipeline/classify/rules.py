"""KH Coder-style coding rules over a sentence's lemmas/terms and its surface text.

Syntax (case-insensitive operators; parentheses group)::

    老朽化                        a cue: matches a content term equal to / containing it,
                                  or the NFKC-normalised surface text containing it
    "ケーブル テレビ"              quoted cue (may contain spaces)
    /光ファイバー?/                regular expression on the surface text
    a AND b     a & b             both
    a OR b      a | b             either
    NOT a       !a                negation;  ``a NOT b`` means ``a AND NOT b``
    near(a, b, 5)                 a and b within 5 content terms of each other
                                  (within 5*3 characters of surface text when one
                                  of them is not a parse term)
    seq(a, b, 5)                  like near, but a before b

ASCII cues (``AI``, ``IX``, ``5G``) only match as whole words, so ``AI`` does not
fire inside ``MAIL``. A rule hit is a *feature* (and evidence) for the model, not the
decision.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field


class RuleSyntaxError(ValueError):
    pass


def normalize(text: str) -> str:
    """NFKC + lower-case: full-width ``ＡＩ`` and ``ai`` both become ``ai``."""
    return unicodedata.normalize("NFKC", str(text or "")).lower()


@dataclass
class Doc:
    """What a rule sees: normalised surface text and content terms (in order)."""

    text: str
    terms: list[str]
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def joined(self) -> str:
        j = self.cache.get("__joined__")
        if j is None:
            j = self.cache["__joined__"] = "\x00".join(self.terms)
        return j

    @classmethod
    def make(cls, text: str, terms: Sequence[str] | None = None) -> Doc:
        return cls(normalize(text), [normalize(t) for t in (terms or []) if t])


_ASCII_WORD = re.compile(r"^[0-9a-z][0-9a-z .\-]*$")


class Node:
    def eval(self, doc: Doc) -> tuple[bool, list[str]]:  # pragma: no cover - interface
        raise NotImplementedError


class Atom(Node):
    def __init__(self, cue: str, regex: bool = False):
        self.raw = cue
        self.regex = regex
        self.cue = cue if regex else normalize(cue)
        if regex:
            self.pattern = re.compile(cue)
        elif _ASCII_WORD.match(self.cue):
            self.pattern = re.compile(r"(?<![0-9a-z])" + re.escape(self.cue) + r"(?![0-9a-z])")
        else:
            self.pattern = None

    def _surface_positions(self, doc: Doc) -> list[int]:
        if self.pattern is not None:
            return [m.start() for m in self.pattern.finditer(doc.text)]
        out, start = [], 0
        while True:
            i = doc.text.find(self.cue, start)
            if i < 0:
                return out
            out.append(i)
            start = i + 1

    def term_positions(self, doc: Doc) -> list[int]:
        if self.regex:
            return [i for i, t in enumerate(doc.terms) if self.pattern.search(t)]
        if self.pattern is not None:
            return [i for i, t in enumerate(doc.terms) if self.pattern.search(t)]
        return [i for i, t in enumerate(doc.terms) if self.cue in t]

    def positions(self, doc: Doc) -> tuple[list[int], list[int]]:
        return self.term_positions(doc), self._surface_positions(doc)

    def hit(self, doc: Doc) -> bool:
        cache = doc.cache
        key = (self.cue, self.regex)
        if key in cache:
            return cache[key]
        if self.pattern is None:
            ok = self.cue in doc.text or self.cue in doc.joined
        else:
            ok = bool(self.pattern.search(doc.text)) or any(self.pattern.search(t) for t in doc.terms)
        cache[key] = ok
        return ok

    def eval(self, doc: Doc) -> tuple[bool, list[str]]:
        hit = self.hit(doc)
        return hit, ([self.raw] if hit else [])

    def __repr__(self) -> str:
        return f"Atom({self.raw!r})"


class And(Node):
    def __init__(self, parts: list[Node]):
        self.parts = parts

    def eval(self, doc):
        ev: list[str] = []
        for p in self.parts:
            ok, e = p.eval(doc)
            if not ok:
                return False, []
            ev += e
        return True, ev


class Or(Node):
    def __init__(self, parts: list[Node]):
        self.parts = parts

    def eval(self, doc):
        ev: list[str] = []
        hit = False
        for p in self.parts:
            ok, e = p.eval(doc)
            if ok:
                hit = True
                ev += e
        return hit, ev


class Not(Node):
    def __init__(self, part: Node):
        self.part = part

    def eval(self, doc):
        ok, _ = self.part.eval(doc)
        return (not ok), []


class Near(Node):
    def __init__(self, a: Atom, b: Atom, n: int, ordered: bool = False):
        self.a, self.b, self.n, self.ordered = a, b, n, ordered

    def _close(self, pa: list[int], pb: list[int], n: int) -> bool:
        for i in pa:
            for j in pb:
                d = j - i
                if (0 < d <= n) if self.ordered else (0 < abs(d) <= n or (d == 0 and i != j)):
                    return True
        return False

    def eval(self, doc):
        if not (self.a.hit(doc) and self.b.hit(doc)):
            return False, []
        ta, sa = self.a.positions(doc)
        tb, sb = self.b.positions(doc)
        ok = False
        if ta and tb:
            ok = self._close(ta, tb, self.n)
        if not ok and sa and sb:
            # surface fallback: start positions within n*3 characters (plus the first cue's length)
            lim = self.n * 3
            for i in sa:
                for j in sb:
                    if self.ordered:
                        ok = i < j <= i + len(self.a.cue) + lim
                    else:
                        first = self.a.cue if i <= j else self.b.cue
                        ok = abs(j - i) <= len(first) + lim and not (i == j and self.a.cue == self.b.cue)
                    if ok:
                        break
                if ok:
                    break
        return ok, ([self.a.raw, self.b.raw] if ok else [])


# ---------------------------------------------------------------- parser
_TOKEN = re.compile(r'\s*(?:(\()|(\))|(,)|("([^"]*)")|(/((?:\\/|[^/])+)/)|([^\s(),"]+))')
_OPS = {"and": "AND", "&": "AND", "&&": "AND", "or": "OR", "|": "OR", "||": "OR", "not": "NOT", "!": "NOT"}


def _tokenize(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise RuleSyntaxError(f"cannot read {expr[pos:]!r}")
        pos = m.end()
        if m.group(1):
            out.append(("(", "("))
        elif m.group(2):
            out.append((")", ")"))
        elif m.group(3):
            out.append((",", ","))
        elif m.group(4) is not None:
            out.append(("CUE", m.group(5)))
        elif m.group(6):
            out.append(("RE", m.group(7).replace("\\/", "/")))
        else:
            word = m.group(8)
            if word.lower() in _OPS:
                out.append((_OPS[word.lower()], word))
            elif word.startswith("!") and len(word) > 1:
                out += [("NOT", "!"), ("CUE", word[1:])]
            else:
                out.append(("CUE", word))
    return out


class _Parser:
    def __init__(self, tokens):
        self.toks = tokens
        self.i = 0

    def peek(self):
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def take(self, kind=None):
        if self.i >= len(self.toks):
            raise RuleSyntaxError("unexpected end of rule")
        tok = self.toks[self.i]
        if kind and tok[0] != kind:
            raise RuleSyntaxError(f"expected {kind}, got {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_expr()
        if self.i != len(self.toks):
            raise RuleSyntaxError(f"unexpected {self.toks[self.i][1]!r}")
        return node

    def or_expr(self):
        parts = [self.and_expr()]
        while self.peek() == "OR":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(parts)

    def and_expr(self):
        parts = [self.unary()]
        while self.peek() in ("AND", "NOT"):
            if self.peek() == "AND":
                self.take()
                parts.append(self.unary())
            else:  # `a NOT b` = a AND NOT b
                self.take()
                parts.append(Not(self.unary()))
        return parts[0] if len(parts) == 1 else And(parts)

    def unary(self):
        if self.peek() == "NOT":
            self.take()
            return Not(self.unary())
        return self.primary()

    def atom(self) -> Atom:
        kind, val = self.take()
        if kind == "CUE":
            return Atom(val)
        if kind == "RE":
            try:
                return Atom(val, regex=True)
            except re.error as exc:
                raise RuleSyntaxError(f"bad regex /{val}/: {exc}") from exc
        raise RuleSyntaxError(f"expected a cue, got {val!r}")

    def primary(self):
        kind = self.peek()
        if kind == "(":
            self.take()
            node = self.or_expr()
            self.take(")")
            return node
        if kind == "CUE" and self.toks[self.i][1].lower() in ("near", "seq") and \
                self.i + 1 < len(self.toks) and self.toks[self.i + 1][0] == "(":
            fn = self.take()[1].lower()
            self.take("(")
            a = self.atom()
            self.take(",")
            b = self.atom()
            n = 5
            if self.peek() == ",":
                self.take()
                num = self.take("CUE")[1]
                if not num.isdigit():
                    raise RuleSyntaxError(f"{fn}(): distance must be an integer, got {num!r}")
                n = int(num)
            self.take(")")
            return Near(a, b, n, ordered=(fn == "seq"))
        if kind in ("CUE", "RE"):
            return self.atom()
        raise RuleSyntaxError(f"unexpected {self.toks[self.i][1]!r}" if kind else "empty rule")


def compile_rule(expr: str) -> Node:
    toks = _tokenize(str(expr))
    if not toks:
        raise RuleSyntaxError("empty rule")
    return _Parser(toks).parse()


#: (rule set, text, terms) -> matches; cross-validation re-scores the same sentences many times
_HIT_CACHE: dict = {}


class RuleSet:
    """Compiled (theme_id, expression) rules; ``hits`` gives a binary matrix + evidence."""

    def __init__(self, specs: Sequence[tuple[str, str]]):
        self.specs = list(specs)
        self.nodes = [compile_rule(e) for _, e in self.specs]
        self._key = hash(tuple(self.specs))

    def __len__(self) -> int:
        return len(self.specs)

    def match_doc(self, doc: Doc) -> list[tuple[int, list[str]]]:
        out = []
        for k, node in enumerate(self.nodes):
            ok, ev = node.eval(doc)
            if ok:
                out.append((k, ev))
        return out

    def hits(self, texts: Sequence[str], terms: Sequence[Sequence[str]] | None = None):
        """(scipy CSR [n, n_rules] of 0/1, list of {theme_id: [evidence, ...]} per text)."""
        import numpy as np
        from scipy import sparse

        rows, cols = [], []
        evidence: list[dict[str, list[str]]] = []
        for i, text in enumerate(texts):
            tt = tuple(terms[i]) if terms is not None and terms[i] is not None else ()
            ck = (getattr(self, "_key", None), text, tt)
            matches = _HIT_CACHE.get(ck)
            if matches is None:
                matches = self.match_doc(Doc.make(text, tt))
                if len(_HIT_CACHE) > 100_000:
                    _HIT_CACHE.clear()
                _HIT_CACHE[ck] = matches
            ev: dict[str, list[str]] = {}
            for k, e in matches:
                rows.append(i)
                cols.append(k)
                tid = self.specs[k][0]
                bucket = ev.setdefault(tid, [])
                for x in e or [self.specs[k][1]]:
                    if x not in bucket:
                        bucket.append(x)
            evidence.append(ev)
        data = np.ones(len(rows), dtype=np.float32)
        mat = sparse.csr_matrix((data, (rows, cols)), shape=(len(texts), len(self.specs)), dtype=np.float32)
        return mat, evidence
