"""embed stage: backends, per-meeting cache, embeddings.npz contract, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.embed import BACKENDS, DEFAULT_BACKEND, embed_sentences, get_backend, load_embeddings, save_embeddings
from pipeline.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]

CYBER = "自治体職員向けのサイバーセキュリティ演習を実施しています。"
CYBER2 = "ＣＹＤＥＲという実践的サイバー防御演習を地方公共団体向けに提供しています。"
PAGE = "次のページをお願いします。"


def _sample_sentences(n: int = 24) -> pd.DataFrame:
    """The first sentences of the embedded sample (from the label files), split over two meetings."""
    texts = []
    for line in (ROOT / "data/labels/sample_a.jsonl").read_text(encoding="utf-8").splitlines()[:n]:
        texts.append(json.loads(line)["text"])
    mids = ["m1" if i < n // 2 else "m2" for i in range(len(texts))]
    return pd.DataFrame({"sentence_id": [f"{m}:u0000:s{i:03d}" for i, m in enumerate(mids)],
                         "meeting_id": mids, "text": texts})


def test_registry_and_default():
    assert {"use_multilingual", "ginza_vectors", "sentence_transformers"} <= set(BACKENDS)
    assert DEFAULT_BACKEND == "use_multilingual"
    with pytest.raises(PipelineError, match="unknown embedding backend"):
        get_backend("nope")


def test_use_backend_encodes_japanese_meaningfully():
    be = get_backend("use_multilingual", batch_size=2)
    X = be.encode([CYBER, CYBER2, PAGE])
    assert X.dtype == np.float32 and X.shape == (3, 512)
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-4)
    assert X[0] @ X[1] > X[0] @ X[2]  # two security sentences are closer than a page turn
    # sklearn-style transformer, batch size does not change results
    assert np.allclose(be.fit(None).transform([CYBER]), get_backend("use_multilingual", batch_size=64).encode([CYBER]),
                       atol=1e-5)
    assert be.encode([]).shape == (0, 512)


def test_ginza_backend_and_optional_sentence_transformers(tmp_path):
    X = get_backend("ginza_vectors").encode([CYBER, PAGE])
    assert X.shape == (2, 300) and X.dtype == np.float32
    st = get_backend("sentence_transformers", model_path=str(tmp_path / "missing"))
    with pytest.raises(PipelineError, match="not found"):
        st.encode(["x"])


def test_embed_per_meeting_is_cached_and_ordered(tmp_path):
    df = _sample_sentences()
    stats: dict = {}
    ids, X = embed_sentences(df, {"backend": "use_multilingual"}, cache_dir=tmp_path, stats=stats)
    assert list(ids) == df["sentence_id"].tolist() and X.shape == (len(df), 512)
    assert len(stats["computed"]) == 2
    # one meeting changes: only that meeting is recomputed
    df2 = df.copy()
    df2.loc[0, "text"] = CYBER
    stats2: dict = {}
    ids2, X2 = embed_sentences(df2, {"backend": "use_multilingual"}, cache_dir=tmp_path, stats=stats2)
    assert stats2["computed"] == ["m1"] and stats2["cached"] == ["m2"]
    # m1 was re-encoded in a different batch: same vectors up to float rounding (BLAS/CPU dependent)
    assert np.allclose(X2[1:], X[1:], atol=1e-5) and not np.allclose(X2[0], X[0], atol=1e-2)


def test_npz_roundtrip_and_bad_file(tmp_path):
    ids = np.array(["a", "b"])
    X = np.eye(2, 3, dtype=np.float32)
    p = save_embeddings(tmp_path / "e.npz", ids, X, backend="use_multilingual")
    ids2, X2, backend = load_embeddings(p, with_backend=True)
    assert list(ids2) == ["a", "b"] and np.array_equal(X2, X) and backend == "use_multilingual"
    bad = tmp_path / "bad.npz"
    bad.write_text("not numpy")
    with pytest.raises(PipelineError, match="bad.npz"):
        load_embeddings(bad)
    with pytest.raises(PipelineError, match="not found"):
        load_embeddings(tmp_path / "none.npz")


def test_dataset_roundtrip_one_file_per_meeting(tmp_path):
    from pipeline.dataset import part_files

    ids = ["m1:s0", "m1:s1", "m2:s0"]
    X = np.arange(9, dtype=np.float32).reshape(3, 3)
    p = save_embeddings(tmp_path / "e.parquet", ids, X, backend="ginza_vectors", meeting_ids=["m1", "m1", "m2"])
    assert p.is_dir() and len(part_files(p)) == 2
    ids2, X2, backend = load_embeddings(p, with_backend=True)
    assert list(ids2) == ids and np.array_equal(X2, X) and X2.dtype == np.float32 and backend == "ginza_vectors"
    only, Xo = load_embeddings(p, sentence_ids=["m2:s0"])  # a filter pushed down to the files
    assert list(only) == ["m2:s0"] and np.array_equal(Xo, X[2:])


def test_cli_embed(tmp_path, monkeypatch):
    from pipeline.cli import main
    from pipeline.dataset import part_files

    monkeypatch.setenv("POLICY_TOPICS_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "sentences.parquet"
    _sample_sentences(8).to_parquet(src)
    out = tmp_path / "embeddings.parquet"
    assert main(["-q", "embed", str(src), "-o", str(out)]) == 0
    ids, X = load_embeddings(out)
    assert len(ids) == 8 and X.shape == (8, 512)
    assert out.is_dir() and len(part_files(out)) == _sample_sentences(8)["meeting_id"].nunique()
    assert main(["-q", "embed", str(src), "-o", str(tmp_path / "legacy.npz")]) == 0  # the old single file
    ids_n, X_n = load_embeddings(tmp_path / "legacy.npz")
    assert list(ids_n) == list(ids) and np.allclose(X_n, X, atol=1e-6)
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "wrong.parquet")
    assert main(["-q", "embed", str(tmp_path / "wrong.parquet"), "-o", str(tmp_path / "w.parquet")]) == 2
    assert not (tmp_path / "w.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
