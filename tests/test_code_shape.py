"""Code shape (issue #16): no module in pipeline/ over 500 lines, no function over 80 lines.

Read with ast, nothing imported. ``PENDING`` names what is being split right now; it may
only shrink: an entry that no longer offends is reported so it gets removed.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

#: offenders being split in parallel work on issue #16 (remove an entry when its split lands)
PENDING: set[str] = set()


def offenders() -> set[str]:
    out = set()
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        src = path.read_text(encoding="utf-8")
        if len(src.splitlines()) > MAX_MODULE_LINES:
            out.add(rel)
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    out.add(f"{rel}::{node.name}")
    return out


def test_no_long_modules_or_functions():
    found = offenders()
    new = sorted(found - PENDING)
    assert not new, f"over {MAX_MODULE_LINES} lines (module) / {MAX_FUNCTION_LINES} lines (function): {new}"


def test_pending_list_only_names_current_offenders():
    stale = sorted(PENDING - offenders())
    assert not stale, f"no longer too long, remove from PENDING: {stale}"


def test_cli_handlers_share_one_naming_pattern():
    """Every subcommand's handler is ``run_<command>_cli`` (one pattern for stage entry points)."""
    from pipeline.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = []
    for cmd, p in sub.choices.items():
        nested = [a for a in p._actions if a.dest == "command" or getattr(a, "choices", None) and
                  isinstance(a.choices, dict)]
        handlers = ([(f"{cmd}_{c}", q.get_default("func")) for c, q in nested[0].choices.items()] if nested
                    else [(cmd, p.get_default("func"))])
        for name, func in handlers:
            qual = getattr(func, "__name__", "")
            if qual == "run":  # classify's lazy wrapper: the name it resolves is in its closure
                qual = func.__closure__[0].cell_contents
            names.append((name, qual))
    bad = [(c, q) for c, q in names if q != f"run_{c.replace('-', '_')}_cli"]
    assert not bad, bad
