"""OpenAI-compatible ``/v1/models`` and ``/v1/chat/completions``.

A plain model name goes to that LLM; ``kb/<name>`` answers from knowledge base ``<name>`` and
adds the sources as an extra ``docs`` field (and what was searched as ``search_query``), so any
OpenAI client can use a knowledge base.
System messages are ignored: the server's prompt templates own the system text (the KB one
carries the grounding and injection rules, which a client must not be able to drop).
Errors use OpenAI's shape ``{"error": {"message", "type", "code"}}`` with real statuses, which
its clients turn into the matching exception (404 -> NotFoundError, 503 -> a server error).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from kb_server.api.deps import ChatDep, ContainerDep
from kb_server.api.schemas.chat import SourceDoc, source_docs
from kb_server.api.schemas.openai_compat import (
    KB_MODEL_PREFIX,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionBody,
    Choice,
    CompletionUsage,
    ModelCard,
    ModelList,
    OpenAIError,
    OpenAIErrorBody,
)
from kb_server.api.sse import SSE_DONE, EventStreamResponse, close_iterator, sse_data
from kb_server.chat.prompts import estimate_tokens
from kb_server.chat.service import (
    AnswerDelta,
    ChatEvent,
    ChatService,
    ChatStream,
    ErrorEvent,
    KbChatRequest,
    LlmChatRequest,
    collect,
)
from kb_server.db.conversations import as_utc
from kb_server.errors import InvalidInputError, KbError


def openai_error_body(
    status: int, message: str, code: str, docs: list[SourceDoc] | None = None
) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = OpenAIError(error=OpenAIErrorBody(message=message, type=kind, code=code), docs=docs)
    return body.model_dump(exclude=_no_docs(docs))


def openai_error(
    status: int, message: str, code: str, docs: list[SourceDoc] | None = None
) -> JSONResponse:
    return JSONResponse(openai_error_body(status, message, code, docs), status_code=status)


def _no_docs(docs: list[SourceDoc] | None) -> set[str]:
    """Leaves "docs" out of answers of plain models, which have none."""
    return {"docs"} if docs is None else set()


class OpenAIErrorRoute(APIRoute):
    """Answers this router's errors in OpenAI's shape instead of the app's ``detail``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except KbError as exc:
                return openai_error(exc.http_status, exc.message, exc.code)
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
                )
                return openai_error(400, problems, "invalid_request")
            except HTTPException as exc:
                # FastAPI's own refusals, such as a body that is not JSON.
                response = openai_error(exc.status_code, str(exc.detail), "invalid_request")
                response.headers.update(exc.headers or {})
                return response

        return handle


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIErrorRoute)
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIError} for status in (400, 404, 422, 503)
}


@router.get("/models", responses=_ERRORS)
def list_models(container: ContainerDep) -> ModelList:
    """The LLMs (and "extractive"), then "kb/<name>" for every knowledge base."""
    cards = [ModelCard(id=name) for name in container.chat.model_names()]
    cards += [
        ModelCard(id=KB_MODEL_PREFIX + kb.name, created=int(as_utc(kb.created_at).timestamp()))
        for kb in container.kb_service.list_kbs()
    ]
    return ModelList(data=cards)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
)
def chat_completions(body: ChatCompletionBody, chat: ChatDep) -> Response:
    """OpenAI's chat completions; with stream=true, chat.completion.chunk events and
    `data: [DONE]`, the last chunk carrying "docs" for kb/ models."""
    stream = _start(chat, body)
    frame = _Frame(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=body.model,
        docs=source_docs(stream.docs) if body.kb_name() is not None else None,
        search_query=stream.search_query if body.kb_name() is not None else None,
    )
    if not body.stream:
        result = collect(stream)
        if result.error is not None:
            return _event_error(result.error, frame)
        usage = _usage(body, stream, result.answer)
        completion = frame.completion(result.answer, usage)
        exclude = _no_docs(frame.docs) | ({"search_query"} if frame.docs is None else set())
        return JSONResponse(completion.model_dump(exclude=exclude))
    # The first event is awaited here so that an LLM that is down is a real 503, not a 200
    # stream carrying an error.
    first = next(stream.events)
    if isinstance(first, ErrorEvent):
        close_iterator(stream.events)
        return _event_error(first, frame)
    return EventStreamResponse(_chunks(stream.events, first, frame))


def _start(chat: ChatService, body: ChatCompletionBody) -> ChatStream:
    turns = [message.to_message() for message in body.messages if message.is_turn()]
    if not turns or turns[-1].role != "user":
        raise InvalidInputError("the last message must be the user's")
    query, history = turns[-1].content, turns[:-1]
    kb_name = body.kb_name()
    if kb_name is None:
        return chat.llm_chat(
            LlmChatRequest(
                query=query,
                history=history,
                model_name=body.model,
                temperature=body.temperature,
                max_tokens=body.answer_tokens(),
                prompt_name=body.prompt_name,
                seed=body.seed,
                **body.sampling(),
            )
        )
    return chat.kb_chat(
        KbChatRequest(
            query=query,
            history=history,
            model_name=body.llm_model or body.model_name,
            temperature=body.temperature,
            max_tokens=body.answer_tokens(),
            prompt_name=body.prompt_name,
            seed=body.seed,
            **body.sampling(),
            kb_names=[kb_name],
            top_k=body.top_k,
            score_threshold=body.score_threshold,
            search_mode=body.search_mode,
            rerank=body.rerank,
            strict=body.strict,
        )
    )


@dataclass(frozen=True)
class _Frame:
    """What every object of one completion shares."""

    id: str
    created: int
    model: str
    docs: list[SourceDoc] | None
    search_query: str | None

    def completion(self, answer: str, usage: CompletionUsage) -> ChatCompletion:
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[Choice(message=AssistantMessage(content=answer))],
            usage=usage,
            docs=self.docs,
            search_query=self.search_query,
        )

    def chunk(self, delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def dumped_docs(self) -> list[dict[str, Any]]:
        return [doc.model_dump() for doc in self.docs or []]


def _chunks(events: Iterator[ChatEvent], first: ChatEvent, frame: _Frame) -> Iterator[str]:
    try:
        yield sse_data(frame.chunk({"role": "assistant", "content": ""}))
        for event in itertools.chain([first], events):
            if isinstance(event, AnswerDelta):
                yield sse_data(frame.chunk({"content": event.text}))
            elif isinstance(event, ErrorEvent):
                yield sse_data(
                    openai_error_body(event.http_status, event.message, event.code, frame.docs)
                )
                break
            else:
                last = frame.chunk({}, finish_reason="stop")
                if frame.docs is not None:
                    last["docs"] = frame.dumped_docs()
                    last["search_query"] = frame.search_query
                yield sse_data(last)
        yield SSE_DONE
    finally:
        close_iterator(events)


def _event_error(event: ErrorEvent, frame: _Frame) -> JSONResponse:
    return openai_error(event.http_status, event.message, event.code, frame.docs)


def _usage(body: ChatCompletionBody, stream: ChatStream, answer: str) -> CompletionUsage:
    """Estimates: the messages and retrieved chunks in, the answer out."""
    prompt = sum(estimate_tokens(m.text()) for m in body.messages if m.is_turn())
    prompt += sum(estimate_tokens(doc.text) for doc in stream.docs)
    completion = estimate_tokens(answer)
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )
