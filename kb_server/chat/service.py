"""Chat over knowledge bases and plain LLM chat: retrieve -> prompt -> stream + sources.

``kb_chat``/``llm_chat`` validate and retrieve at once (so a caller can still answer 404 or
422), and return a ``ChatStream`` whose events are: answer deltas, then at most one error,
then the docs, always last.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kb_server.chat.prompts import PromptBuilder, PromptTemplates, Reference
from kb_server.chat.query_rewrite import (
    RewriteMethod,
    RewrittenQuery,
    has_user_turn,
    select_rewriter,
)
from kb_server.chat.tokens import token_counter
from kb_server.errors import InvalidInputError, KbError, require_valid_unicode
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.llm.base import ChatMessage, GenerationParams, LLMClient
from kb_server.llm.extractive import EXTRACTIVE_MODEL, ExtractiveAnswerer
from kb_server.llm.registry import build_llm_clients, get_llm_client
from kb_server.settings import SearchMode, Settings


@dataclass(frozen=True)
class RetrievedDoc:
    number: int
    kb_name: str
    file_name: str
    chunk_id: int
    text: str
    score: float
    page: int | None
    metadata: dict[str, Any]
    # Each retriever's raw score (kb_server.knowledge.types.SearchHit.scores).
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True)
class ErrorEvent:
    code: str
    message: str
    http_status: int


@dataclass(frozen=True)
class DocsEvent:
    docs: list[RetrievedDoc]


ChatEvent = AnswerDelta | ErrorEvent | DocsEvent


@dataclass(kw_only=True)
class LlmChatRequest:
    query: str
    history: Sequence[ChatMessage] = ()
    model_name: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    prompt_name: str | None = None
    seed: int | None = None
    top_p: float = 1.0
    stop: Sequence[str] = ()


@dataclass(kw_only=True)
class KbChatRequest(LlmChatRequest):
    kb_names: Sequence[str]
    top_k: int = 3
    # Minimum score kept (its scale depends on the search mode); None keeps all.
    score_threshold: float | None = None
    # None: the settings' retrieval.search_mode and retrieval.rerank.
    search_mode: SearchMode | None = None
    rerank: bool | None = None
    # Strict mode (answer only from chunks that pass a threshold, else refuse); None: strict
    # when any of the named KBs is.
    strict: bool | None = None


@dataclass(frozen=True)
class StrictRule:
    min_score: float
    # None: the prompt template's strict_refusal.
    refusal: str | None


@dataclass
class ChatStream:
    events: Iterator[ChatEvent]
    docs: list[RetrievedDoc] = field(default_factory=list)
    model_name: str = ""
    # What was searched: the question, or its standalone rewrite when it had history.
    search_query: str = ""
    rewrite: RewriteMethod = "none"
    strict: bool = False


@dataclass
class CollectedAnswer:
    answer: str
    docs: list[RetrievedDoc]
    error: ErrorEvent | None


def collect(stream: ChatStream) -> CollectedAnswer:
    parts: list[str] = []
    error: ErrorEvent | None = None
    for event in stream.events:
        if isinstance(event, AnswerDelta):
            parts.append(event.text)
        elif isinstance(event, ErrorEvent):
            error = event
    return CollectedAnswer("".join(parts), stream.docs, error)


class ChatService:
    def __init__(
        self,
        settings: Settings,
        kb_service: KnowledgeBaseService,
        *,
        llm_clients: dict[str, LLMClient] | None = None,
        templates: PromptTemplates | None = None,
    ) -> None:
        self.settings = settings
        self.kb_service = kb_service
        self.llm_clients = build_llm_clients(settings) if llm_clients is None else llm_clients
        self.templates = templates or PromptTemplates.load(settings.prompts_file)

    def model_names(self) -> list[str]:
        return [EXTRACTIVE_MODEL, *sorted(self.llm_clients)]

    def _client(self, model_name: str | None) -> tuple[str, LLMClient | None]:
        name = model_name or self.settings.default_llm_model
        if name == EXTRACTIVE_MODEL:
            return name, None
        return name, get_llm_client(self.llm_clients, name)

    def retrieve(
        self,
        kb_names: Sequence[str],
        query: str,
        top_k: int,
        score_threshold: float | None,
        *,
        search_mode: SearchMode | None = None,
        rerank: bool | None = None,
    ) -> list[RetrievedDoc]:
        """The top_k chunks over all named KBs, merged by score (higher is better)."""
        hits = [
            (kb, hit)
            for kb in kb_names
            for hit in self.kb_service.search(
                kb,
                query,
                top_k=top_k,
                score_threshold=score_threshold,
                search_mode=search_mode,
                rerank=rerank,
            )
        ]
        hits.sort(key=lambda pair: pair[1].score, reverse=True)
        return [
            RetrievedDoc(
                number=number,
                kb_name=kb,
                file_name=hit.chunk.file_name,
                chunk_id=hit.chunk.id,
                text=hit.chunk.text,
                score=hit.score,
                page=hit.chunk.metadata.get("page"),
                metadata=hit.chunk.metadata,
                scores=hit.scores,
            )
            for number, (kb, hit) in enumerate(hits[:top_k], 1)
        ]

    def _params(self, request: KbChatRequest | LlmChatRequest) -> GenerationParams:
        temperature = request.temperature
        return GenerationParams(
            temperature=self.settings.llm.temperature if temperature is None else temperature,
            max_tokens=request.max_tokens,
            seed=request.seed,
            top_p=request.top_p,
            stop=tuple(request.stop),
        )

    def _builder(self, name: str, client: LLMClient, params: GenerationParams) -> PromptBuilder:
        # Room kept for the answer: what the request asks, else a quarter of the window.
        reserve = params.max_tokens or min(1024, client.context_window // 4)
        return PromptBuilder(token_counter(self.settings, name), client.context_window, reserve)

    def kb_chat(self, request: KbChatRequest) -> ChatStream:
        _check_texts(request)
        if not request.kb_names:
            raise InvalidInputError("name at least one knowledge base")
        name, client = self._client(request.model_name)
        template = self.templates.kb(request.prompt_name)
        strict = self.strict_rule(request)
        threshold = request.score_threshold
        if strict is not None and threshold is None:
            threshold = strict.min_score
        searched = self.search_query(request, client)
        docs = self.retrieve(
            request.kb_names,
            searched.text,
            request.top_k,
            threshold,
            search_mode=request.search_mode,
            rerank=request.rerank,
        )
        no_answer = template.no_docs
        if strict is not None:
            no_answer = strict.refusal or template.strict_refusal or template.no_docs
            template = template.strict()
        references = [Reference(d.number, d.file_name, d.text, d.page) for d in docs]
        if not docs:
            events: Iterator[ChatEvent] = _answer_then_docs(iter([no_answer]), docs)
        elif client is None:
            embedder = self.kb_service.embedder_for(self.kb_service.kb_row(docs[0].kb_name))
            answerer = ExtractiveAnswerer(embedder, self.templates.extractive)
            answer = answerer.answer(searched.text, references) or no_answer
            events = _answer_then_docs(iter([answer]), docs)
        else:
            params = self._params(request)
            prompt = self._builder(name, client, params).kb_chat(
                template, references, request.history, request.query
            )
            events = _answer_then_docs(client.stream(prompt.messages, params), docs)
        return ChatStream(events, docs, name, searched.text, searched.method, strict is not None)

    def strict_rule(self, request: KbChatRequest) -> StrictRule | None:
        """Strict mode's rule for this request, None when it is off: the request's ``strict``,
        else strict when any named KB is; the strictest threshold and the first refusal of
        the KBs' policies."""
        policies = [self.kb_service.get_kb(kb).chat_policy for kb in request.kb_names]
        strict = request.strict if request.strict is not None else any(p.strict for p in policies)
        if not strict:
            return None
        setting = self.settings.retrieval.strict_min_score
        min_score = max(
            setting if p.strict_min_score is None else p.strict_min_score for p in policies
        )
        return StrictRule(min_score, next((p.refusal for p in policies if p.refusal), None))

    def search_query(self, request: KbChatRequest, answering: LLMClient | None) -> RewrittenQuery:
        """The query to search: a follow-up rewritten per ``chat.query_rewrite``."""
        if not has_user_turn(request.history):
            return RewrittenQuery(request.query, "none")
        client = answering
        if self.settings.chat.query_rewrite_model:
            _, client = self._client(self.settings.chat.query_rewrite_model)
        rewriter = select_rewriter(
            self.settings.chat, self.templates.query_rewrite, client, seed=request.seed
        )
        if rewriter is None:
            return RewrittenQuery(request.query, "none")
        return rewriter.rewrite(request.query, request.history)

    def llm_chat(self, request: LlmChatRequest) -> ChatStream:
        _check_texts(request)
        name, client = self._client(request.model_name)
        if client is None:
            raise InvalidInputError(
                "the extractive model answers knowledge-base questions only; name an LLM"
            )
        params = self._params(request)
        system = self.templates.llm(request.prompt_name).system
        prompt = self._builder(name, client, params).chat(system, request.history, request.query)
        return ChatStream(_answer_then_docs(client.stream(prompt.messages, params), []), [], name)


def _answer_then_docs(deltas: Iterator[str], docs: list[RetrievedDoc]) -> Iterator[ChatEvent]:
    try:
        for delta in deltas:
            if delta:
                yield AnswerDelta(delta)
    except KbError as exc:  # LlmUnavailableError, LlmRequestError, a prompt that cannot fit
        yield ErrorEvent(exc.code, exc.message, exc.http_status)
    finally:
        close = getattr(deltas, "close", None)
        if close is not None:
            close()
    yield DocsEvent(docs)


def _check_texts(request: LlmChatRequest) -> None:
    if not request.query.strip():
        raise InvalidInputError("the question is empty")
    require_valid_unicode(request.query, "the question")
    for message in request.history:
        require_valid_unicode(message.content, "the history")
