"""API keys on and off: 401s without a valid key, /health open, CORS, the exposure warning."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kb_server.api.app import create_app
from kb_server.settings import Settings, load_settings
from tests.api.conftest import MINILM
from tests.api.test_chat_routes import add_kbs, sse_events
from tests.servers import serve_on_loopback

KEYS = ["first-key-4f9c2a", "second-key-81d7e0"]
ORIGIN = "http://ui.example:8501"
AUTH_LOGGER = "kb_server.api.auth"
# (method, path, JSON body): one of each kind of route, and paths that do not exist.
GUARDED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/knowledge_base/knowledge_bases", None),
    ("POST", "/knowledge_base/search_docs", {"knowledge_base_name": "shop", "query": "refunds"}),
    ("POST", "/knowledge_base/chat", {"query": "refunds?", "knowledge_base_name": "shop"}),
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", {"model": "kb/shop", "messages": []}),
    ("GET", "/no/such/route", None),
    ("POST", "/health", None),
    ("GET", "/docs", None),
    ("GET", "/openapi.json", None),
]


def keyed_settings(root: Path, **api: Any) -> Settings:
    return load_settings(
        kb_root=root,
        embedding={"model": MINILM},
        api={"api_keys": KEYS, "cors_origins": [ORIGIN], **api},
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """An app with two keys and one allowed origin, over KBs "shop" and "space"."""
    app = create_app(keyed_settings(tmp_path_factory.mktemp("kb_root")))
    add_kbs(app.state.container.kb_service)
    return app


@pytest.fixture(scope="module")
def keyed(keyed_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(keyed_app) as test_client:
        yield test_client


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    error = body["error"] if response.url.path.startswith("/v1/") else body["detail"]
    assert error["code"] == "unauthorized"


def test_routes_need_no_header_when_keys_are_off(client: TestClient) -> None:
    assert client.get("/knowledge_base/knowledge_bases").status_code == 200
    assert client.get("/v1/models").status_code == 200
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), GUARDED)
def test_request_without_key_gets_401(
    keyed: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    assert_unauthorized(keyed.request(method, path, json=body))


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-key",
        f"Bearer {KEYS[0]}x",
        f"Bearer {KEYS[0][:-1]}",
        f"Basic {KEYS[0]}",
        KEYS[0],
        "Bearer ",
    ],
)
def test_request_with_wrong_key_gets_401(keyed: TestClient, authorization: str) -> None:
    headers = {"Authorization": authorization}
    assert_unauthorized(keyed.get("/knowledge_base/knowledge_bases", headers=headers))
    assert_unauthorized(keyed.get("/v1/models", headers=headers))


@pytest.mark.parametrize("key", KEYS)
def test_either_configured_key_is_accepted(keyed: TestClient, key: str) -> None:
    data = keyed.get("/knowledge_base/knowledge_bases", headers=bearer(key)).json()["data"]
    assert [kb["name"] for kb in data] == ["shop", "space"]
    body = {"knowledge_base_name": "shop", "query": "How long do refunds take?"}
    found = keyed.post("/knowledge_base/search_docs", json=body, headers=bearer(key))
    assert found.status_code == 200
    assert found.json()[0]["metadata"]["source"] == "退款 政策.txt"
    assert keyed.get("/v1/models", headers=bearer(key)).status_code == 200
    assert keyed.get("/docs", headers=bearer(key)).status_code == 200
    assert keyed.get("/openapi.json", headers=bearer(key)).status_code == 200
    assert keyed.get("/no/such/route", headers=bearer(key)).status_code == 404


def test_streaming_chat_with_key_streams_answer_and_docs(keyed: TestClient) -> None:
    body = {"query": "How long do refunds take?", "knowledge_base_name": "shop", "stream": True}
    with keyed.stream("POST", "/knowledge_base/chat", json=body, headers=bearer(KEYS[1])) as reply:
        assert reply.status_code == 200
        events = sse_events(reply.read().decode("utf-8"))
    assert "fourteen days" in "".join(event.get("answer", "") for event in events)
    assert events[-1]["docs"][0]["source"] == "退款 政策.txt"


def test_openai_client_sends_its_key_as_bearer(keyed_app: FastAPI) -> None:
    with serve_on_loopback(keyed_app, name="kb-api-keyed") as base:
        with openai.OpenAI(base_url=f"{base}/v1", api_key=KEYS[0], max_retries=0) as llm:
            completion = llm.chat.completions.create(
                model="kb/shop", messages=[{"role": "user", "content": "How long do refunds take?"}]
            )
            assert "fourteen days" in (completion.choices[0].message.content or "")
        with (
            openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0) as llm,
            pytest.raises(openai.AuthenticationError),
        ):
            llm.models.list()


def test_health_is_open_without_key(keyed: TestClient) -> None:
    assert keyed.get("/health").json()["status"] == "ok"
    assert keyed.head("/health").status_code != 401


def test_cors_preflight_succeeds_without_key(keyed: TestClient) -> None:
    headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    response = keyed.options("/knowledge_base/search_docs", headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_401_carries_cors_header_for_allowed_origin(keyed: TestClient) -> None:
    response = keyed.get("/knowledge_base/knowledge_bases", headers={"Origin": ORIGIN})
    assert_unauthorized(response)
    assert response.headers["access-control-allow-origin"] == ORIGIN
    other = keyed.get("/knowledge_base/knowledge_bases", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("host", "api_keys", "warned"),
    [
        ("0.0.0.0", [], True),
        ("::", [], True),
        ("192.168.1.20", [], True),
        ("kb.example.org", [], True),
        ("0.0.0.0", KEYS, False),
        ("127.0.0.1", [], False),
        ("127.0.0.2", [], False),
        ("::1", [], False),
        ("localhost", [], False),
    ],
)
def test_public_bind_without_key_logs_a_warning(
    keyed_app: FastAPI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    host: str,
    api_keys: list[str],
    warned: bool,
) -> None:
    settings = keyed_settings(tmp_path, host=host, api_keys=api_keys)
    with caplog.at_level(logging.INFO, logger=AUTH_LOGGER):
        create_app(settings, container=keyed_app.state.container)
    warnings = [r for r in caplog.records if r.name == AUTH_LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == (1 if warned else 0)


def test_keys_never_appear_in_logs(
    keyed_app: FastAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        app = create_app(keyed_settings(tmp_path), container=keyed_app.state.container)
        with serve_on_loopback(app, name="kb-api-logs") as base:
            for key in [*KEYS, "wrong-key-0a1b"]:
                httpx.get(f"{base}/v1/models", headers=bearer(key))
                httpx.get(f"{base}/knowledge_base/knowledge_bases", headers=bearer(key))
    assert caplog.records
    for key in [*KEYS, "wrong-key-0a1b"]:
        assert key not in caplog.text
