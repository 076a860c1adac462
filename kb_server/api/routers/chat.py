"""Chat routes: knowledge-base chat (ours and Langchain-Chatchat's path) and plain LLM chat.

Chatchat's chat answers were never enveloped, so these routes are not either. A request is
validated and retrieved before any streaming starts, so a bad one still gets a real status.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from kb_server.api.deps import ChatDep
from kb_server.api.schemas.chat import (
    ChatchatKbChatBody,
    DocUrl,
    ErrorDetail,
    KbChatAnswer,
    KbChatBody,
    KbChatFailure,
    LlmChatAnswer,
    LlmChatBody,
    kb_doc_url,
    source_docs,
)
from kb_server.api.sse import EventStreamResponse, close_iterator, sse_data
from kb_server.chat.service import (
    AnswerDelta,
    ChatEvent,
    ChatService,
    ChatStream,
    DocsEvent,
    ErrorEvent,
    KbChatRequest,
    LlmChatRequest,
    collect,
)

router = APIRouter(tags=["chat"])

_SSE_DOC = (
    "With stream=true: text/event-stream, each `data:` one JSON object: the deltas "
    '`{"%s": "..."}`, then at most one `{"error": {"code", "message", "status"}}`%s.'
)
_KB_CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}},
    503: {"model": KbChatFailure, "description": "The LLM is unreachable; docs still come."},
}


@router.post(
    "/knowledge_base/chat",
    response_model=KbChatAnswer,
    responses=_KB_CHAT_RESPONSES,
    description="Answer a question from one or several knowledge bases, with its sources. "
    + _SSE_DOC
    % ("answer", ', then `{"docs": [...], "search_query", "query_rewrite", "strict"}` last'),
)
def knowledge_base_chat(body: KbChatBody, chat: ChatDep) -> Response:
    return _kb_chat(chat, body, body.score_threshold)


@router.post(
    "/chat/knowledge_base_chat",
    response_model=KbChatAnswer,
    responses=_KB_CHAT_RESPONSES,
    description="Langchain-Chatchat 0.2.x's path for /knowledge_base/chat; score_threshold "
    "keeps Chatchat's meaning (an L2 distance, see the body schema).",
)
def chatchat_knowledge_base_chat(body: ChatchatKbChatBody, chat: ChatDep) -> Response:
    return _kb_chat(chat, body, body.min_cosine())


@router.post(
    "/chat/chat",
    response_model=LlmChatAnswer,
    responses={200: {"content": {"text/event-stream": {}}}},
    description="Chat with an LLM, no knowledge base. " + _SSE_DOC % ("text", ""),
)
def llm_chat(body: LlmChatBody, chat: ChatDep) -> Response:
    stream = chat.llm_chat(LlmChatRequest(**body.request_fields()))
    if body.stream:
        return EventStreamResponse(_sse_events(stream, "text", docs_url=None))
    result = collect(stream)
    if result.error is not None:
        return JSONResponse(
            {"detail": _detail(result.error).model_dump()}, status_code=result.error.http_status
        )
    return JSONResponse(LlmChatAnswer(text=result.answer, model=stream.model_name).model_dump())


def _kb_chat(
    chat: ChatService,
    body: KbChatBody,
    min_cosine: float | None,
    url_for: DocUrl = kb_doc_url,
) -> Response:
    stream = chat.kb_chat(
        KbChatRequest(
            **body.request_fields(),
            kb_names=body.kb_names(),
            top_k=body.top_k,
            score_threshold=min_cosine,
            search_mode=body.search_mode,
            rerank=body.rerank,
            strict=body.strict,
        )
    )
    if body.stream:
        return EventStreamResponse(_sse_events(stream, "answer", docs_url=url_for))
    result = collect(stream)
    docs = source_docs(result.docs, url_for)
    if result.error is not None:
        failure = KbChatFailure(detail=_detail(result.error), docs=docs)
        return JSONResponse(failure.model_dump(), status_code=result.error.http_status)
    answer = KbChatAnswer(
        answer=result.answer, docs=docs, model=stream.model_name, **_search(stream)
    )
    return JSONResponse(answer.model_dump())


def _search(stream: ChatStream) -> dict[str, Any]:
    """What a KB chat reports beside its docs: what was searched, and whether it was strict."""
    return {
        "search_query": stream.search_query,
        "query_rewrite": stream.rewrite,
        "strict": stream.strict,
    }


def _sse_events(stream: ChatStream, delta_field: str, *, docs_url: DocUrl | None) -> Iterator[str]:
    """SSE lines of a chat; ``docs_url`` None: a chat without sources sends no docs event."""
    try:
        for event in stream.events:
            payload = _event_payload(event, delta_field, docs_url)
            if isinstance(event, DocsEvent) and payload is not None:
                payload.update(_search(stream))
            if payload is not None:
                yield sse_data(payload)
    finally:
        close_iterator(stream.events)


def _event_payload(
    event: ChatEvent, delta_field: str, docs_url: DocUrl | None
) -> dict[str, Any] | None:
    if isinstance(event, AnswerDelta):
        return {delta_field: event.text}
    if isinstance(event, ErrorEvent):
        return {"error": {**_detail(event).model_dump(), "status": event.http_status}}
    if isinstance(event, DocsEvent) and docs_url is not None:
        return {"docs": [doc.model_dump() for doc in source_docs(event.docs, docs_url)]}
    return None


def _detail(event: ErrorEvent) -> ErrorDetail:
    return ErrorDetail(code=event.code, message=event.message)
