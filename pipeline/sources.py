"""What a stage's results depend on: its project modules (static import graph) and library versions.

Used for the per-partition cache keys (:func:`code_digest`) and by the
contract test that ``dvc.yaml`` lists every project module a stage imports. The graph is
read from the source with :mod:`ast` (every ``import`` statement, also those inside
functions), so nothing is imported and heavy libraries are never loaded.

* :func:`stage_modules` -- the stage's whole package (``pipeline/parse/`` or
  ``pipeline/embed.py``) plus every ``pipeline.*`` module it imports, transitively.
* :func:`library_versions` -- installed versions of the third-party distributions
  those modules import, plus any named explicitly (models loaded by name, such as
  ``ja_ginza``, and data packages such as ``SudachiDict-core`` that no module imports).
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import os
import sys
from collections.abc import Callable, Hashable, Iterable
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGE = "pipeline"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(name: str, base: Path = PACKAGE_DIR) -> Path | None:
    """Source file of project module ``name`` (``pipeline.x.y``), or None if it is not one."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    p = base.joinpath(*parts[1:])
    for cand in (p.with_suffix(".py"), p / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def module_name(path: Path, base: Path = PACKAGE_DIR) -> str:
    rel = path.resolve().relative_to(base).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=512)
def _imports(path: str, mtime_ns: int) -> tuple[frozenset[str], frozenset[str]]:
    """(candidate project module names, third-party top-level names) imported by one file."""
    p = Path(path)
    tree = ast.parse(p.read_text(encoding="utf-8"), filename=path)
    try:
        me = module_name(p)
    except ValueError:  # a file outside pipeline/ (a test module): relative imports resolve to nothing
        me = p.stem
    pkg = me if p.name == "__init__.py" else me.rpartition(".")[0]
    project, other = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            top = n.split(".")[0]
            if top == PACKAGE:
                project.add(n)
            elif top and top != "__future__" and top not in sys.stdlib_module_names:
                other.add(top)
    return frozenset(project), frozenset(other)


def imports_of(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    return _imports(str(path), path.stat().st_mtime_ns)


def package_files(name: str) -> list[Path]:
    """Every source file of the stage package ``pipeline.x`` (one file if it is a module)."""
    f = module_file(name)
    if f is None:
        return []
    return sorted(f.parent.rglob("*.py")) if f.name == "__init__.py" else [f]


def stage_package(module: str) -> str:
    """``pipeline.parse.terms`` -> ``pipeline.parse``; ``pipeline.embed`` -> itself."""
    return ".".join(module.split(".")[:2])


def closure(files: Iterable[Path]) -> tuple[dict[str, Path], set[str]]:
    """Project modules reachable by imports from ``files`` (with their parent packages' ``__init__``),
    and the third-party top-level names they import."""
    todo = [Path(f).resolve() for f in files]
    seen: dict[str, Path] = {}
    third: set[str] = set()
    while todo:
        f = todo.pop()
        try:
            name = module_name(f)
        except ValueError:  # not under pipeline/ (e.g. a test module defining the function)
            name = str(f)
        if name in seen:
            continue
        seen[name] = f
        project, other = imports_of(f)
        third |= other
        for cand in project:
            parts = cand.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                mf = module_file(".".join(parts[:i]))
                if mf is not None and module_name(mf) not in seen:
                    todo.append(mf)
    return dict(sorted(seen.items())), third


def stage_modules(module: str) -> dict[str, Path]:
    """The stage package of ``module`` and every project module it imports (name -> file)."""
    return closure(package_files(stage_package(module)) or [module_file(module)])[0]


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def library_versions(import_names: Iterable[str] = (), distributions: Iterable[str] = ()) -> dict[str, str]:
    """``{distribution: version}`` for top-level import names and distribution names ("absent" if missing)."""
    out: dict[str, str] = {}
    dists = set(distributions)
    for n in import_names:
        dists |= set(_distributions().get(n, []))
    for d in sorted(dists):
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "absent"
    return out


def source_digest(files: dict[str, Path], versions: dict[str, str]) -> str:
    """Hash of module names + sources + library versions."""
    h = hashlib.sha256()
    for name, f in sorted(files.items()):
        h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    for d, v in sorted(versions.items()):
        h.update(f"{d}=={v}\0".encode())
    return h.hexdigest()[:16]


#: modules that move, store or log partitions but never compute their content (left out of cache keys;
#: the stage's settings are hashed as values, so pipeline.settings need not be)
ORCHESTRATION = frozenset({"pipeline.partition", "pipeline.io", "pipeline.cli", "pipeline.config",
                           "pipeline.settings", "pipeline.sources"})


def code_digest(*objs: Callable | Hashable, libraries: Iterable[str] = ()) -> str:
    """Hash of everything the code of ``objs`` depends on, so any change invalidates the cache:

    the whole stage package defining each object (``pipeline/parse/`` or ``pipeline/embed.py``)
    and every project module it imports (static import graph, :mod:`pipeline.sources`), minus
    :data:`ORCHESTRATION`; the installed versions of the third-party packages those modules
    import; and the versions of the distributions named in ``libraries`` (models loaded by
    name, e.g. ``ja_ginza``, and data packages such as ``SudachiDict-core``).
    """
    files: dict[str, Path] = {}
    third: set[str] = set()
    for obj in objs:
        module = inspect.getmodule(obj)
        name = getattr(module, "__name__", "")
        if name.startswith(PACKAGE + "."):
            roots = package_files(stage_package(name))
        else:
            try:
                roots = [Path(inspect.getsourcefile(module))] if module else []
            except TypeError:  # a built-in
                roots = []
        if not roots:  # e.g. a function defined in __main__ of `python -c`
            files[f"<{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}>"] = Path(os.devnull)
            continue
        mods, _ = closure(roots)
        kept = {k: v for k, v in mods.items() if k not in ORCHESTRATION}
        files.update(kept)
        for f in kept.values():
            third |= imports_of(f)[1]
    return source_digest(files, library_versions(third, libraries))
