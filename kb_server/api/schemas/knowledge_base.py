"""Request and response bodies of the knowledge-base routes (Langchain-Chatchat 0.2.x names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kb_server.api.envelope import Envelope
from kb_server.api.schemas.retrieval import RetrievalOptions
from kb_server.db.conversations import as_utc
from kb_server.errors import InvalidInputError
from kb_server.knowledge.types import ChatPolicy, ChunkInfo, FileInfo, KbInfo, SearchHit
from kb_server.settings import SplitterSettings
from kb_server.stores.registry import VECTOR_STORES

# A file in the content folder that was uploaded with to_vector_store=false: not indexed yet.
SAVED = "saved"

KbName = Annotated[str, Field(description="知识库名称")]


def merge_splitter(
    base: SplitterSettings,
    chunk_size: int | None,
    chunk_overlap: int | None,
    zh_title_enhance: bool | None,
) -> SplitterSettings | None:
    """``base`` with the given fields replaced; None when none is given (keep what applies)."""
    given = {
        key: value
        for key, value in (
            ("chunk_size", chunk_size),
            ("chunk_overlap", chunk_overlap),
            ("zh_title_enhance", zh_title_enhance),
        )
        if value is not None
    }
    if not given:
        return None
    try:
        return SplitterSettings.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        reasons = "; ".join(error["msg"] for error in exc.errors())
        raise InvalidInputError(f"invalid chunk settings: {reasons}") from exc


def known_vs_type(value: str) -> str:
    if value not in VECTOR_STORES:
        raise ValueError(f"unknown vector store type {value!r}; known: {sorted(VECTOR_STORES)}")
    return value


class SplitterFields(BaseModel):
    """Chunk settings a request may give; unset fields keep the knowledge base's settings."""

    chunk_size: int | None = Field(None, description="单段文本最大长度（字符）")
    chunk_overlap: int | None = Field(None, description="相邻文本重合长度（字符）")
    zh_title_enhance: bool | None = Field(None, description="是否开启中文标题加强")

    def splitter(self, base: SplitterSettings) -> SplitterSettings | None:
        return merge_splitter(base, self.chunk_size, self.chunk_overlap, self.zh_title_enhance)


# -- knowledge bases ---------------------------------------------------------------------------


class KbDetails(BaseModel):
    name: str
    description: str
    kb_info: str = Field(description="Chatchat's name for the description")
    vs_type: str
    embed_model: str
    file_count: int
    chunk_count: int
    chunk_size: int
    chunk_overlap: int
    zh_title_enhance: bool
    # Sent in UTC with the zone, which OpenAPI's date-time requires (SQLite drops it).
    created_at: datetime
    strict: bool = Field(description="Chats over this KB answer in strict mode by default")
    strict_min_score: float | None = Field(
        description="Strict mode's threshold; null: the server's retrieval.strict_min_score"
    )
    strict_refusal: str | None = Field(
        description="Strict mode's refusal; null: the prompt template's strict_refusal"
    )

    @classmethod
    def of(cls, info: KbInfo) -> KbDetails:
        return cls(
            name=info.name,
            description=info.description,
            kb_info=info.description,
            vs_type=info.vs_type,
            embed_model=info.embed_model,
            file_count=info.file_count,
            chunk_count=info.chunk_count,
            chunk_size=info.splitter.chunk_size,
            chunk_overlap=info.splitter.chunk_overlap,
            zh_title_enhance=info.splitter.zh_title_enhance,
            created_at=as_utc(info.created_at),
            strict=info.chat_policy.strict,
            strict_min_score=info.chat_policy.strict_min_score,
            strict_refusal=info.chat_policy.refusal,
        )


class ChatPolicyFields(BaseModel):
    """A KB's strict mode, the default of chats that do not say (their ``strict`` field)."""

    strict: bool | None = Field(
        None, description="严格模式：只依据检索到的内容回答，没有内容达到阈值时拒答"
    )
    strict_min_score: float | None = Field(
        None, ge=0.0, le=1.0, description="严格模式的相关度阈值；null：服务器设置"
    )
    strict_refusal: str | None = Field(
        None, min_length=1, max_length=1000, description="严格模式的拒答语；null：提示词模板的"
    )

    def chat_policy(self, current: ChatPolicy) -> ChatPolicy | None:
        """``current`` with the fields this request sets; None when it sets none."""
        given = self.model_fields_set & {"strict", "strict_min_score", "strict_refusal"}
        if not given:
            return None
        return ChatPolicy(
            strict=bool(self.strict) if "strict" in given else current.strict,
            strict_min_score=self.strict_min_score
            if "strict_min_score" in given
            else current.strict_min_score,
            refusal=self.strict_refusal if "strict_refusal" in given else current.refusal,
        )


class CreateKbRequest(SplitterFields, ChatPolicyFields):
    knowledge_base_name: KbName
    vector_store_type: str | None = Field(
        None, description="faiss or pg; None: the server's vector_store.default_type"
    )
    embed_model: str | None = Field(None, description="None: the configured embedding model")
    kb_info: str = ""
    description: str = Field("", description="Same as kb_info; wins when both are given")

    @field_validator("vector_store_type")
    @classmethod
    def _known_vs_type(cls, value: str | None) -> str | None:
        return None if value is None else known_vs_type(value)


class KbNameBody(BaseModel):
    knowledge_base_name: KbName


