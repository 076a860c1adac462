"""OpenAICompatibleClient against small OpenAI-wire servers on loopback, error paths included."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx
import pytest

from kb_server.errors import LlmRequestError, LlmUnavailableError
from kb_server.llm.base import ChatMessage, Completion, GenerationParams, Usage
from kb_server.llm.client import OpenAICompatibleClient
from kb_server.settings import LlmClientSettings, LlmEndpointSettings

Mode = Literal["ok", "slow", "endless", "drop", "hangup", "error", "detail", "text", "long", "200"]
DELTAS = ("你好", "，", "世界", "！")
USAGE = {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
MESSAGES = [ChatMessage("system", "你是助手。"), ChatMessage("user", "打个招呼")]
JSON = "application/json"
ERROR_ANSWERS: dict[str, tuple[int, bytes, str]] = {
    "error": (500, b'{"error": {"message": "model crashed", "type": "internal"}}', JSON),
    "detail": (404, b'{"detail": "The model `nope` does not exist."}', JSON),
    "text": (502, b"upstream down", "text/plain"),
    "long": (502, b"x" * 5000, "text/plain"),
    "200": (200, b'{"object": "error", "message": "prompt too long", "code": 400}', JSON),  # vLLM
}


class WireServer(ThreadingHTTPServer):
    """Speaks just enough of /v1/chat/completions; ``mode`` picks how it (mis)behaves."""

    daemon_threads = True

    def __init__(self, mode: Mode) -> None:
        super().__init__(("127.0.0.1", 0), WireHandler)
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self.disconnected = threading.Event()
        self.stopping = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class WireHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: WireServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        self.close_connection = True
        mode = self.server.mode
        if mode == "hangup" or (mode == "slow" and self.server.stopping.wait(5)):
            return
        if mode in ERROR_ANSWERS:
            self._send(*ERROR_ANSWERS[mode])
        elif not body.get("stream"):
            message = {"role": "assistant", "content": "".join(DELTAS)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            answer = {
                **_chunk({}),
                "object": "chat.completion",
                "choices": [choice],
                "usage": USAGE,
            }
            self._send(200, json.dumps(answer).encode(), "application/json")
        else:
            self._stream(mode)

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, mode: Mode) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self._event(_chunk({"role": "assistant"}))
        if mode == "drop":
            # Leaves without the closing chunk: the body ends mid-stream.
            self._event(_chunk({"content": DELTAS[0]}))
            return
        if mode == "endless":
            try:
                for _ in range(500):
                    if self.server.stopping.is_set():
                        return
                    self._event(_chunk({"content": "x"}))
                    time.sleep(0.02)
            except OSError:
                self.server.disconnected.set()
            return
        for delta in DELTAS:
            self._event(_chunk({"content": delta}))
        self._event(_chunk({}, finish_reason="stop"))
        self._event({**_chunk({}), "choices": [], "usage": USAGE})
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _event(self, data: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(data).encode() + b"\n\n")

    def _write_chunk(self, payload: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))


def _chunk(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
    }


Serve = Callable[[Mode], WireServer]
ClientFactory = Callable[..., OpenAICompatibleClient]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[tuple[WireServer, threading.Thread]] = []

    def start(mode: Mode) -> WireServer:
        server = WireServer(mode)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return server

    yield start
    for server, thread in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    clients: list[OpenAICompatibleClient] = []

    def make(
        base_url: str,
        *,
        model: str = "wire-model",
        read_timeout_s: float = 5.0,
        retries: int = 0,
        stream_usage: bool = False,
    ) -> OpenAICompatibleClient:
        client = OpenAICompatibleClient(
            "wire",
            LlmEndpointSettings(base_url=base_url, model=model, max_tokens=64),
            LlmClientSettings(
                connect_timeout_s=2.0, read_timeout_s=read_timeout_s, max_retries=retries
            ),
            stream_usage=stream_usage,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _ask(client: OpenAICompatibleClient, streaming: bool) -> str:
    if streaming:
        return "".join(client.stream(MESSAGES, GenerationParams()))
    return client.complete(MESSAGES, GenerationParams()).text


def test_complete_returns_text_finish_reason_and_usage(
    serve: Serve, make_client: ClientFactory
) -> None:
    server = serve("ok")
    client = make_client(server.base_url)

    completion = client.complete(MESSAGES, GenerationParams(temperature=0.0, stop=["。"], seed=3))

    assert completion == Completion("".join(DELTAS), "stop", Usage(**USAGE))
    sent = server.requests[0]
    assert sent["model"] == "wire-model"
    assert sent["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]
    assert (sent["max_tokens"], sent["stop"], sent["seed"]) == (64, ["。"], 3)


def test_unset_stop_and_seed_are_not_sent(serve: Serve, make_client: ClientFactory) -> None:
    server = serve("ok")
    make_client(server.base_url).complete(MESSAGES, GenerationParams(max_tokens=5))

    assert server.requests[0]["max_tokens"] == 5
    assert "stop" not in server.requests[0]
    assert "seed" not in server.requests[0]


@pytest.mark.parametrize("stream_usage", [False, True])
def test_stream_yields_deltas_in_order_and_matches_complete(
    serve: Serve, make_client: ClientFactory, stream_usage: bool
) -> None:
    server = serve("ok")
    client = make_client(server.base_url, stream_usage=stream_usage)
    params = GenerationParams(temperature=0.0)

    stream = client.stream(MESSAGES, params)
    deltas = list(stream)

    assert deltas == list(DELTAS)
    assert "".join(deltas) == client.complete(MESSAGES, params).text
    assert (stream.finish_reason, stream.usage) == ("stop", Usage(**USAGE))
    # Only asked for when the server is known to accept it; this one sends usage regardless.
    requested = server.requests[0].get("stream_options")
    assert requested == ({"include_usage": True} if stream_usage else None)


def test_refused_connection_raises_llm_unavailable_quickly(make_client: ClientFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    client = make_client(base_url, retries=2)

    started = time.monotonic()
    with pytest.raises(LlmUnavailableError) as caught:
        client.complete(MESSAGES, GenerationParams())

    assert time.monotonic() - started < 5.0
    assert base_url in caught.value.message


@pytest.mark.parametrize("streaming", [False, True])
def test_connection_failures_are_retried_max_retries_times(
    serve: Serve, make_client: ClientFactory, streaming: bool
) -> None:
    server = serve("hangup")

    with pytest.raises(LlmUnavailableError):
        _ask(make_client(server.base_url, retries=2), streaming)

    assert len(server.requests) == 3


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("mode", "status", "server_message"),
    [
        ("error", 500, "model crashed"),
        ("detail", 404, "The model `nope` does not exist."),
        ("text", 502, "upstream down"),
        ("long", 502, "x" * 100),
        ("200", 200, "prompt too long"),
    ],
)
def test_error_answer_raises_llm_request_error_without_retry(
    serve: Serve,
    make_client: ClientFactory,
    mode: Mode,
    status: int,
    server_message: str,
    streaming: bool,
) -> None:
    server = serve(mode)

    with pytest.raises(LlmRequestError) as caught:
        _ask(make_client(server.base_url, retries=2), streaming)

    assert caught.value.upstream_status == status
    assert server_message in caught.value.message
    assert len(caught.value.message) < 1000  # a long body is truncated
    assert len(server.requests) == 1


@pytest.mark.parametrize("streaming", [False, True])
def test_read_timeout_raises_llm_unavailable_without_retry(
    serve: Serve, make_client: ClientFactory, streaming: bool
) -> None:
    server = serve("slow")
    client = make_client(server.base_url, read_timeout_s=0.5, retries=2)

    started = time.monotonic()
    with pytest.raises(LlmUnavailableError) as caught:
        _ask(client, streaming)

    assert time.monotonic() - started < 5.0
    assert "0.5 s" in caught.value.message
    assert len(server.requests) == 1


def test_closing_stream_disconnects_upstream(serve: Serve, make_client: ClientFactory) -> None:
    server = serve("endless")
    stream = make_client(server.base_url).stream(MESSAGES, GenerationParams())

    assert next(stream) == "x"
    stream.close()

    assert server.disconnected.wait(5.0)


def test_connection_lost_after_first_delta_is_not_retried(
    serve: Serve, make_client: ClientFactory
) -> None:
    server = serve("drop")
    stream = make_client(server.base_url, retries=2).stream(MESSAGES, GenerationParams())

    assert next(stream) == DELTAS[0]
    with pytest.raises(LlmUnavailableError):
        next(stream)
    assert len(server.requests) == 1


def _served_model(llm_worker: str) -> str:
    served: str = httpx.get(f"{llm_worker}/models").json()["data"][0]["id"]
    return served


def test_worker_stream_matches_complete(llm_worker: str, make_client: ClientFactory) -> None:
    client = make_client(llm_worker, model=_served_model(llm_worker), stream_usage=True)
    params = GenerationParams(temperature=0.0, seed=7, max_tokens=12)

    completion = client.complete(MESSAGES, params)
    stream = client.stream(MESSAGES, params)
    deltas = list(stream)

    assert "".join(deltas) == completion.text
    assert (stream.finish_reason, stream.usage) == (completion.finish_reason, completion.usage)
    assert completion.usage is not None
    assert 1 <= completion.usage.completion_tokens <= 12


@pytest.mark.parametrize("max_tokens", [1, 5])
def test_worker_respects_max_tokens(
    llm_worker: str, make_client: ClientFactory, max_tokens: int
) -> None:
    client = make_client(llm_worker, model=_served_model(llm_worker))

    completion = client.complete(MESSAGES, GenerationParams(temperature=0.0, max_tokens=max_tokens))

    assert completion.usage is not None
    assert completion.usage.completion_tokens <= max_tokens


def test_worker_rejects_unknown_model_name(llm_worker: str, make_client: ClientFactory) -> None:
    client = make_client(llm_worker, model="not-served")

    with pytest.raises(LlmRequestError) as caught:
        client.complete(MESSAGES, GenerationParams(max_tokens=2))

    assert caught.value.upstream_status == 404
    assert "not-served" in caught.value.message


def test_closing_worker_stream_cancels_generation(
    llm_worker: str, make_client: ClientFactory
) -> None:
    health_url = llm_worker.removesuffix("/v1") + "/health"
    cancelled_before = httpx.get(health_url).json()["generations"]["cancelled"]
    client = make_client(llm_worker, model=_served_model(llm_worker))
    stream = client.stream(MESSAGES, GenerationParams(temperature=0.0, max_tokens=800))

    next(stream)
    stream.close()

    deadline = time.monotonic() + 10.0
    while httpx.get(health_url).json()["generations"]["cancelled"] == cancelled_before:
        assert time.monotonic() < deadline, "the worker kept generating after the close"
        time.sleep(0.05)
