"""The local model worker's HTTP app: OpenAI's chat completions and models endpoints.

Requests queue on one lock so a single generation runs at a time; a waiting request waits,
it does not fail. When a client goes away mid-answer its generation is cancelled and the
next request starts.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from kb_server.errors import InvalidInputError, KbError, UnknownModelError
from kb_server.llm.base import SEED_MAX, SEED_MIN, ChatMessage, GenerationParams
from kb_server.llm.local_generation import GenerationRun
from kb_server.llm.local_model import LocalChatModel, PreparedPrompt

logger = logging.getLogger(__name__)

SSE_DONE = "data: [DONE]\n\n"


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class MessageIn(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def to_chat_message(self) -> ChatMessage:
        content = self.content or ""
        if not isinstance(content, str):
            content = "".join(part.text for part in content)
        return ChatMessage(
            role="system" if self.role == "developer" else self.role, content=content
        )


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's request body this worker honours; other fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[MessageIn] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    n: int = Field(1, ge=1, le=1)


@dataclass
class WorkerStats:
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    waiting: int = 0


class ModelNotFoundError(UnknownModelError):
    code = "model_not_found"


class _Worker:
    """What the routes share: the model, the queue lock and the counters."""

    def __init__(self, model: LocalChatModel) -> None:
        self.model = model
        self.gate = anyio.Lock()
        self.stats = WorkerStats()
        self.started = int(time.time())

    def params(self, body: ChatCompletionRequest) -> GenerationParams:
        stops = [body.stop] if isinstance(body.stop, str) else (body.stop or [])
        temperature = body.temperature
        return GenerationParams(
            temperature=self.model.default_temperature if temperature is None else temperature,
            top_p=self.model.default_top_p if body.top_p is None else body.top_p,
            max_tokens=body.max_completion_tokens or body.max_tokens,
            stop=tuple(stops),
            seed=body.seed,
        )

    @asynccontextmanager
    async def generation(
        self, prompt: PreparedPrompt, params: GenerationParams
    ) -> AsyncIterator[GenerationRun]:
        """Wait for the worker's turn, start the run, and always settle it on the way out.

        A run nobody reads to its end any more (client gone, error) is cancelled, and its
        thread is waited for before the next request may start.
        """
        self.stats.waiting += 1
        try:
            await self.gate.acquire()
        finally:
            self.stats.waiting -= 1
        try:
            run = self.model.start(prompt, params)
            try:
                yield run
            finally:
                with anyio.CancelScope(shield=True):
                    if not run.finished:
                        run.cancel()
                    await anyio.to_thread.run_sync(run.wait)
                self._count(run)
        finally:
            self.gate.release()

    def _count(self, run: GenerationRun) -> None:
        if run.failed:
            self.stats.failed += 1
        elif run.cancelled:
            self.stats.cancelled += 1
            logger.info(
                "generation cancelled after %d tokens: the client went away", run.completion_tokens
            )
        else:
            self.stats.completed += 1


def _error_body(exc: KbError) -> dict[str, Any]:
    kind = "invalid_request_error" if exc.http_status < 500 else "server_error"
    return {"error": {"message": exc.message, "type": kind, "code": exc.code, "param": None}}


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class _ClosingStreamingResponse(StreamingResponse):
    """Closes the body generator as soon as the response ends, so its cleanup runs now.

    Starlette stops iterating when the client disconnects but leaves the generator to the
    garbage collector, which would keep the generation (and the queue) going meanwhile.
    """

    def __init__(self, content: AsyncGenerator[str, None]) -> None:
        super().__init__(content, media_type="text/event-stream")
        self._events = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()


async def _stream(
    worker: _Worker, prompt: PreparedPrompt, params: GenerationParams, include_usage: bool
) -> AsyncGenerator[str, None]:
    head = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": worker.model.name,
    }

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse({**head, "choices": [choice]})

    async with worker.generation(prompt, params) as run:
        try:
            yield chunk({"role": "assistant", "content": ""})
            deltas = iter(run)
            while True:
                delta = await anyio.to_thread.run_sync(next, deltas, None, abandon_on_cancel=True)
                if delta is None:
                    break
                yield chunk({"content": delta})
            yield chunk({}, run.finish_reason)
            if include_usage:
                yield _sse({**head, "choices": [], "usage": asdict(run.usage)})
            yield SSE_DONE
        except KbError as exc:  # the status line has gone out already: report in the stream
            yield _sse(_error_body(exc))


async def _complete(
    worker: _Worker, request: Request, prompt: PreparedPrompt, params: GenerationParams
) -> dict[str, Any]:
    async with worker.generation(prompt, params) as run, anyio.create_task_group() as watchers:
        watchers.start_soon(_cancel_on_disconnect, request, run)
        text = await anyio.to_thread.run_sync(_collect, run, abandon_on_cancel=True)
        watchers.cancel_scope.cancel()
    if isinstance(text, KbError):
        raise text
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": None,
        "finish_reason": run.finish_reason,
    }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": worker.model.name,
        "choices": [choice],
        "usage": asdict(run.usage),
    }


def _collect(run: GenerationRun) -> str | KbError:
    # returned, not raised: a task group would wrap it in an ExceptionGroup
    try:
        return run.collect()
    except KbError as exc:
        return exc


async def _cancel_on_disconnect(request: Request, run: GenerationRun) -> None:
    while not await request.is_disconnected():
        await anyio.sleep(0.2)
    run.cancel()


def create_worker_app(model: LocalChatModel) -> FastAPI:
    """An OpenAI-compatible app serving ``model`` under the name ``model.name``."""
    app = FastAPI(title=f"kb_server model worker: {model.name}")
    worker = _Worker(model)
    app.state.worker = worker

    @app.exception_handler(KbError)
    async def _kb_error(request: Request, exc: KbError) -> JSONResponse:
        return JSONResponse(_error_body(exc), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        error = InvalidInputError(f"invalid request: {problems}")
        return JSONResponse(_error_body(error), status_code=error.http_status)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model.name, "generations": asdict(worker.stats)}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        card = {"id": model.name, "object": "model", "created": worker.started, "owned_by": "local"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(
        body: ChatCompletionRequest, request: Request
    ) -> dict[str, Any] | StreamingResponse:
        if body.model != model.name:
            raise ModelNotFoundError(
                f"the model {body.model!r} does not exist; this worker serves {model.name!r}"
            )
        params = worker.params(body)
        messages = [message.to_chat_message() for message in body.messages]
        prompt = await anyio.to_thread.run_sync(model.prepare, messages, params)
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return _ClosingStreamingResponse(_stream(worker, prompt, params, include_usage))
        return await _complete(worker, request, prompt, params)

    return app