class UpdateInfoRequest(ChatPolicyFields):
    """Changes the description, the strict-mode fields, or both; what is left out is kept."""

    knowledge_base_name: KbName
    kb_info: str | None = Field(None, description="知识库介绍；null：不修改")


class RecreateRequest(SplitterFields):
    """Chunk settings are accepted for Chatchat's clients; each file keeps its recorded ones."""

    knowledge_base_name: KbName
    allow_empty_kb: bool = True
    vs_type: str | None = None
    embed_model: str | None = Field(None, description="None: keep the KB's model")
    not_refresh_vs_cache: bool = False
    force: bool = Field(False, description="Embed every file again, changed or not")

    @field_validator("vs_type")
    @classmethod
    def _known_vs_type(cls, value: str | None) -> str | None:
        return None if value is None else known_vs_type(value)


# -- files -------------------------------------------------------------------------------------


class FileDetails(BaseModel):
    file_name: str
    ext: str
    loader: str
    size: int
    mtime: float
    chunk_count: int
    status: str = Field(description="indexed | failed | saved (in the content folder only)")
    error: str
    chunk_size: int | None
    chunk_overlap: int | None
    zh_title_enhance: bool | None
    updated_at: datetime | None

    @classmethod
    def of(cls, info: FileInfo) -> FileDetails:
        return cls(
            file_name=info.file_name,
            ext=info.ext,
            loader=info.loader,
            size=info.size,
            mtime=info.mtime,
            chunk_count=info.chunk_count,
            status=info.status,
            error=info.error,
            chunk_size=info.splitter.chunk_size,
            chunk_overlap=info.splitter.chunk_overlap,
            zh_title_enhance=info.splitter.zh_title_enhance,
            updated_at=as_utc(info.updated_at),
        )

    @classmethod
    def saved_only(cls, file_name: str, size: int, mtime: float) -> FileDetails:
        ext = "." + file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
        return cls(
            file_name=file_name,
            ext=ext,
            loader="",
            size=size,
            mtime=mtime,
            chunk_count=0,
            status=SAVED,
            error="",
            chunk_size=None,
            chunk_overlap=None,
            zh_title_enhance=None,
            updated_at=None,
        )


class ListFilesResponse(Envelope[list[str]]):
    """``data``: the file names Chatchat's clients iterate; ``files``: their details."""

    files: list[FileDetails] = Field(default_factory=list)


class FileResult(BaseModel):
    file_name: str
    status: Literal["indexed", "unchanged", "saved", "failed"]
    chunks: int = 0
    reason: str = ""


class DocsResult(BaseModel):
    failed_files: dict[str, str] = Field(default_factory=dict)
    files: list[FileResult] = Field(default_factory=list)


class DeleteDocsRequest(BaseModel):
    knowledge_base_name: KbName
    file_names: list[str]
    delete_content: bool = Field(False, description="Also delete the files from the folder")
    not_refresh_vs_cache: bool = False


class UpdateDocsRequest(SplitterFields):
    knowledge_base_name: KbName
    file_names: list[str]
    override_custom_docs: bool = False
    docs: Any = Field(None, description="Chatchat's custom docs: accepted and ignored")
    not_refresh_vs_cache: bool = False


# -- search and chunks -------------------------------------------------------------------------


class SearchDocsRequest(RetrievalOptions):
    query: str = Field(min_length=1)
    knowledge_base_name: KbName
    top_k: int = Field(3, ge=1, le=100)
    score_threshold: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="Minimum `score` kept; the score is a relevance in [0, 1] in every mode, "
        "higher is more relevant (docs/RETRIEVAL.md). Values >= 1 keep every hit: Chatchat's "
        "clients send 1.0, which on its distance scale means no filter.",
    )
    file_name: str | list[str] | None = Field(None, description="Only chunks of these files")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Accepted and ignored")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is empty")
        return value

    def min_score(self) -> float | None:
        threshold = self.score_threshold
        return None if threshold is None or threshold >= 1.0 else threshold

    def file_names(self) -> list[str] | None:
        names = [self.file_name] if isinstance(self.file_name, str) else self.file_name
        names = [name for name in names or [] if name]
        return names or None


class SearchDoc(BaseModel):
    """A LangChain-shaped document, as Chatchat's search_docs returns them."""

    page_content: str
    metadata: dict[str, Any]
    type: Literal["Document"] = "Document"
    id: int = Field(description="chunk id (update_chunk takes it)")
    score: float = Field(
        description="relevance in [0, 1] in every search mode, higher is better; what "
        "score_threshold filters on",
    )
    scores: dict[str, float] = Field(
        default_factory=dict,
        description="each retriever's raw score: dense (cosine, in [-1, 1]), bm25 (raw BM25), "
        "keyword (BM25 scaled to [0, 1]), rrf (fused rank score), rerank (probability)",
    )

    @classmethod
    def of(cls, hit: SearchHit) -> SearchDoc:
        chunk = hit.chunk
        metadata = {**chunk.metadata, "file_name": chunk.file_name, "seq": chunk.seq}
        return cls(
            page_content=chunk.text,
            metadata=metadata,
            id=chunk.id,
            score=hit.score,
            scores=hit.scores,
        )


class ChunkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    file_name: str
    seq: int
    text: str
    metadata: dict[str, Any]

    @classmethod
    def of(cls, info: ChunkInfo) -> ChunkOut:
        return cls.model_validate(info)


class UpdateChunkRequest(BaseModel):
    knowledge_base_name: KbName
    chunk_id: int
    text: str = Field(description="新的文本；不能为空")
