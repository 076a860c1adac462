"""Typed settings: defaults < configs/settings.yaml < environment variables (``KB_`` prefix).

Nested fields use ``__`` in environment variables, e.g. ``KB_SPLITTER__CHUNK_SIZE=400``.
Settings are loaded once by an entry point (CLI, API factory) and passed down; nothing in the
package reads them at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "configs" / "settings.yaml"
DEFAULT_KB_ROOT = PROJECT_ROOT / "knowledge_base"
CONFIG_FILE_ENV = "KB_CONFIG_FILE"


def _from_project_root(path: Path | None) -> Path | None:
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()


# A folder setting: "~" expanded, a relative path taken from the project root.
OptionalProjectPath = Annotated[Path | None, AfterValidator(_from_project_root)]


class SplitterSettings(BaseModel):
    """How documents become chunks; a knowledge base or an upload may override these."""

    chunk_size: int = Field(250, ge=20, le=20_000)
    chunk_overlap: int = Field(50, ge=0)
    zh_title_enhance: bool = False
    title_max_chars: int = Field(30, ge=4, le=200)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> SplitterSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_size ({self.chunk_size})"
            )
        return self


class OcrSettings(BaseModel):
    # frozen: one OCR engine is cached per distinct configuration
    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    det_limit_type: Literal["max", "min"] = "max"
    det_limit_side_len: int = Field(736, ge=32)
    # With "max": where the text found is shorter than this at the detector's scale (or none
    # is found), the image is detected again finer, its longer side at most det_max_side_len
    # (0: never).
    det_small_text_px: int = Field(9, ge=0)
    det_max_side_len: int = Field(1600, ge=32)
    threads: int = Field(2, ge=1)
    min_image_side_px: int = Field(32, ge=1)
    # Which detection and recognition models run (kb_server/documents/ocr_models.py).
    # original: RapidOCR's bundled files. optimized: the same graphs rewritten exactly (fused
    # activations and affine ops), made once per machine. int8: those, with the recognizer's
    # backbone convolutions in int8, calibrated on the images in
    # kb_server/documents/ocr_calibration and used only when it reads those images as the
    # float models do (else optimized).
    model_variant: Literal["original", "optimized", "int8"] = "int8"
    # Where the optimized and int8 models are kept. None: under kb_root (Settings fills it
    # in); an OcrSettings made alone uses the default kb_root's folder.
    export_dir: OptionalProjectPath = None


class DocumentSettings(BaseModel):
    pdf_min_text_chars: int = Field(20, ge=0)
    extra_suffixes: dict[str, str] = Field(default_factory=dict)
    # Upload limits: a larger file is refused (HTTP 413), as is a larger request.
    max_file_mb: float = Field(200.0, gt=0)
    max_request_mb: float = Field(1000.0, gt=0)
    # Office and e-book files are zip archives: reading stops (the file fails) when their
    # members would unpack to more than this (a zip bomb).
    max_unpacked_mb: float = Field(1000.0, gt=0)
    # Images with more pixels are not decoded or OCR'd (the file fails with the reason).
    max_image_pixels: int = Field(50_000_000, ge=1)


class EmbeddingModelSettings(BaseModel):
    """Per-model options, keyed by model name under ``embedding.models``."""

    # A local directory holding the model; tried before MODEL_ROOT, the hub cache and the hub.
    path: Path | None = None
    # Prefix for queries (not documents). None: the model family's default (BGE zh models
    # have one); "" turns it off.
    query_instruction: str | None = None
    # Languages the model was trained for, e.g. ["zh", "en"]. None: known from the model
    # family (all-MiniLM-L6-v2: English only; BGE zh: Chinese and English; unknown: both).
    # Hybrid search trusts the dense ranking less for questions in other languages.
    languages: list[str] | None = None


class EmbeddingSettings(BaseModel):
    model: str = "BAAI/bge-small-zh-v1.5"
    # Loaded, with a loud warning, when ``model`` cannot be found offline. None: fail instead.
    fallback_model: str | None = "sentence-transformers/all-MiniLM-L6-v2"
    # Folder searched for <model name> and <last part of the hub id> sub-folders.
    model_root: Path | None = None
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # torch: sentence-transformers on torch. onnx: the model exported to ONNX (float32), run by
    # ONNX Runtime on the CPU. onnx-int8: the same with int8 weights, used only when it agrees
    # with the float model at export (else float32 ONNX). ONNX backends fall back to torch on a
    # GPU or when the export fails (kb_server/embedding/onnx_export.py).
    backend: Literal["torch", "onnx", "onnx-int8"] = "onnx-int8"
    # Where ONNX exports are kept, one folder per model and fingerprint. None: under kb_root
    # (Settings fills it in); an EmbeddingSettings made alone uses a temporary folder.
    export_dir: OptionalProjectPath = None
    batch_size: int = Field(32, ge=1, le=4096)
    # Threads on CPU: torch's thread count, or for the ONNX backends how many texts (batches)
    # run at once, one thread each; 0: torch's default, or for ONNX every usable core.
    cpu_threads: int = Field(0, ge=0)
    # Seconds an export may spend choosing which projections of the int8 model stay in float
    # (each try quantizes the model: ~3 s for MiniLM on 2 cores); 0: a fixed, safe selection.
    int8_search_seconds: float = Field(180.0, ge=0)
    models: dict[str, EmbeddingModelSettings] = Field(default_factory=dict)


class PgVectorSettings(BaseModel):
    """The ``pg`` store: pgvector tables (and the keyword index) in a PostgreSQL database."""

    # A SQLAlchemy URL (postgresql+psycopg://user:password@host:5432/db); empty: the metadata
    # database (database_url), which must then be PostgreSQL.
    url: str | None = None
    # HNSW build parameters (pgvector's defaults) and the search-time candidate list; a search
    # asks for at least as many candidates as it wants results.
    hnsw_m: int = Field(16, ge=2, le=100)
    hnsw_ef_construction: int = Field(64, ge=4, le=1000)
    hnsw_ef_search: int = Field(100, ge=1, le=1000)
    # Connections each API process keeps open to the store's database.
    pool_size: int = Field(5, ge=1, le=100)


class VectorStoreSettings(BaseModel):
    # The store new knowledge bases use; each KB records its own.
    default_type: Literal["faiss", "pg"] = "faiss"
    # How many KB indexes one process keeps loaded.
    cache_size: int = Field(8, ge=1)
    # FAISS threads; more than the free cores makes searches slower.
    faiss_threads: int = Field(1, ge=1)
    pg: PgVectorSettings = Field(default_factory=PgVectorSettings)


SearchMode = Literal["dense", "bm25", "hybrid"]


class RerankerSettings(BaseModel):
    # A cross-encoder (sentence-transformers CrossEncoder), looked up like the embedding model
    # (embedding.models.<name>.path, embedding.model_root, the Hugging Face cache, the hub).
    # null: no reranking.
    model: str | None = "BAAI/bge-reranker-base"
    # The best this many fused candidates are reranked; the top_k of them are kept.
    candidates: int = Field(20, ge=1, le=200)
    batch_size: int = Field(16, ge=1, le=1024)
    # Longest (question + chunk) the cross-encoder reads, in tokens.
    max_length: int = Field(512, ge=16, le=8192)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"


class RetrievalSettings(BaseModel):
    # dense: embedding similarity; bm25: keyword search over jieba-segmented text; hybrid:
    # both, fused by weighted reciprocal rank fusion. Requests may choose another.
    search_mode: SearchMode = "hybrid"
    # Candidates each retriever hands to the fusion.
    candidates: int = Field(50, ge=1, le=1000)
    # RRF constant: a chunk ranked r by a retriever adds weight / (rrf_k + r).
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(1.0, ge=0.0)
    bm25_weight: float = Field(1.0, ge=0.0)
    # dense_weight is multiplied by this when the embedding model was not trained for the
    # question's language (e.g. a Chinese question to all-MiniLM-L6-v2). 0: such a model's
    # ranking (close to noise) takes no part and the query is not even embedded.
    unfit_dense_factor: float = Field(0.0, ge=0.0, le=1.0)
    # Rerank with reranker.model when it can be loaded; requests may turn it off or on.
    rerank: bool = True
    reranker: RerankerSettings = Field(default_factory=RerankerSettings)
    # Strict mode's minimum score when a request gives no score_threshold (scores are in
    # [0, 1] in every mode).
    strict_min_score: float = Field(0.5, ge=0.0, le=1.0)


class LlmEndpointSettings(BaseModel):
    """An OpenAI-compatible chat endpoint: vLLM, Ollama, Xinference, an online API, our worker."""

    base_url: str
    api_key: str = "EMPTY"
    # The model name the server expects; None: the name this model is configured under.
    model: str | None = None
    context_window: int = Field(8192, ge=256)
    max_tokens: int = Field(1024, ge=1)


class LocalModelSettings(BaseModel):
    """A Hugging Face model directory served by our own worker (kb_server.llm.worker)."""

    path: Path
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    quantization: Literal["none", "8bit", "4bit"] = "none"
    trust_remote_code: bool = False
    host: str = "127.0.0.1"
    port: int = Field(20000, ge=1, le=65535)
    max_new_tokens: int = Field(1024, ge=1)
    # None: the model config's max_position_embeddings (or seq_length).
    context_window: int | None = Field(None, ge=256)


class LlmClientSettings(BaseModel):
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0)
    # Retries on connection failures only (never after the server has answered).
    max_retries: int = Field(2, ge=0, le=10)
    temperature: float = Field(0.7, ge=0.0, le=2.0)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(7861, ge=1, le=65535)
    # Origins allowed by CORS (the web UI's origin when it is served elsewhere); [] disables CORS.
    cors_origins: list[str] = Field(default_factory=list)
    # Admin keys accepted as "Authorization: Bearer <key>" by every route but /health. With []
    # and no key made by "python -m kb_server.cli keys", authentication is off. The web UI
    # sends the first one unless webui.api_key is set.
    api_keys: list[str] = Field(default_factory=list)
    # How long an answer about a database key (valid, revoked, unknown; any key existing) is
    # cached: a revoke or a grant change takes effect within this many seconds.
    key_cache_ttl_s: float = Field(5.0, ge=0, le=3600)


class WebUiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8501, ge=1, le=65535)
    # The API the web UI talks to; None: http://{api.host}:{api.port}.
    api_base_url: str | None = None
    # The key the web UI sends (env KB_WEBUI__API_KEY), e.g. a member key made with
    # "python -m kb_server.cli keys create"; None: the first of api.api_keys.
    api_key: str | None = None


class JobSettings(BaseModel):
    """Background ingestion jobs (kb_server/knowledge/jobs.py)."""

    # An upload larger than this in total, or with more files, runs as a background job
    # (HTTP 202 with a job id); a client may also ask with background=true/false.
    inline_max_mb: float = Field(5.0, ge=0)
    inline_max_files: int = Field(20, ge=1)
    # Jobs one API process runs at a time (jobs on one KB still take turns on its lock).
    workers: int = Field(1, ge=1, le=16)
    # Files indexed per locked step: other writers to the KB get their turn in between.
    files_per_step: int = Field(16, ge=1, le=10_000)
    # A running job's process records that it is alive this often; a job whose record is
    # older than stale_after_s (or whose process on this host is gone) is taken over.
    heartbeat_s: float = Field(5.0, gt=0)
    stale_after_s: float = Field(60.0, gt=0)
    # How often an idle process looks for queued or abandoned jobs.
    poll_s: float = Field(2.0, gt=0)
    # Ended jobs (with their files and events) are deleted this many days after they ended;
    # 0 keeps them forever.
    keep_days: float = Field(30.0, ge=0)


class FileChatSettings(BaseModel):
    # A temporary knowledge base made for file chat is deleted this long after its upload.
    ttl_s: int = Field(3600, ge=60)


class ChatSettings(BaseModel):
    # How a follow-up question (one with history) becomes the query that is searched
    # (kb_server/chat/query_rewrite.py): auto = the LLM rewrites it when one answers (or
    # query_rewrite_model is set), else, or when its output is unusable, the heuristic;
    # heuristic = always the heuristic; off = the question is searched as it is.
    query_rewrite: Literal["auto", "heuristic", "off"] = "auto"
    # The LLM that rewrites follow-ups; None: the one answering the request.
    query_rewrite_model: str | None = None
    # The heuristic reads the entities of this many of the last user turns ...
    rewrite_history_turns: int = Field(2, ge=1, le=20)
    # ... and adds at most this many of them.
    rewrite_max_terms: int = Field(4, ge=1, le=20)
    # An LLM rewrite longer than this (characters) is unusable; the heuristic is used instead.
    rewrite_max_chars: int = Field(200, ge=1, le=4000)
    # Most tokens the LLM may write for a rewrite.
    rewrite_max_tokens: int = Field(96, ge=4, le=1024)
    # Sampling temperature of a rewrite; 0: the most likely one.
    rewrite_temperature: float = Field(0.0, ge=0.0, le=2.0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KB_",
        env_nested_delimiter="__",
        env_parse_none_str="null",
        extra="forbid",
        validate_default=True,
    )

    kb_root: Path = DEFAULT_KB_ROOT
    default_kb: str = "samples"
    splitter: SplitterSettings = Field(default_factory=SplitterSettings)
    documents: DocumentSettings = Field(default_factory=DocumentSettings)
    ocr: OcrSettings = Field(default_factory=OcrSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    vector_store: VectorStoreSettings = Field(default_factory=VectorStoreSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    # Any SQLAlchemy URL; None: a SQLite file ``info.db`` under kb_root.
    database_url: str | None = None
    # The model answering when a request names none; "extractive" needs no LLM at all.
    default_llm_model: str = "extractive"
    llm_models: dict[str, LlmEndpointSettings] = Field(default_factory=dict)
    local_models: dict[str, LocalModelSettings] = Field(default_factory=dict)
    llm: LlmClientSettings = Field(default_factory=LlmClientSettings)
    prompts_file: Path = PROJECT_ROOT / "configs" / "prompts.yaml"
    api: ApiSettings = Field(default_factory=ApiSettings)
    webui: WebUiSettings = Field(default_factory=WebUiSettings)
    file_chat: FileChatSettings = Field(default_factory=FileChatSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)

    def api_base_url(self) -> str:
        """Where clients of this installation (web UI, startup checks) reach the API."""
        if self.webui.api_base_url:
            return self.webui.api_base_url.rstrip("/")
        host = "127.0.0.1" if self.api.host in ("0.0.0.0", "::") else self.api.host
        return f"http://{host}:{self.api.port}"

    @field_validator("kb_root", "prompts_file")
    @classmethod
    def _kb_root_from_project_root(cls, value: Path) -> Path:
        return value if value.is_absolute() else (PROJECT_ROOT / value).resolve()

    @model_validator(mode="after")
    def _export_dir_under_kb_root(self) -> Settings:
        if self.embedding.export_dir is None:
            self.embedding = self.embedding.model_copy(
                update={"export_dir": default_export_dir(self.kb_root)}
            )
        if self.ocr.export_dir is None:
            self.ocr = self.ocr.model_copy(update={"export_dir": default_export_dir(self.kb_root)})
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() passes the YAML file's values as init arguments; the environment
        # must win over them, so it comes first.
        return env_settings, init_settings


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from ``config_file`` (default: $KB_CONFIG_FILE or configs/settings.yaml).

    ``overrides`` replace top-level fields after the environment has been applied; tests and
    CLI flags use them.
    """
    path = config_file or Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))
    values: dict[str, Any] = {}
    if path.is_file():
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of settings, not {type(loaded).__name__}")
        values = loaded or {}
    elif config_file is not None:
        raise FileNotFoundError(f"settings file not found: {path}")
    settings = Settings(**values)
    if overrides:
        merged = {**settings.model_dump(), **overrides}
        old_default = default_export_dir(settings.kb_root)
        for section in ("embedding", "ocr"):
            # An overridden section replaces the whole one; one left alone whose export_dir
            # was derived from kb_root is derived again (from the new kb_root, if it changed).
            if section not in overrides and merged[section]["export_dir"] == old_default:
                merged[section]["export_dir"] = None
        settings = Settings.model_validate(merged)
    return settings


def default_export_dir(kb_root: Path) -> Path:
    """Where ONNX exports of embedding and OCR models go when their export_dir is not set."""
    return kb_root / ".model_exports"
