"""The analyst notebooks: committed without outputs, and executing top to bottom without
errors on the real pipeline outputs of the sample (POLICY_TOPICS_DATA / POLICY_TOPICS_MODELS)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.report_fixtures import models_dir, processed_dir, sample_outputs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_exist_and_are_committed_without_outputs():
    import nbformat

    names = {p.stem for p in NOTEBOOKS}
    assert {"01_explore_topics", "02_themes_by_speaker", "03_review_label_queue"} <= names
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear outputs"
        src = "\n".join(c.source for c in nb.cells)
        assert "POLICY_TOPICS_DATA" in src  # locate outputs via env, never recompute
        for stage_call in ("run_pipeline", "fit_topics(", "parse_utterances(", "ingest_paths(", ".fit("):
            assert stage_call not in src, f"{path.name} recomputes the pipeline ({stage_call})"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    return sample_outputs(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def kernel() -> str:
    """The venv's python3 kernel (registered into the venv if the ipykernel wheel did not)."""
    import subprocess
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True,
                       capture_output=True)
    return "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, outputs, kernel, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("POLICY_TOPICS_DATA", str(processed_dir(outputs)))
    monkeypatch.setenv("POLICY_TOPICS_MODELS", str(models_dir(outputs)))
    monkeypatch.setenv("PLOTLY_RENDERER", "json")
    monkeypatch.delenv("LABEL_SHEET", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name=kernel, allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert not errors
    shown = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
                if o.get("output_type") in ("display_data", "execute_result"))
    assert shown >= 3, "the notebook displayed (almost) nothing"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if path.stem == "01_explore_topics":
        assert "not found: BERTopic visualisations skipped" not in text  # the saved model was used
