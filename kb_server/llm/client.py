"""One client for every OpenAI-compatible chat endpoint (vLLM, Ollama, Xinference, FastChat,
online APIs, our worker). Failures come out as ``LlmUnavailableError`` (unreachable, or stopped
answering) or ``LlmRequestError`` (answered with an error), never as openai/httpx exceptions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TypedDict, cast

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from kb_server.errors import KbError, LlmRequestError, LlmUnavailableError
from kb_server.llm.base import ChatMessage, Completion, GenerationParams, Usage
from kb_server.settings import LlmClientSettings, LlmEndpointSettings

logger = logging.getLogger(__name__)

_RETRY_BACKOFF_S = 0.25
_MAX_RETRY_BACKOFF_S = 2.0
_MAX_ERROR_BODY_CHARS = 500


class _SamplingArgs(TypedDict):
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str] | openai.Omit
    seed: int | openai.Omit


class ChatStream(Iterator[str]):
    """The text deltas of one streamed answer; once exhausted, its finish reason and usage.

    ``usage`` stays None when the server sends none. ``close()`` (``contextlib.closing``)
    closes the upstream HTTP response, so the server sees the disconnect and stops generating.
    """

    def __init__(self, deltas: Callable[[ChatStream], Generator[str, None, None]]) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self._deltas = deltas(self)

    def __next__(self) -> str:
        return next(self._deltas)

    def close(self) -> None:
        self._deltas.close()


class OpenAICompatibleClient:
    """An ``LLMClient`` speaking the OpenAI chat-completions wire protocol."""

    def __init__(
        self,
        name: str,
        endpoint: LlmEndpointSettings,
        client_settings: LlmClientSettings,
        *,
        stream_usage: bool = False,
    ) -> None:
        """``stream_usage``: ask for token usage on streams (stream_options.include_usage);
        only for servers known to accept it, as some reject unknown fields."""
        self._name = name
        self._stream_usage = stream_usage
        self._endpoint = endpoint
        self._settings = client_settings
        self._model = endpoint.model or name
        self._client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            timeout=openai.Timeout(
                client_settings.read_timeout_s, connect=client_settings.connect_timeout_s
            ),
            # The library would also retry 429 and 5xx answers; we retry connection
            # failures only (see _retry_after).
            max_retries=0,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def context_window(self) -> int:
        return self._endpoint.context_window

    @property
    def endpoint(self) -> LlmEndpointSettings:
        return self._endpoint

    @property
    def model(self) -> str:
        """The model name sent to the server."""
        return self._model

    def close(self) -> None:
        self._client.close()

    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        attempt = 0
        while True:
            try:
                completion = self._client.chat.completions.create(
                    model=self._model,
                    messages=_to_openai_messages(messages),
                    stream=False,
                    **self._sampling_args(params),
                )
                break
            except openai.OpenAIError as err:
                if self._retry_after(err, attempt):
                    attempt += 1
                    continue
                raise self._translate(err, answered=False) from err
        # A 200 carrying no completion: a non-JSON body, or an error object such as vLLM's.
        if not isinstance(completion, ChatCompletion):
            raise self._not_an_answer(str(completion))
        if not completion.choices:
            raise self._not_an_answer(completion.model_dump_json())
        choice = completion.choices[0]
        return Completion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            usage=_to_usage(completion.usage),
        )

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> ChatStream:
        return ChatStream(lambda result: self._stream_deltas(messages, params, result))

    def _stream_deltas(
        self, messages: Sequence[ChatMessage], params: GenerationParams, result: ChatStream
    ) -> Generator[str, None, None]:
        openai_messages = _to_openai_messages(messages)
        sampling = self._sampling_args(params)
        attempt = 0
        while True:
            delivered = False
            answered = False
            try:
                upstream = self._client.chat.completions.create(
                    model=self._model,
                    messages=openai_messages,
                    stream=True,
                    stream_options={"include_usage": True} if self._stream_usage else openai.omit,
                    **sampling,
                )
                answered = True
                # The with block closes the HTTP response however this generator ends,
                # including GeneratorExit when our own caller goes away.
                with upstream:
                    self._require_event_stream(upstream)
                    for delta in _deltas(upstream, result):
                        delivered = True
                        yield delta
                return
            except openai.OpenAIError as err:
                if not delivered and self._retry_after(err, attempt):
                    attempt += 1
                    continue
                raise self._translate(err, answered=answered) from err

    def _sampling_args(self, params: GenerationParams) -> _SamplingArgs:
        return {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": (
                params.max_tokens if params.max_tokens is not None else self._endpoint.max_tokens
            ),
            "stop": list(params.stop) if params.stop else openai.omit,
            "seed": params.seed if params.seed is not None else openai.omit,
        }

    def _retry_after(self, err: openai.OpenAIError, attempt: int) -> bool:
        """Sleep and return True when ``err`` is a connection failure worth another try."""
        # Not timeouts: the server may be busy generating; a retry doubles its work.
        timeout = isinstance(err, openai.APITimeoutError)
        if timeout or not isinstance(err, openai.APIConnectionError):
            return False
        if attempt >= self._settings.max_retries:
            return False
        delay_s = min(_RETRY_BACKOFF_S * 2**attempt, _MAX_RETRY_BACKOFF_S)
        retries = f"retry {attempt + 1} of {self._settings.max_retries}"
        logger.warning("%s: %s; %s in %.2f s", self._describe(), _cause_text(err), retries, delay_s)
        time.sleep(delay_s)
        return True

    def _translate(self, err: openai.OpenAIError, *, answered: bool) -> KbError:
        where = self._describe()
        if isinstance(err, openai.APITimeoutError):
            if _caused_by(err, "ConnectTimeout"):
                waited = f"{self._settings.connect_timeout_s:g} s connecting"
            else:
                waited = f"{self._settings.read_timeout_s:g} s waiting for the server's next bytes"
            return LlmUnavailableError(f"{where} timed out after {waited}")
        if isinstance(err, openai.APIConnectionError):
            what = "lost the connection" if answered else "cannot connect"
            return LlmUnavailableError(f"{where}: {what} ({_cause_text(err)})")
        if isinstance(err, openai.APIStatusError):
            status = err.response.status_code
            detail = _server_message(err.response.text)
            return LlmRequestError(f"{where} answered HTTP {status}: {detail}", status)
        if isinstance(err, openai.APIError):
            # An error event inside a 200 stream; vLLM puts the HTTP-like status in "code".
            body = err.body
            code = body.get("code") if isinstance(body, dict) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 200
            return LlmRequestError(f"{where} reported an error: {err.message}", status)
        return LlmRequestError(f"{where} failed: {err}", 502)

    def _require_event_stream(self, upstream: openai.Stream[ChatCompletionChunk]) -> None:
        content_type = upstream.response.headers.get("content-type")
        if content_type is None or content_type.startswith("text/event-stream"):
            return
        try:
            body_text = upstream.response.read().decode(errors="replace")
        except Exception:  # an unreadable body only makes the error message shorter
            body_text = ""
        raise self._not_an_answer(body_text)

    def _not_an_answer(self, body_text: str) -> LlmRequestError:
        detail = _server_message(body_text)
        return LlmRequestError(f"{self._describe()} answered 200 but no answer: {detail}", 200)

    def _describe(self) -> str:
        return f"LLM {self._name!r} (model {self._model!r} at {self._endpoint.base_url})"


def _deltas(upstream: openai.Stream[ChatCompletionChunk], result: ChatStream) -> Iterator[str]:
    for chunk in upstream:
        if chunk.usage is not None:
            result.usage = _to_usage(chunk.usage)
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        if choice.finish_reason is not None:
            result.finish_reason = choice.finish_reason
        content = choice.delta.content if choice.delta is not None else None
        if content:
            yield content


def _to_openai_messages(messages: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
    return [
        cast("ChatCompletionMessageParam", {"role": message.role, "content": message.content})
        for message in messages
    ]


def _to_usage(usage: CompletionUsage | None) -> Usage | None:
    if usage is None:
        return None
    return Usage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


def _server_message(body_text: str) -> str:
    """The error message from an OpenAI ``{"error": {"message"}}``, a FastAPI ``{"detail"}``
    or a vLLM ``{"message"}`` body; otherwise the body itself. Truncated either way."""
    try:
        body = json.loads(body_text)
    except ValueError:
        body = None
    message = body_text.strip() or "(empty body)"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            body = error
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                message = value
                break
            if value is not None and key == "detail":
                message = json.dumps(value, ensure_ascii=False)
                break
    if len(message) > _MAX_ERROR_BODY_CHARS:
        return message[:_MAX_ERROR_BODY_CHARS] + "..."
    return message


def _caused_by(err: BaseException, class_name: str) -> bool:
    # openai 1.x raises from httpx, 3.x from httpx2: match the exception class by name.
    cause = err.__cause__
    return cause is not None and any(cls.__name__ == class_name for cls in type(cause).__mro__)


def _cause_text(err: BaseException) -> str:
    cause = err.__cause__
    return str(err) if cause is None else str(cause) or type(cause).__name__
