"""Typed settings: one pydantic model per stage, the only place a default is declared.

``params.yaml`` (one section per stage) is validated against these models on load:
an unknown or misspelled key, or a value of the wrong type, is a one-line
:class:`~pipeline.config.ConfigError` naming the key and the file (exit 2 from the CLI).
A section or key absent from params.yaml takes the default declared here, so
``load_settings()`` on an empty file and ``Settings()`` are the same object, and a
library function called without settings fits what ``dvc repro`` fits.

Usage (library, CLI and notebooks alike)::

    from pipeline.settings import load_settings
    s = load_settings()                  # params.yaml of the project, validated; a fresh deep copy
    s.topics.clustering.method           # 'hdbscan'
    s2 = s.topics.merged({"clustering": {"method": "kmeans"}})   # a new, validated copy

Every stage function takes ``settings`` as its stage's model, a dict of overrides
(merged over params.yaml) or ``None`` (params.yaml): :func:`resolve` does that.
``python -m pipeline.settings_doc --write docs/ARCHITECTURE.md`` regenerates the
settings reference in the architecture document from these models.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.config_files import error_line

__all__ = [
    "Settings", "IngestSettings", "ParseSettings", "EmbedSettings", "TopicsSettings",
    "ClassifySettings", "ReportSettings", "ScaleSettings", "FetchSettings", "load_settings", "stage_settings", "resolve",
]


class StageModel(BaseModel):
    """Base of every settings model: unknown keys are errors; values re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    def merged(self, overrides: dict[str, Any] | None = None):
        """A new validated copy with ``overrides`` (nested dicts merge into nested models)."""
        data = _deep_merge(self.model_dump(), overrides or {})
        return type(self).model_validate(data)

    def to_params(self, *, exclude: set[str] | None = None) -> dict[str, Any]:
        """Plain JSON-able dict (cache keys, metrics, the old dict-based call sites)."""
        return self.model_dump(mode="json", exclude=exclude)


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# --------------------------------------------------------------------------- ingest

class IngestSettings(StageModel):
    """``ingest``: minutes files -> utterances/meetings."""

    raw_dir: str = Field("data/raw", description="folder of raw minutes files (DVC dep)")
    format: str = Field("auto", description="auto | pdf_text | pdf | tokyo_assembly_json | discussnet_ssp_json | "
                                            "kokkai_json | dbsearch_html | html | kensakusystem_text | "
                                            "shingikai_text | colon_text (auto: detected per file)")
    # (an unknown format is rejected by ingest_paths, a one-line error; validating it here would make
    # every stage import the ingest package's reader registry: tests/test_sources.py)
    cache: bool = Field(True, description="per-file cache (.cache/ingest, keyed by file hash + ingest code): "
                                          "re-runs read only new files")


# --------------------------------------------------------------------------- parse

class ParseSettings(StageModel):
    """``parse``: utterances -> sentences (content terms), tokens, entities (GiNZA)."""

    model: str = Field("ja_ginza", description="spaCy/GiNZA model package")
    batch_size: int = Field(256, ge=1, description="nlp.pipe batch for tok2vec+ner (speed only)")
    n_process: int = Field(2, ge=1, description="nlp.pipe processes for NER within a meeting "
                                                "(speed only; 1 when scale.n_workers > 1)")
    split_long_sentences: bool = Field(False, description="split sentences over max_sentence_chars "
                                                          "at clause boundaries")
    max_sentence_chars: int = Field(200, ge=1, description="see split_long_sentences")
    split_on_newline: bool = Field(False, description="also end a sentence at a line break "
                                                      "(off: keeps sample label texts)")
    max_chunk_bytes: int = Field(30000, ge=1000, le=49149,
                                 description="a sentence longer than this (UTF-8) is tokenised in pieces "
                                             "(SudachiPy's limit is 49149)")
    ner: Literal["gated", "full", "off"] = Field(
        "gated", description="gated: tok2vec+ner only on windows around tokens that can be entities (rule and "
                             "learned triggers, pipeline.parse.gate: ~2.3-3.3x plain GiNZA per CPU-s, entity "
                             "recall ~0.99 vs full); full: on every sentence (~1.6-2x); off: sentences/tokens/"
                             "terms only (tokenizer only), empty entities; true/false mean full/off")
    ner_context: int = Field(4, ge=0, le=64, description="gated: tokens of context either side of a "
                                                         "trigger token")
    max_compound_parts: int = Field(6, ge=1, description="a noun run of more parts is a list of nouns, "
                                                           "emitted one by one, not one term")

    #: fields that change speed only, never results (left out of cache keys)
    SPEED_ONLY: ClassVar[frozenset[str]] = frozenset({"batch_size", "n_process"})

    @field_validator("ner", mode="before")
    @classmethod
    def _ner_mode(cls, v: Any) -> Any:
        """The former boolean: true = full, false = off."""
        if isinstance(v, bool):
            return "full" if v else "off"
        return v.strip().lower() if isinstance(v, str) else v


