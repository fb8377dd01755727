"""Shared test setup.

* **Markers.** ``slow``: loads a model (GiNZA/SudachiPy, the sentence encoder), fits BERTopic or
  runs the pipeline; ``browser``: headless Chromium. Tests using a heavy fixture (below) are
  marked ``slow`` automatically, so a new test on the shared pipeline outputs is never mistaken
  for a fast one.
* **``make test-fast``** (``POLICY_TOPICS_TEST_FAST=1 pytest -m "not slow and not browser"``):
  unit tests on tiny inputs for the edit loop. Loading a model there is an error that names the
  test, so a heavy test cannot creep into the fast set unmarked.
* **Session fixtures** shared by several modules (each costs a model load or a fit):
  ``labelled_sample`` / ``theme_model`` / ``theme_model_path`` (the classifier on the sample
  labels, lexical+rules+context, no embeddings).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "data" / "labels"
#: the sample meeting's own label files (data/labels also holds other councils' label records,
#: which have their own idx sequence and are not sentences of the sample)
SAMPLE_LABEL_GLOB = "sample_*.jsonl"
FAST = os.environ.get("POLICY_TOPICS_TEST_FAST") == "1"

#: fixtures that load a model, fit, or run the pipeline: a test using one is ``slow``
HEAVY_FIXTURES = {"labelled_sample", "theme_model", "theme_model_path", "sample", "fitted", "inputs", "result",
                  "parsed", "runs", "processed", "report_dir", "outputs", "sample_outputs", "built", "pipeline_run",
                  "poisoned", "tokens_only", "sample_tables"}
#: modules whose every test loads GiNZA / the sentence encoder / BERTopic or runs the pipeline
HEAVY_MODULES = {"test_embed", "test_parse", "test_topics", "test_notebooks", "test_incremental",
                 "test_report_browser", "test_dask_executor"}
#: single heavy tests in otherwise fast modules (real PDFs built and parsed page by page, process pools)
HEAVY_TESTS = {"test_pdf_with_bare_page_numbers", "test_pdf_without_spaces_uses_glyph_geometry",
               "test_pdf_gives_same_utterances_as_text", "test_process_pool_equals_inline",
               "test_largest_partitions_are_scheduled_first_but_yielded_in_order"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = Path(str(item.fspath)).stem
        if (HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())) or module in HEAVY_MODULES
                or item.originalname in HEAVY_TESTS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _no_model_loads_in_fast_mode(request, monkeypatch):
    """In ``make test-fast`` a model load fails the test (mark it ``@pytest.mark.slow``)."""
    if not FAST or request.node.get_closest_marker("slow"):
        yield
        return

    def refuse(*args, **kwargs):
        raise RuntimeError(f"{request.node.nodeid} loads a model: mark it @pytest.mark.slow (make test-fast "
                           "runs no model)")

    import spacy

    monkeypatch.setattr(spacy, "load", refuse)
    for mod, name in (("pipeline.parse.models", "load_nlp"), ("sudachipy", "Dictionary"),
                      ("pipeline.embed", "get_backend")):
        try:
            module = __import__(mod, fromlist=[name])
            monkeypatch.setattr(module, name, refuse)
        except Exception:
            pass
    yield


# ------------------------------------------------------------------ classifier on the sample labels
DEFAULT_IDS = ["last_mile_aging", "coverage_gap", "infrastructure_funding", "new_network_tech", "digital_platform",
               "priority_domains", "dx_talent", "cybersecurity", "stakeholder_collaboration", "demo_to_deployment",
               "data_sharing", "procedural"]


@pytest.fixture(scope="session")
def labelled_sample():
    """(X, Y) for every labelled sample sentence, in document order, grouped by speaker turn."""
    import numpy as np
    import pandas as pd

    from pipeline.classify.features import terms_for_texts

    rows = []
    for p in sorted(LABELS.glob(SAMPLE_LABEL_GLOB)):
        rows += [json.loads(line) for line in p.open(encoding="utf-8") if line.strip()]
    rows.sort(key=lambda r: r["idx"])
    if len(rows) < 100:
        pytest.skip("sample labels not present")
    turn, groups, prev = -1, [], None
    for r in rows:
        if r["speaker"] != prev:
            turn += 1
            prev = r["speaker"]
        groups.append(f"turn{turn:03d}")
    texts = [r["text"] for r in rows]
    X = pd.DataFrame({"text": texts, "terms": terms_for_texts(texts), "group": groups})
    Y = np.array([[int(t in r["labels"]) for t in DEFAULT_IDS] for r in rows])
    return X, Y


@pytest.fixture(scope="session")
def theme_model(labelled_sample):
    from pipeline.classify.model import ThemeClassifier

    X, Y = labelled_sample
    return ThemeClassifier(use_embeddings=False).fit(X, Y)


@pytest.fixture(scope="session")
def theme_model_path(theme_model, tmp_path_factory):
    import joblib

    path = tmp_path_factory.mktemp("theme_model") / "classifier.joblib"
    joblib.dump(theme_model, path)
    return path
