"""Real pipeline outputs for the report / notebook tests (no conftest needed).

:func:`run_pipeline` runs every stage of dvc.yaml before ``report`` exactly as DVC would
(the same ``policy-topics`` command lines, in-process), with the project's paths
rewritten into a temporary directory and ``data/raw`` replaced by the embedded sample.
So the tests exercise the real upstream stages on the real sample text, work on a fresh
clone, and never touch data/ or models/ of the working tree. Stage caches (.cache/)
make a second run fast.
"""
from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data/raw/mic-chiiki-ict-06_2024-04-24.txt"
#: stage outputs/inputs that move into the temp dir (inputs under data/labels, configs/ stay put)
MOVED = ("data/raw", "data/interim", "data/processed", "models", "metrics", "reports")


def stage_commands(upto: str = "report") -> list[tuple[str, list[str]]]:
    """(stage, argv) for each dvc.yaml stage before ``upto``."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    out = []
    for name, st in stages.items():
        if name == upto:
            break
        argv = shlex.split(st["cmd"])
        assert argv[0] == "policy-topics", st["cmd"]
        out.append((name, argv[1:]))
    return out


def _rewrite(arg: str, base: Path) -> str:
    for prefix in MOVED:
        if arg == prefix or arg.startswith(prefix + "/"):
            return str(base / arg)
    if not arg.startswith("-") and "/" in arg and (ROOT / arg).exists():
        return str(ROOT / arg)  # project inputs (data/labels, configs/...) whatever the cwd
    return arg


def run_pipeline(base: Path, raw_files: list[Path] | None = None) -> dict[str, float]:
    """Run ingest ... classify on ``raw_files`` (default: the sample) into ``base``;
    returns seconds per stage. Outputs: ``base/data/processed``, ``base/models/topics``."""
    from pipeline.cli import main

    raw = base / "data/raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in raw_files or [SAMPLE]:
        shutil.copy(f, raw / f.name)
    for d in ("data/interim", "data/processed", "models", "metrics"):
        (base / d).mkdir(parents=True, exist_ok=True)
    seconds = {}
    fast = _fast_options()
    for name, argv in stage_commands():
        argv = [*argv, *fast.get(name, [])]
        t0 = time.perf_counter()
        code = main(["-q", *[_rewrite(a, base) for a in argv]])
        seconds[name] = round(time.perf_counter() - t0, 1)
        if code:
            raise RuntimeError(f"stage {name} failed with exit code {code}: {' '.join(argv)}")
    return seconds


def _fast_options() -> dict[str, list[str]]:
    """Options that skip work the report does not read: ``train --no-eval`` ships the same model
    (fit on all labels) without the cross-validated metrics (~3 min of the ~4 min run)."""
    from pipeline.cli import build_parser

    sub = next(a for a in build_parser()._actions if getattr(a, "choices", None) and "train" in a.choices)
    train_opts = {o for a in sub.choices["train"]._actions for o in a.option_strings}
    return {"train": ["--no-eval"]} if "--no-eval" in train_opts else {}


def processed_dir(base: Path) -> Path:
    return base / "data/processed"


def models_dir(base: Path) -> Path:
    return base / "models"


_CACHE: dict[str, Path] = {}


def sample_outputs(tmp_root: Path) -> Path:
    """Base dir holding ``data/processed`` and ``models`` of the pipeline run on the sample,
    computed once per test session. ``POLICY_TOPICS_TEST_OUTPUTS=<dir>`` reuses an existing
    run laid out the same way (e.g. the project root after ``dvc repro``)."""
    import os

    if "base" not in _CACHE:
        given = os.environ.get("POLICY_TOPICS_TEST_OUTPUTS")
        if given:
            _CACHE["base"] = Path(given)
        else:
            base = tmp_root / "sample_pipeline"
            if base.exists():
                shutil.rmtree(base)
            run_pipeline(base)
            _CACHE["base"] = base
    return _CACHE["base"]


# ------------------------------------------------------------------ headless Chromium
def chromium() -> str | None:
    """Path of a Chromium binary; None when absent (tests skip unless REQUIRE_BROWSER=1)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def need_chromium() -> str:
    import os

    import pytest

    path = chromium()
    if path is None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but no chromium binary found (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed")
    return path


def run_chromium(html: Path, work: Path, *, screenshot: Path | None = None, dump_dom: bool = False,
                 size: str = "1280,2400", budget_ms: int = 8000) -> tuple[str, list[str]]:
    """Open ``html`` in headless Chromium with the network disabled; returns (stdout, console lines).

    ``dump_dom`` prints the DOM after scripts ran (virtual time budget); console messages
    are read from Chromium's stderr log (``INFO:CONSOLE``)."""
    import subprocess

    profile = work / f"chromium-profile-{time.time_ns()}"
    cmd = [chromium() or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all
           f"--user-data-dir={profile}", f"--window-size={size}", f"--virtual-time-budget={budget_ms}",
           "--enable-logging=stderr", "--v=0"]
    if screenshot is not None:
        cmd.append(f"--screenshot={screenshot}")
    if dump_dom:
        cmd.append("--dump-dom")
    cmd.append(html.resolve().as_uri())
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    shutil.rmtree(profile, ignore_errors=True)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout, console