# --------------------------------------------------------------------------- embed

class UseMultilingualOptions(StageModel):
    threads: int = Field(1, ge=1, description="BLAS threads of the USE encoder")


class GinzaVectorsOptions(StageModel):
    model: str = Field("ja_ginza", description="spaCy model whose document vectors are used")


class SentenceTransformersOptions(StageModel):
    model_path: str | None = Field(None, description="local sentence-transformers model directory "
                                                     "(optional extra)")
    device: str = Field("cpu", description="torch device")


class EmbedOptions(StageModel):
    """Per-backend keyword arguments (``pipeline.embed.get_backend``)."""

    use_multilingual: UseMultilingualOptions = Field(default_factory=UseMultilingualOptions)
    ginza_vectors: GinzaVectorsOptions = Field(default_factory=GinzaVectorsOptions)
    sentence_transformers: SentenceTransformersOptions = Field(default_factory=SentenceTransformersOptions)


class EmbedSettings(StageModel):
    """``embed``: sentences -> embeddings.npz."""

    backend: Literal["use_multilingual", "ginza_vectors", "sentence_transformers"] = Field(
        "use_multilingual", description="embedding backend (best on the sample: see README)")
    batch_size: int = Field(64, ge=1, description="texts per encoder call")
    cache: bool = Field(True, description="per-meeting cache: only new/changed meetings are embedded")
    options: EmbedOptions = Field(default_factory=EmbedOptions)

    def backend_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the chosen backend: batch_size + its options."""
        return {"batch_size": self.batch_size, **getattr(self.options, self.backend).model_dump()}


# --------------------------------------------------------------------------- topics

class ClusteringSettings(StageModel):
    method: Literal["hdbscan", "kmeans"] = Field(
        "hdbscan", description="hdbscan: number of topics adapts to the corpus, outliers re-assigned")
    n_clusters: int | Literal["auto"] = Field(
        "auto", description="kmeans: auto = sqrt(n_substantive / 2) clipped to [2, 60]")
    min_cluster_size: int | Literal["auto"] = Field(
        "auto", description="hdbscan: auto = 1 % of substantive sentences, between 5 and 100")
    min_samples: int | None = Field(3, description="hdbscan: small = robust on one meeting / a fit sample")
    cluster_selection_method: Literal["eom", "leaf"] = Field("eom", description="hdbscan")
    max_cluster_share: float | None = Field(
        0.25, gt=0.0, le=1.0,
        description="hdbscan: no topic holds more than this share of the substantive fit sentences "
                    "(eom otherwise may select one corpus-wide cluster); null = no cap")


class UmapSettings(StageModel):
    n_neighbors: int = Field(15, ge=2)
    n_components: int = Field(5, ge=1)
    min_dist: float = Field(0.0, ge=0.0)
    metric: str = "cosine"


class ContextSettings(StageModel):
    """Mix each sentence with its neighbours in the same utterance before UMAP."""

    window: int = Field(1, ge=0)
    weight: float = Field(0.5, ge=0.0, le=1.0)


_PROCEDURAL_CUES = [
    "ページ", "御覧", "おめくり", "めくって", "次をお願い", "次のページ", "資料", "議題", "議事", "御発言", "御質問",
    "御意見", "質疑", "ありがとう", "よろしく", "お願いします", "お願いいたします", "以上で", "以上と", "以上です",
    "と申します", "どうぞ", "移ります", "移らせて", "開催", "閉会", "次回", "定刻", "御欠席", "チャット", "挙手",
    "説明させて", "御報告", "報告いたします",
]


class ProceduralSettings(StageModel):
    """Documented rule (README): own topic 議事進行・挨拶, never clustered."""

    enabled: bool = True
    min_terms: int = Field(2, ge=0, description="fewer content terms than this -> procedural")
    max_chars: int = Field(45, ge=0, description="short sentence containing a cue -> procedural")
    cues: list[str] = Field(default_factory=lambda: list(_PROCEDURAL_CUES))


class OutlierSettings(StageModel):
    strategy: Literal["embeddings", "c-tf-idf", "none"] = Field(
        "embeddings", description="outliers -> most similar substantive topic")
    threshold: float = Field(0.0, description="minimum cosine similarity to re-assign")


class TermFeatureSettings(StageModel):
    """Lexical view concatenated to the embeddings before UMAP (weight 0 = off)."""

    weight: float = Field(0.5, ge=0.0)
    dims: int = Field(100, ge=1)
    min_df: int = Field(2, ge=1)


class RepresentationSettings(StageModel):
    models: list[Literal["keybert", "mmr"]] = Field(
        default_factory=lambda: ["keybert", "mmr"],
        description="KeyBERTInspired then MMR over the c-TF-IDF candidate terms")
    nr_candidate_words: int = Field(30, ge=1)
    nr_repr_docs: int = Field(5, ge=1)
    mmr_diversity: float = Field(0.3, ge=0.0, le=1.0)


class IncrementalSettings(StageModel):
    """When a saved topic model is reused for new meetings instead of refitted (see README Topics)."""

    refit: bool = Field(False, description="always refit")
    max_new_meeting_share: float = Field(0.25, ge=0.0, description="refit when meetings added, removed or "
                                                                  "changed since the fit / meetings fitted exceed this")
    max_unfamiliar_share: float = Field(0.5, ge=0.0, le=1.0, description="refit when more substantive sentences "
                                        "added since the fit than this share are farther from every topic centroid "
                                        "than 95 % of the fitted ones")
    min_new_sentences: int = Field(20, ge=0, description="the unfamiliar share is judged once this many "
                                                         "substantive sentences were added since the fit")


class TopicsEvaluationSettings(StageModel):
    split_seed: int = Field(42, description="dev/test halves of the labelled sentences, grouped by utterance")


_EXTRA_STOPWORDS = [
    "思う", "考える", "ござる", "いただく", "御", "ページ", "資料", "お願い", "頂く", "申し上げる", "おる", "致す",
    "存ずる", "する", "いる", "ある", "なる", "できる", "言う", "行う", "伺う", "参る", "御覧", "説明", "御説明", "意見",
    "御意見", "質問", "御質問", "本日", "今回", "皆様", "先生", "構成員", "事務局", "委員", "ところ", "こと", "もの",
    "ため", "よう", "お話", "話", "ありがとう", "以上", "次", "次回", "先ほど", "今日", "いう", "思い", "考え", "申す",
    "くださる", "下さる", "おっしゃる",
]
_NAME_SUFFIXES = ["先生", "構成員", "さん", "座長", "センター長", "課長", "室長", "補佐", "参事官", "委員長", "議長",
                  "議員", "知事", "君"]


class TopicsSettings(StageModel):
    """``topics``: BERTopic on sentence embeddings + content terms."""

    seed: int = 42
    clustering: ClusteringSettings = Field(default_factory=ClusteringSettings)
    umap: UmapSettings = Field(default_factory=UmapSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    procedural: ProceduralSettings = Field(default_factory=ProceduralSettings)
    outliers: OutlierSettings = Field(default_factory=OutlierSettings)
    term_features: TermFeatureSettings = Field(default_factory=TermFeatureSettings)
    representation: RepresentationSettings = Field(default_factory=RepresentationSettings)
    top_n_words: int = Field(10, ge=1)
    label_terms: int = Field(3, ge=1, description="topic_label = first N terms (<= label_max_chars, not nested) "
                                                  "joined by ・")
    label_max_chars: int = Field(12, ge=1)
    drop_speaker_names: bool = Field(True, description="speakers' names are never topic terms")
    name_suffixes: list[str] = Field(default_factory=lambda: list(_NAME_SUFFIXES),
                                     description="person references (stripped from topic terms)")
    min_df: int = Field(1, ge=1)
    representative_docs: int = Field(3, ge=0)
    prob_temperature: float = Field(0.05, gt=0.0, description="topic_prob = softmax(cosine to centroids / T)")
    fit_sample_size: int | None = Field(20000, ge=1, description="fit on a per-meeting stratified sample of N "
                                                                 "sentences, assign the rest (null = all)")
    evaluation: TopicsEvaluationSettings = Field(default_factory=TopicsEvaluationSettings)
    incremental: IncrementalSettings = Field(default_factory=IncrementalSettings)
    extra_stopwords: list[str] = Field(default_factory=lambda: list(_EXTRA_STOPWORDS),
                                       description="added to configs/stopwords.yaml for c-TF-IDF")


# --------------------------------------------------------------------------- classify (train + classify)

class ClassifySettings(StageModel):
    """``classify``: the theme classifier (``train``) and tagging (``classify``)."""

    seed: int = 42
    n_splits: int = Field(5, ge=2, description="outer GroupKFold over speaker turns (utterance_id)")
    n_boot: int = Field(1000, ge=1, description="bootstrap replicates (resampling turns) for the F1 CIs")
    inner_folds: int = Field(3, ge=2, description="inner grouped folds: C choice, calibration, thresholds")
    C_lex: list[float] = Field(default_factory=lambda: [0.3, 1.0, 3.0],
                               description="grid for the lexical logistic regressions")
    C_emb: list[float] = Field(default_factory=lambda: [0.3, 1.0, 3.0],
                               description="grid for the embedding logistic regressions")
    C_meta: list[float] = Field(default_factory=lambda: [0.1, 0.3, 1.0],
                                description="grid for the pooled calibrator (inner out-of-fold log-loss)")
    use_rules: bool = Field(True, description="taxonomy cue rules as features")
    use_coding_rules: bool = Field(True, description="the coding rules written from the sample (false: plain cues)")
    use_terms: bool = Field(True, description="content terms as lexical features")
    use_embeddings: bool = Field(True, description="sentence embeddings as a second view")
    use_context: bool = Field(True, description="short sentences inherit their neighbours' scores")
    meta: str = Field("pooled", description="pooled: one calibrator shared by all labels; else one per label")
    label_interactions: bool = True
    rule_weight: float = Field(1.0, ge=0.0)
    context_max_chars: int = Field(40, ge=0, description="short sentence: inherits the previous sentence's scores")
    context_window: int = Field(2, ge=0, description="neighbouring sentences (same turn) averaged as context")
    threshold_shrinkage: float = Field(10, ge=0, description="per-label thresholds shrunk to the pooled one "
                                                             "(pseudo-count of positives)")
    use_definitions: bool = Field(True, description="taxonomy prototypes: extra training rows + "
                                                    "definition-similarity prior")
    self_training: bool = Field(True, description="unlabelled sentences (new meetings): confident predictions "
                                                  "retrain the base models")
    pseudo_min_proba: float = Field(0.8, ge=0.0, le=1.0, description="self-training: a theme becomes a "
                                                                     "pseudo-label at calibrated p >= this")
    label_record_weight: float = Field(0.05, gt=0.0, description="weight of a label-record row vs a corpus row")
    domain_adaptation: bool = Field(True, description="per-council feature copies + a shared one; unseen: shared")
    domain_min_rows: int = Field(100, ge=0, description="labelled rows a council needs for its own copy (fewer: shared)")
    context_gate: bool = Field(True, description="a long sentence's turn context scaled by its own evidence")
    cross_group: Literal["agenda_item", "meeting_id"] = Field(
        "agenda_item", description="leave-one-out figure next to the CV: agenda_item (one labelled meeting) | "
                                   "meeting_id")
    ablations: bool = Field(True, description="also report the shipped config minus one signal")
    queue_size: int = Field(50, ge=0, description="rows in data/processed/label_queue.csv")
    labels_dir: str = Field("data/labels", description="folder of labelled *.jsonl")

    #: fields passed to the ThemeClassifier constructor
    MODEL_FIELDS: ClassVar[frozenset[str]] = frozenset({
        "use_rules", "use_coding_rules", "use_terms", "meta", "label_interactions", "rule_weight",
        "use_definitions", "self_training", "pseudo_min_proba",
        "use_embeddings", "use_context", "C_lex", "C_emb", "C_meta", "inner_folds", "context_max_chars",
        "context_window", "threshold_shrinkage", "domain_adaptation", "domain_min_rows",
        "context_gate"})

    def model_kwargs(self) -> dict[str, Any]:
        """ThemeClassifier keyword arguments (grids as tuples, sklearn style)."""
        kw = {k: (tuple(v) if isinstance(v, list) else v)
              for k, v in self.model_dump().items() if k in self.MODEL_FIELDS}
        return {**kw, "random_state": self.seed}


# --------------------------------------------------------------------------- report

class ReportSettings(StageModel):
    """``report``: HTML/Markdown report and CSV/Excel tables."""

    top_quotes: int = Field(3, ge=0, description="quotes per theme / topic (HTML and Markdown)")
    top_speakers: int = Field(30, ge=1, description="rows of the theme x speaker heatmap")
    top_entities: int = Field(15, ge=0, description="entities listed per group (organisations, places, ...)")
    hover_chars: int = Field(60, ge=0, description="sentence text shown in discussion-flow hovers")
    top_topics_over_time: int = Field(10, ge=1)
    md_topics: int = Field(10, ge=0, description="topics listed in report.md")
    headers: Literal["en", "ja"] = Field("en", description="CSV column headers")
    excel_headers: Literal["en", "ja"] = Field("ja", description="Excel column headers (sheet `columns` maps both)")


# --------------------------------------------------------------------------- scale (not a DVC stage param)

class ScaleSettings(StageModel):
    """``scale``: how per-partition stages run; never changes results (not a DVC stage param)."""

    executor: Literal["local", "dask"] = "local"
    n_workers: int = Field(1, ge=1, description="local: >1 = process pool; dask: workers of the LocalCluster")
    scheduler_address: str = Field("", description="dask: e.g. tcp://host:8786; '' = start a LocalCluster")
    cache_dir: str = Field(".cache", description="per-partition content-hash cache (relative to the project root)")


# --------------------------------------------------------------------------- fetch (not a DVC stage)

KOKKAI_API_URL = "https://kokkai.ndl.go.jp/api"
KOKKAI_HOST = "kokkai.ndl.go.jp"


class FetchSettings(StageModel):
    """``fetch``: `policy-topics fetch kokkai` (国会会議録検索システム API); not a DVC stage param.

    Precedence: these defaults < params.yaml ``fetch:`` < ``$POLICY_TOPICS_KOKKAI_API`` (api_url) < CLI flags.
    """

    api_url: str = Field(KOKKAI_API_URL, description="API base URL (…/api): a mirror or local server can stand in")
    pause_seconds: float = Field(3.0, ge=0, description="pause after each response before the next request "
                                                        "(the API asks for a few seconds; >= 1 against kokkai.ndl.go.jp)")
    max_failures: int = Field(5, ge=1, le=50, description="failed attempts of one request (429, 5xx, time-out, "
                                                          "dropped connection) before the run stops")
    backoff_seconds: float = Field(2.0, ge=0, description="first retry delay; doubles on each failure")
    backoff_max_seconds: float = Field(120.0, ge=0, description="cap on one retry delay (and on Retry-After)")
    timeout_seconds: float = Field(60.0, gt=0, description="connect/read time-out of one request")
    page_size: int = Field(10, ge=1, le=10, description="maximumRecords per request (the meeting endpoint's "
                                                        "maximum is 10)")

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _polite_to_the_official_host(self) -> FetchSettings:
        if urlsplit(self.api_url).hostname == KOKKAI_HOST and self.pause_seconds < 1:
            raise ValueError(f"--pause (pause_seconds) must be at least 1 s against {KOKKAI_HOST} "
                             f"(the API's usage notes ask for a pause of a few seconds between requests)")
        return self


class Settings(StageModel):
    """The whole params.yaml: one section per stage."""

    ingest: IngestSettings = Field(default_factory=IngestSettings)
    parse: ParseSettings = Field(default_factory=ParseSettings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    topics: TopicsSettings = Field(default_factory=TopicsSettings)
    classify: ClassifySettings = Field(default_factory=ClassifySettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)


STAGES: dict[str, type[StageModel]] = {
    name: info.annotation for name, info in Settings.model_fields.items()  # type: ignore[misc]
}

# --------------------------------------------------------------------------- loading

M = TypeVar("M", bound=StageModel)


def validate_params(data: Any, path: str | Path, stage: str | None = None) -> StageModel:
    """Validate a params mapping (the whole file, or one ``stage`` section) -> model; one-line ConfigError."""
    from pipeline.config import ConfigError

    path = Path(path)
    model = STAGES[stage] if stage else Settings
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, f"{stage + ': ' if stage else ''}expected a mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, error_line(exc, stage or "")) from None


def load_settings(path: str | Path | None = None) -> Settings:
    """params.yaml (default: the project's) validated -> a fresh :class:`Settings` (a deep copy: mutate freely).

    A missing params.yaml means all defaults (a library user outside the project).
    """
    from pipeline.config import ROOT, load_yaml

    p = Path(path) if path else ROOT / "params.yaml"
    if not p.exists():
        if path:
            from pipeline.config import ConfigError

            raise ConfigError(p, "configuration file not found")
        return Settings()
    return validate_params(copy.deepcopy(load_yaml(p)), p)  # type: ignore[return-value]


def stage_settings(stage: str, path: str | Path | None = None) -> StageModel:
    """One stage's section of params.yaml, validated (defaults for absent keys)."""
    return getattr(load_settings(path), stage)


def resolve(stage: str, settings: StageModel | dict | None = None) -> Any:
    """What every stage function does with its ``settings`` argument.

    ``None`` -> params.yaml's section; a model -> a deep copy of it; a dict -> overrides
    merged over params.yaml's section (validated: unknown keys are errors).
    """
    model = STAGES[stage]
    if isinstance(settings, model):
        return settings.model_copy(deep=True)
    if isinstance(settings, BaseModel):
        raise TypeError(f"expected {model.__name__} for stage {stage!r}, got {type(settings).__name__}")
    base = stage_settings(stage)
    if not settings:
        return base
    from pipeline.config import ConfigError

    try:
        return base.merged(dict(settings))
    except ValidationError as exc:
        raise ConfigError("settings", error_line(exc, stage)) from None


def default(path: str) -> Any:
    """The declared default of one setting by dotted path (``"topics.context.window"``). Library
    helpers take their keyword defaults from here, so each value is declared once (the models
    above) and a helper called bare agrees with the stage. A wrong path fails at import."""
    node: Any = _DECLARED
    for part in path.split("."):
        node = getattr(node, part)
    return copy.deepcopy(node)


_DECLARED = Settings()
