"""Typed shapes of the API answers the web UI reads (a subset of docs/API.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ApiModel(BaseModel):
    # The API may add fields; the UI reads the ones it knows.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class Health(ApiModel):
    status: str
    version: str
    knowledge_bases: int
    default_model: str


class KbDetails(ApiModel):
    name: str
    description: str = ""
    vs_type: str = ""
    embed_model: str = ""
    file_count: int = 0
    chunk_count: int = 0
    chunk_size: int = 0
    chunk_overlap: int = 0
    zh_title_enhance: bool = False
    created_at: str = ""
    strict: bool = False


class FileDetails(ApiModel):
    file_name: str
    ext: str = ""
    loader: str = ""
    size: int = 0
    mtime: float = 0.0
    chunk_count: int = 0
    status: str = ""
    error: str = ""
    updated_at: str | None = None


class FileResult(ApiModel):
    file_name: str
    status: str
    chunks: int = 0
    reason: str = ""


class DocsResult(ApiModel):
    failed_files: dict[str, str] = Field(default_factory=dict)
    files: list[FileResult] = Field(default_factory=list)
    # Set when the server runs the indexing as a background job (HTTP 202).
    job_id: str | None = None


class JobFile(ApiModel):
    file_name: str
    stage: str
    detail: str = ""
    done: int = 0
    total: int = 0
    chunks: int = 0


class Job(ApiModel):
    """An ingestion job (GET /knowledge_base/jobs/{id})."""

    id: str
    knowledge_base_name: str
    kind: str
    status: str
    error: str = ""
    cancel_requested: bool = False
    created_at: str = ""
    counts: dict[str, int] = Field(default_factory=dict)
    files_total: int = 0
    chunks_stored: int = 0
    progress: float = 0.0
    eta_seconds: float | None = None
    files: list[JobFile] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


class Chunk(ApiModel):
    id: int
    file_name: str
    seq: int
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchDoc(ApiModel):
    page_content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    id: int
    score: float


class SourceDoc(ApiModel):
    number: int
    source: str
    kb_name: str = ""
    page: int | None = None
    chunk_id: int | None = None
    text: str = ""
    score: float | None = None
    url: str = ""
    start_index: int | None = None
    end_index: int | None = None
    heading_path: list[str] = Field(default_factory=list)
    page_url: str | None = None


class ChunkContext(ApiModel):
    """GET /knowledge_base/chunk_context: a cited chunk within its page or paragraph."""

    text: str
    highlight_start: int
    highlight_end: int
    page: int | None = None
    heading_path: list[str] = Field(default_factory=list)
    truncated_before: bool = False
    truncated_after: bool = False


class TempDocs(ApiModel):
    id: str
    failed_files: dict[str, str] = Field(default_factory=dict)


class RecreateEvent(ApiModel):
    code: int = 200
    msg: str = ""
    total: int = 0
    finished: int = 0
    doc: str = ""
    status: str = ""
    summary: dict[str, Any] | None = None


class Conversation(ApiModel):
    id: str
    name: str
    created_at: str = ""
    updated_at: str = ""
    message_count: int = 0


class Message(ApiModel):
    id: str
    role: str
    content: str
    docs: list[dict[str, Any]] = Field(default_factory=list)
    model: str | None = None
    feedback: int | None = None
    feedback_reason: str | None = None
    created_at: str = ""

    def source_docs(self) -> list[SourceDoc]:
        """The stored docs that still read as sources; other shapes are skipped."""
        docs = []
        for doc in self.docs:
            try:
                docs.append(SourceDoc.model_validate(doc))
            except ValidationError:
                continue
        return docs


# -- streamed chat events ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChatDelta:
    text: str


@dataclass(frozen=True)
class ChatFailure:
    """An error the server reported inside a stream (the HTTP status was already 200)."""

    status: int
    code: str
    message: str


@dataclass(frozen=True)
class ChatDocs:
    docs: list[SourceDoc]
    # What was searched (a follow-up's standalone rewrite); None from servers that omit it.
    search_query: str | None = None


ChatEvent = ChatDelta | ChatFailure | ChatDocs


@dataclass(frozen=True)
class ChatParams:
    """What every chat request shares; ``top_k``/``score_threshold`` only apply to KB/file chat."""

    model_name: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    history: tuple[tuple[str, str], ...] = ()
    top_k: int = 3
    score_threshold: float | None = None
    # None: the server's default (retrieval.search_mode).
    search_mode: str | None = None
    prompt_name: str = "default"
    # Strict mode for this question; None: the knowledge base's own setting.
    strict: bool | None = None

    def body(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "history": [{"role": role, "content": content} for role, content in self.history],
            "prompt_name": self.prompt_name,
            "stream": True,
        }

    def retrieval_body(self) -> dict[str, Any]:
        """body() plus what chats answered from retrieved chunks (KB and file chat) take."""
        return {
            "top_k": self.top_k,
            "score_threshold": self.score_threshold,
            "search_mode": self.search_mode,
            "strict": self.strict,
            **self.body(),
        }
