"""Typed settings (pipeline/settings.py): one declaration of every default, strict params.yaml,
fresh copies, the generated reference in docs/ARCHITECTURE.md. No model loads: fast."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, stage_params
from pipeline.settings import STAGES, Settings, load_settings, resolve
from pipeline.settings_doc import settings_markdown

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "params.yaml"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_loads_from_an_empty_and_from_the_shipped_params(stage, tmp_path):
    empty = tmp_path / "params.yaml"
    empty.write_text("", encoding="utf-8")
    from_empty = getattr(load_settings(empty), stage)
    shipped = getattr(load_settings(SHIPPED), stage)
    assert from_empty == getattr(Settings(), stage)
    # params.yaml states the defaults declared in the models (it is what `dvc repro` runs), so a
    # library call without settings, inside or outside the project, fits the same model as dvc repro
    assert shipped == from_empty, stage
    # a section left out entirely is the same as an empty one
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({stage: {}}), encoding="utf-8")
    assert getattr(load_settings(tmp_path / "other.yaml"), stage) == from_empty


def test_shipped_params_name_every_section_dvc_tracks():
    raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert set(raw) == set(STAGES)


@pytest.mark.parametrize("text, key", [
    ("topics:\n  clustering:\n    metod: kmeans\n", "topics.clustering.metod"),
    ("parse:\n  n_proces: 2\n", "parse.n_proces"),
    ("reprot:\n  top_quotes: 3\n", "reprot"),
])
def test_misspelled_key_is_a_one_line_error_naming_key_and_file(tmp_path, text, key):
    p = tmp_path / "params.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{p}: ") and repr(key) in msg


def test_wrong_value_type_names_the_key(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("parse:\n  n_process: two\nembed:\n  backend: bert\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    msg = str(err.value)
    assert "\n" not in msg and "parse.n_process" in msg and "+1 more" in msg


def test_cli_exits_2_with_one_line_on_a_bad_params_file(tmp_path, monkeypatch, capsys):
    import pipeline.config as config
    from pipeline.cli import main

    root = tmp_path / "proj"
    root.mkdir()
    (root / "params.yaml").write_text("embed:\n  bakend: use_multilingual\n", encoding="utf-8")
    monkeypatch.setattr(config, "ROOT", root)
    out = tmp_path / "e.npz"
    pd_sent = tmp_path / "s.parquet"
    import pandas as pd

    pd.DataFrame({"sentence_id": ["a"], "text": ["テスト"]}).to_parquet(pd_sent)
    assert main(["-q", "embed", str(pd_sent), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "params.yaml: unknown key 'embed.bakend'" in err[0]
    assert not out.exists()


def test_loading_returns_a_fresh_deep_copy():
    a = load_settings()
    a.topics.clustering.method = "kmeans"
    a.topics.extra_stopwords.append("xyz")
    b = load_settings()
    assert b.topics.clustering.method == "hdbscan" and "xyz" not in b.topics.extra_stopwords
    d = stage_params("topics")
    d["clustering"]["method"] = "kmeans"
    assert stage_params("topics")["clustering"]["method"] == "hdbscan"


def test_assignment_is_validated():
    from pydantic import ValidationError

    s = load_settings().embed
    with pytest.raises(ValidationError):
        s.backend = "bert"


def test_resolve_merges_overrides_over_params_and_rejects_unknown_keys():
    t = resolve("topics", {"clustering": {"method": "kmeans"}})
    assert t.clustering.method == "kmeans" and t.clustering.min_samples == load_settings().topics.clustering.min_samples
    assert resolve("topics", None) == load_settings().topics
    given = load_settings().report
    got = resolve("report", given)
    assert got == given and got is not given
    with pytest.raises(ConfigError, match="clustering.metod"):
        resolve("topics", {"clustering": {"metod": "kmeans"}})
    with pytest.raises(TypeError):
        resolve("topics", load_settings().parse)


def test_classifier_constructor_defaults_are_the_settings_defaults():
    """sklearn needs constructor defaults; they must be the ones declared in ClassifySettings."""
    from pipeline.classify.commands import make_model
    from pipeline.classify.model import ThemeClassifier

    from_settings = make_model(Settings().classify).get_params()
    bare = ThemeClassifier().get_params()
    for k, v in from_settings.items():
        if k in ("taxonomy",):
            continue
        assert (list(v) if isinstance(v, tuple) else v) == (list(bare[k]) if isinstance(bare[k], tuple) else bare[k]), k


def test_helper_keyword_defaults_are_the_declared_settings():
    """Library helpers called bare use the values declared once in the settings models
    (``pipeline.settings.default``): the topic clusterer (sklearn needs constructor defaults),
    context mixing, parse chunking, embedding backends, report sizes."""
    import inspect

    from pipeline import embed
    from pipeline.parse.sentences import byte_chunks, sentence_spans
    from pipeline.report.analysis import entity_top, flow
    from pipeline.settings import default
    from pipeline.topics.clustering import ProceduralAwareClusterer
    from pipeline.topics.geometry import context_embeddings

    def dflt(func, name):
        return inspect.signature(func).parameters[name].default

    s = Settings()
    bare = ProceduralAwareClusterer().get_params()
    assert {k: bare[k] for k in s.topics.clustering.model_dump()} == s.topics.clustering.model_dump()
    assert bare["random_state"] == s.topics.seed
    assert (dflt(context_embeddings, "window"), dflt(context_embeddings, "weight")) == (
        s.topics.context.window, s.topics.context.weight)
    assert dflt(byte_chunks, "max_bytes") == s.parse.max_chunk_bytes
    assert dflt(sentence_spans, "max_chars") == s.parse.max_sentence_chars
    assert embed.BACKENDS["use_multilingual"]().batch_size == s.embed.batch_size
    assert embed.DEFAULT_BACKEND == s.embed.backend
    assert (dflt(entity_top, "n"), dflt(flow, "hover_chars")) == (s.report.top_entities, s.report.hover_chars)
    assert default("topics.name_suffixes") is not default("topics.name_suffixes")  # a fresh copy
    with pytest.raises(AttributeError):
        default("topics.clustering.metod")

def test_executor_defaults_are_the_declared_scale_settings():
    """A bare dask client / run record agrees with ScaleSettings (get_client once said 2 workers, scale 1)."""
    import inspect

    from pipeline import partition as P

    s = Settings().scale
    sig = inspect.signature(P.get_client).parameters
    assert (sig["scheduler_address"].default, sig["n_workers"].default) == (s.scheduler_address, s.n_workers)
    assert (P.RunStats("x").executor, P.RunStats("x").n_workers) == (s.executor, s.n_workers)


def test_classify_defaults_are_declared_once(monkeypatch):
    """The classifier's embedding backend defaults to the embed stage's, label-queue reads
    classify.labels_dir unless told otherwise, and the model path is written once."""
    import pipeline.embed
    from pipeline.classify import DEFAULT_MODEL, tagging
    from pipeline.classify.features import encode_texts
    from pipeline.classify.model import ThemeClassifier
    from pipeline.cli import build_parser

    s = Settings()
    assert ThemeClassifier().embedding_backend == s.embed.backend
    asked = []

    def get_backend(name):  # no encoder load: record which backend a bare call asks for
        asked.append(name)
        raise LookupError(name)

    monkeypatch.setattr(pipeline.embed, "get_backend", get_backend)
    parser = build_parser()
    queue, tag = parser.parse_args(["label-queue"]), parser.parse_args(["tag"])
    assert queue.labels is None and queue.model == tag.model == DEFAULT_MODEL == tagging.DEFAULT_MODEL
    hits = [p.relative_to(ROOT).as_posix() for p in (ROOT / "pipeline").rglob("*.py")
            if "models/classifier.joblib" in p.read_text(encoding="utf-8")]
    assert hits == ["pipeline/classify/__init__.py"]
    with pytest.raises(LookupError):
        encode_texts(["x"])
    assert asked == [s.embed.backend]


def test_architecture_doc_settings_reference_is_up_to_date():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert settings_markdown() in doc, "run: python -m pipeline.settings_doc --write docs/ARCHITECTURE.md"
    for stage in STAGES:
        assert f"### `{stage}`" in settings_markdown()
    from pipeline.config_files import FILES

    for name in FILES:  # the configs/ files are documented from their models too
        assert f"### `configs/{name}.yaml`" in settings_markdown()
    assert "| `themes[].requires_scope` |" in settings_markdown()


@pytest.mark.parametrize("stage", ["topics", "embed", "parse"])
def test_library_without_settings_gets_what_the_cli_gets(stage, tmp_path, monkeypatch):
    """The settings a stage function resolves when called bare (notebooks, tests) are the ones the
    `policy-topics` command (= `dvc repro`) hands it: recorded at pipeline.settings.resolve."""
    import pandas as pd

    import pipeline.settings as S
    from pipeline.cli import main

    seen = []

    class Seen(Exception):
        pass

    real = S.resolve

    def spy(st, settings=None):
        out = real(st, settings)
        if st == stage:
            seen.append(out)
            raise Seen
        return out

    monkeypatch.setattr(S, "resolve", spy)
    sent = pd.DataFrame({"sentence_id": ["m:u0:s000"], "text": ["テスト"], "terms": [["テスト"]],
                         "meeting_id": ["m"], "utterance_id": ["m:u0"]})
    sent.to_parquet(tmp_path / "s.parquet")
    import numpy as np
    np.savez(tmp_path / "e.npz", sentence_id=np.array(["m:u0:s000"]), vectors=np.ones((1, 4), np.float32))
    utt = pd.DataFrame({"utterance_id": ["m:u0"], "meeting_id": ["m"], "kind": ["speech"], "text": ["テスト"]})
    utt.to_parquet(tmp_path / "u.parquet")
    o = str(tmp_path / "out")
    argv = {"topics": ["topics", "--sentences", str(tmp_path / "s.parquet"), "--embeddings", str(tmp_path / "e.npz"),
                       "--out-dir", o, "--assignments", o + "/a.parquet", "--model", o + "/m", "--metrics", o + "/t.json"],
            "embed": ["embed", str(tmp_path / "s.parquet"), "-o", o + "/e.npz"],
            "parse": ["parse", str(tmp_path / "u.parquet"), "--sentences", o + "/s.parquet", "--tokens", o + "/t.parquet",
                      "--entities", o + "/e.parquet"]}[stage]
    with pytest.raises(Seen):
        main(["-q", *argv])
    if stage == "topics":
        from pipeline.topics import fit_topics

        with pytest.raises(Seen):
            fit_topics(sent, (sent["sentence_id"].to_numpy(), np.ones((1, 4), np.float32)))
    elif stage == "embed":
        from pipeline.embed import embed_sentences

        with pytest.raises(Seen):
            embed_sentences(sent)
    else:
        from pipeline.parse import parse_utterances

        with pytest.raises(Seen):
            parse_utterances(utt)
    cli, lib = seen[0], seen[-1]
    assert len(seen) >= 2 and cli == lib == getattr(Settings(), stage)
