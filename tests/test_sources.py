"""Cache keys and DVC deps follow the code: every project module a stage imports is a dvc.yaml dep,
and editing any module a stage imports (not only the one defining the worker) invalidates its cache."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import sources

ROOT = Path(__file__).resolve().parents[1]


def _stage_entry_modules() -> dict[str, str]:
    """DVC stage -> module of the CLI handler its command runs (from the real argument parser)."""
    from pipeline.cli import build_parser

    parser = build_parser()
    out = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"].items():
        argv = stage["cmd"].split()[1:]
        out[name] = parser.parse_args(argv).func.__module__
    return out


def test_dvc_deps_cover_every_project_module_a_stage_imports():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    missing = {}
    for name, module in _stage_entry_modules().items():
        deps = [str(d) for d in stages[name].get("deps", [])]
        for path in sources.stage_modules(module).values():
            rel = path.relative_to(ROOT).as_posix()
            if not any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps):
                missing.setdefault(name, []).append(rel)
    assert not missing, f"dvc.yaml deps lack modules the stage imports: {missing}"


def test_static_imports_are_found_inside_functions_and_relative():
    embed = sources.stage_modules("pipeline.embed")
    assert {"pipeline.embed", "pipeline.errors", "pipeline.partition"} <= set(embed)  # partition: lazy import
    classify = sources.stage_modules("pipeline.classify.commands")
    assert "pipeline.labels" in classify and "pipeline.classify.taxonomy" in classify
    assert all(m.startswith("pipeline") for m in classify)


def test_library_versions_cover_models_loaded_by_name():
    v = sources.library_versions(["numpy"], ["ja_ginza", "SudachiDict-core", "no-such-dist"])
    assert v["numpy"] and v["ja_ginza"] != "absent" and v["SudachiDict-core"] != "absent"
    assert v["no-such-dist"] == "absent"


_DIGEST = """
import sys
from pipeline.partition import code_digest
from pipeline.embed import _embed_partition
from pipeline.ingest.core import ingest_file
print(code_digest(_embed_partition), code_digest(ingest_file))
"""


def _digests(tree: Path) -> tuple[str, str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _DIGEST], env=env, cwd=tree, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], out[1]


def test_editing_a_helper_module_invalidates_the_cache(tmp_path):
    """A copy of the package: edit a helper the embed worker imports (errors.py), a module of
    the ingest package the worker's module never names, and one no stage imports."""
    tree = tmp_path / "src"
    shutil.copytree(ROOT / "pipeline", tree / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "configs", tree / "configs")  # read at import (role words)
    base_embed, base_ingest = _digests(tree)
    assert _digests(tree) == (base_embed, base_ingest)  # stable across processes

    with open(tree / "pipeline" / "report" / "markdown.py", "a", encoding="utf-8") as fh:
        fh.write("\n# a change no cached stage imports\n")
    assert _digests(tree) == (base_embed, base_ingest)

    with open(tree / "pipeline" / "errors.py", "a", encoding="utf-8") as fh:
        fh.write("\nEXTRA = 1\n")
    e2, i2 = _digests(tree)
    assert e2 != base_embed and i2 != base_ingest

    (tree / "pipeline" / "ingest" / "formats" / "new_format.py").write_text("X = 1\n", encoding="utf-8")
    e3, i3 = _digests(tree)
    assert e3 == e2 and i3 != i2  # a new module in the stage package: ingest only


def test_tag_reads_text_without_the_ingest_package():
    """``tag`` decodes input with the stage-free pipeline.textio, so an ingest edit does not
    invalidate train/classify (their cache keys and dvc.yaml deps)."""
    mods = sources.stage_modules("pipeline.classify.commands")
    assert "pipeline.textio" in mods
    assert not [m for m in mods if m.startswith("pipeline.ingest")]
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert "pipeline/ingest" not in stages["train"]["deps"] + stages["classify"]["deps"]
