"""Bodies and answers of the chat routes (Langchain-Chatchat 0.2.x's fields, plus ours)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pydantic import BaseModel, Field

from kb_server.api.schemas.citations import citation_fields
from kb_server.api.schemas.retrieval import RetrievalOptions
from kb_server.chat.service import RetrievedDoc
from kb_server.llm.base import SEED_MAX, SEED_MIN, ChatMessage

DOWNLOAD_DOC_PATH = "/knowledge_base/download_doc"


class HistoryMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str

    def to_message(self) -> ChatMessage:
        return ChatMessage(self.role, self.content)


class LlmChatBody(BaseModel):
    query: str = Field(description="The user's message.", examples=["你好"])
    history: list[HistoryMessage] = Field(
        default_factory=list, description="Earlier turns, oldest first."
    )
    stream: bool = Field(False, description="Answer as Server-Sent Events.")
    model_name: str | None = Field(
        None, description="A configured LLM; default: the server's default_llm_model."
    )
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(None, ge=1, description="Most tokens of the answer.")
    prompt_name: str = Field("default", description="A template in configs/prompts.yaml.")
    seed: int | None = Field(
        None, ge=SEED_MIN, le=SEED_MAX, description="Sampling seed, for repeatable answers."
    )

    def history_messages(self) -> list[ChatMessage]:
        return [message.to_message() for message in self.history]

    def request_fields(self) -> dict[str, Any]:
        """What every chat request of kb_server.chat.service takes from this body."""
        return {
            "query": self.query,
            "history": self.history_messages(),
            "model_name": self.model_name,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "prompt_name": self.prompt_name,
            "seed": self.seed,
        }


class RetrievalChatBody(LlmChatBody, RetrievalOptions):
    """A chat answered from retrieved chunks: a knowledge base's or a temporary one's."""

    top_k: int = Field(3, ge=1, le=100, description="How many chunks to answer from.")
    score_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="The minimum `score` a chunk needs (higher is stricter); null keeps every "
        "chunk. The score is a relevance in [0, 1] in every search mode (docs/RETRIEVAL.md).",
    )

    model_name: str | None = Field(
        None,
        description='An LLM, or "extractive" (cited sentences, no LLM); '
        "default: the server's default_llm_model.",
    )
    strict: bool | None = Field(
        None,
        description="Strict mode: answer only from retrieved text, and refuse (with the "
        "prompt's strict_refusal, no model asked) when no chunk passes score_threshold, or "
        "retrieval.strict_min_score when none is given. null: the knowledge base's setting.",
    )


class KbChatBody(RetrievalChatBody):
    query: str = Field(description="The question.", examples=["退货多久能退款？"])
    knowledge_base_name: str | list[str] = Field(
        description="A knowledge base, or several whose chunks are merged by score.",
        examples=["samples"],
    )

    def kb_names(self) -> list[str]:
        name = self.knowledge_base_name
        return [name] if isinstance(name, str) else name


class ChatchatKbChatBody(KbChatBody):
    score_threshold: float = Field(
        1.0,
        ge=0.0,
        le=2.0,
        description="Langchain-Chatchat's threshold: the largest L2 distance between the "
        "normalized question and chunk vectors (lower is stricter). It is applied as the "
        "minimum score 1 - t²/2 (in dense mode the score is the cosine, floored at 0), so 1.0 "
        "keeps score >= 0.5, 0.1 keeps score >= 0.995 and 2.0 keeps every chunk.",
    )

    def min_cosine(self) -> float | None:
        return chatchat_threshold_to_cosine(self.score_threshold)


def chatchat_threshold_to_cosine(l2_distance: float) -> float | None:
    """For unit vectors |a - b|² = 2 - 2·cos(a, b), so distance <= t means cos >= 1 - t²/2."""
    if l2_distance >= 2.0:
        return None
    return 1.0 - l2_distance * l2_distance / 2.0


class SourceDoc(BaseModel):
    number: int = Field(description="The number answers cite it by, as in [1].")
    source: str = Field(description="The file the chunk comes from.")
    kb_name: str
    page: int | None = None
    chunk_id: int
    text: str
    score: float = Field(
        description="Relevance to the question in [0, 1] in every search mode, higher is "
        "better (docs/RETRIEVAL.md)."
    )
    scores: dict[str, float] = Field(
        default_factory=dict,
        description="Each retriever's raw score, as search_docs reports them: dense (cosine), "
        "bm25, keyword, rrf, rerank.",
    )
    url: str = Field(description="Where the source file downloads from (relative).")
    # Pinpoint citation (README "Pinpoint citations"; GET /knowledge_base/chunk_context).
    start_index: int | None = Field(
        None, description="Offset of the chunk in its document's text (a PDF page's)."
    )
    end_index: int | None = Field(
        None, description="Offset just past the chunk: text[start_index:end_index] is it."
    )
    heading_path: list[str] = Field(
        default_factory=list, description="The headings the chunk is under, outermost first."
    )
    page_url: str | None = Field(
        None, description="PDFs: opens the file in the browser at the cited page (relative)."
    )

    @classmethod
    def from_retrieved(cls, doc: RetrievedDoc, url_for: DocUrl) -> SourceDoc:
        url = url_for(doc)
        return cls(
            **citation_fields(doc.metadata, doc.file_name, url),
            number=doc.number,
            source=doc.file_name,
            kb_name=doc.kb_name,
            page=doc.page,
            chunk_id=doc.chunk_id,
            text=doc.text,
            score=doc.score,
            scores=doc.scores,
            url=url,
        )


DocUrl = Callable[[RetrievedDoc], str]


def kb_doc_url(doc: RetrievedDoc) -> str:
    """The download URL of a knowledge base's file (relative to the API)."""
    query = urlencode(
        {"knowledge_base_name": doc.kb_name, "file_name": doc.file_name}, quote_via=quote
    )
    return f"{DOWNLOAD_DOC_PATH}?{query}"


def source_docs(docs: list[RetrievedDoc], url_for: DocUrl = kb_doc_url) -> list[SourceDoc]:
    return [SourceDoc.from_retrieved(doc, url_for) for doc in docs]


QueryRewriteField = Literal["none", "heuristic", "llm"]
SEARCH_QUERY_DOC = (
    "What was searched: the question, or for a follow-up (a question with history) its "
    "standalone rewrite."
)
QUERY_REWRITE_DOC = "How search_query was made: none (the question as asked), heuristic, llm."


class KbChatAnswer(BaseModel):
    answer: str
    docs: list[SourceDoc]
    model: str = Field(description="The model that answered.")
    search_query: str = Field(description=SEARCH_QUERY_DOC)
    query_rewrite: QueryRewriteField = Field(description=QUERY_REWRITE_DOC)
    strict: bool = Field(description="Whether strict mode answered.")


class LlmChatAnswer(BaseModel):
    text: str
    model: str


class ErrorDetail(BaseModel):
    code: str
    message: str


class KbChatFailure(BaseModel):
    """The LLM failed: the error, and still the sources that were retrieved."""

    detail: ErrorDetail
    docs: list[SourceDoc]
