"""What the knowledge-base service returns and raises."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kb_server.errors import KbError
from kb_server.settings import SplitterSettings


class KbNotFoundError(KbError):
    code = "kb_not_found"
    http_status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"knowledge base {name!r} does not exist")
        self.name = name


class KbExistsError(KbError):
    code = "kb_exists"
    http_status = 409

    def __init__(self, name: str) -> None:
        super().__init__(f"knowledge base {name!r} already exists")
        self.name = name


class KbFileNotFoundError(KbError):
    code = "file_not_found"
    http_status = 404

    def __init__(self, kb_name: str, file_name: str) -> None:
        super().__init__(f"file {file_name!r} is not in knowledge base {kb_name!r}")
        self.file_name = file_name


class KbFileExistsError(KbError):
    code = "file_exists"
    http_status = 409

    def __init__(self, kb_name: str, file_name: str) -> None:
        super().__init__(
            f"file {file_name!r} already exists in knowledge base {kb_name!r}; "
            "upload with override to replace it"
        )
        self.file_name = file_name


class ChunkNotFoundError(KbError):
    code = "chunk_not_found"
    http_status = 404


@dataclass(frozen=True)
class ChatPolicy:
    """How chats over a KB answer when a request does not say (table kb_chat_policy)."""

    # Strict mode: answer only from chunks that pass a threshold, else refuse.
    strict: bool = False
    # Strict mode's threshold; None: the setting retrieval.strict_min_score.
    strict_min_score: float | None = None
    # Strict mode's refusal; None: the prompt template's strict_refusal.
    refusal: str | None = None


@dataclass(frozen=True)
class KbInfo:
    name: str
    description: str
    vs_type: str
    embed_model: str
    splitter: SplitterSettings
    file_count: int
    chunk_count: int
    created_at: datetime
    chat_policy: ChatPolicy = field(default_factory=ChatPolicy)


@dataclass(frozen=True)
class FileInfo:
    file_name: str
    ext: str
    loader: str
    size: int
    mtime: float
    sha256: str
    chunk_count: int
    status: str
    error: str
    splitter: SplitterSettings
    updated_at: datetime


@dataclass(frozen=True)
class ChunkInfo:
    id: int
    file_name: str
    seq: int
    text: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class SearchHit:
    """A retrieved chunk and how relevant it is; higher is better in every mode.

    ``score`` is in [0, 1] in every mode and is what ``score_threshold`` filters on
    (docs/RETRIEVAL.md): the cosine similarity floored at 0 in dense mode, the normalized
    keyword score in bm25 mode, their weighted blend in hybrid mode, and the reranker's
    probability when a reranker ordered the hits.
    ``scores`` holds each retriever's own figure: "dense" (cosine), "bm25" (raw BM25),
    "keyword" (normalized BM25), "rrf" (fused rank score), "rerank".
    """

    chunk: ChunkInfo
    score: float
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class IngestReport:
    files_indexed: list[str] = field(default_factory=list)
    files_unchanged: list[str] = field(default_factory=list)
    files_failed: dict[str, str] = field(default_factory=dict)
    files_removed: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    # Chunks whose vectors were kept: those of unchanged files, and those of changed files
    # whose text is the same as before.
    chunks_reused: int = 0
    # Images handed to OCR (scanned PDF pages' images, image files, images in documents).
    images_ocred: int = 0
    # Ingest time without loading the embedding model, which is counted apart.
    seconds: float = 0.0
    model_load_seconds: float = 0.0
    # Busy seconds per stage (INGEST_STAGES). Files are read in a thread beside embedding,
    # so stages overlap and their sum may exceed ``seconds``.
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def merge(self, other: IngestReport) -> None:
        self.files_indexed += other.files_indexed
        self.files_unchanged += other.files_unchanged
        self.files_failed.update(other.files_failed)
        self.files_removed += other.files_removed
        self.chunks_embedded += other.chunks_embedded
        self.chunks_reused += other.chunks_reused
        self.images_ocred += other.images_ocred
        self.seconds += other.seconds
        self.model_load_seconds += other.model_load_seconds
        for stage, seconds in other.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds


# Where ingest time goes: hashing and parsing files (OCR excepted), OCR, splitting into
# chunks, cutting chunks into keyword terms, embedding, and storing (database rows, vector
# index, keyword index).
INGEST_STAGES = ("read", "ocr", "split", "analyze", "embed", "store")


@dataclass
class CheckReport:
    """Differences between the database, the vector index, the keyword index and the content
    folder of a KB."""

    kb_name: str
    chunks_without_vectors: list[int] = field(default_factory=list)
    vectors_without_chunks: list[int] = field(default_factory=list)
    chunks_without_keywords: list[int] = field(default_factory=list)
    keywords_without_chunks: list[int] = field(default_factory=list)
    files_without_content: list[str] = field(default_factory=list)
    content_without_rows: list[str] = field(default_factory=list)
    failed_files: dict[str, str] = field(default_factory=dict)

    def problems(self) -> dict[str, list[int] | list[str]]:
        """Each kind of difference, by a label for people, with what was found of it."""
        return {
            "chunks without vectors": self.chunks_without_vectors,
            "vectors without chunks": self.vectors_without_chunks,
            "chunks without keyword entries": self.chunks_without_keywords,
            "keyword entries without chunks": self.keywords_without_chunks,
            "files in the database but not in content/": self.files_without_content,
            "files in content/ but not in the database": self.content_without_rows,
        }

    @property
    def consistent(self) -> bool:
        return not any(self.problems().values())


class IngestProgress(Protocol):
    """Receives progress while files are ingested (the CLI draws tqdm bars from it; a job
    records it). Any method may raise to stop the ingest: groups already stored stay stored.
    """

    def files_planned(self, total: int) -> None: ...

    def file_stage(self, file_name: str, stage: str, done: int, total: int) -> None:
        """A file entered ``stage`` (one of FILE_STAGES); ``done``/``total`` count its pages
        in "ocr" and the chunks of its group in "embedding", else 0/0."""

    def file_done(self, file_name: str, status: str, reason: str = "", chunks: int = 0) -> None:
        """The file is done: indexed or unchanged (with its chunk count), or failed (with
        the reason)."""

    def embedding_planned(self, total_chunks: int) -> None:
        """``total_chunks`` more chunks are queued for embedding (called as files arrive)."""

    def chunks_embedded(self, count: int) -> None: ...


# Stages a file goes through while it is ingested, in order; "ocr" only for scanned pages.
FILE_STAGES = ("loading", "ocr", "splitting", "embedding")


class NoProgress:
    def files_planned(self, total: int) -> None:
        pass

    def file_stage(self, file_name: str, stage: str, done: int, total: int) -> None:
        pass

    def file_done(self, file_name: str, status: str, reason: str = "", chunks: int = 0) -> None:
        pass

    def embedding_planned(self, total_chunks: int) -> None:
        pass

    def chunks_embedded(self, count: int) -> None:
        pass


class SerializedProgress:
    """Passes every call to ``inner`` under one lock: an ingest reports from its reader
    thread and its embedding thread, and progress sinks (tqdm bars, job records) are not
    thread-safe."""

    def __init__(self, inner: IngestProgress) -> None:
        self._inner = inner
        self._lock = threading.Lock()

    def files_planned(self, total: int) -> None:
        with self._lock:
            self._inner.files_planned(total)

    def file_stage(self, file_name: str, stage: str, done: int, total: int) -> None:
        with self._lock:
            self._inner.file_stage(file_name, stage, done, total)

    def file_done(self, file_name: str, status: str, reason: str = "", chunks: int = 0) -> None:
        with self._lock:
            self._inner.file_done(file_name, status, reason, chunks)

    def embedding_planned(self, total_chunks: int) -> None:
        with self._lock:
            self._inner.embedding_planned(total_chunks)

    def chunks_embedded(self, count: int) -> None:
        with self._lock:
            self._inner.chunks_embedded(count)
