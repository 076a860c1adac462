"""The OpenAI-compatible routes through the official ``openai`` client, against uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai.types.chat import ChatCompletionMessageParam

from kb_server.settings import Settings
from tests.api.test_chat_routes import REFUNDS_FILE, add_kbs, app_with_llm_down
from tests.conftest import TINY_QWEN_MODEL_NAME
from tests.servers import serve_on_loopback

pytestmark = pytest.mark.both_backends

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Ignored: the server's prompt supplies the system text."},
    {"role": "user", "content": "How long do refunds take?"},
]


@pytest.fixture
def base_url(app: FastAPI) -> Iterator[str]:
    """The app, with its knowledge bases, served by uvicorn on a free loopback port."""
    add_kbs(app.state.container.kb_service)
    with serve_on_loopback(app, name="kb-api") as base:
        yield f"{base}/v1"


@pytest.fixture
def llm(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=30) as client:
        yield client


def test_models_lists_the_llms_and_every_knowledge_base(llm: openai.OpenAI) -> None:
    ids = [model.id for model in llm.models.list()]
    assert ids == ["extractive", TINY_QWEN_MODEL_NAME, "kb/shop", "kb/space"]


def test_a_kb_model_answers_with_its_sources(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(model="kb/shop", messages=QUESTION)
    assert completion.object == "chat.completion"
    assert completion.model == "kb/shop"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert "[1]" in (choice.message.content or "")  # extractive, the default model
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0
    docs = (completion.model_extra or {})["docs"]
    assert docs[0]["source"] == REFUNDS_FILE
    assert docs[0]["kb_name"] == "shop"


def test_a_kb_model_streams_deltas_and_the_sources_last(llm: openai.OpenAI) -> None:
    chunks = list(
        llm.chat.completions.create(
            model="kb/shop",
            messages=QUESTION,
            stream=True,
            max_tokens=8,
            temperature=0.0,
            seed=1,
            extra_body={"llm_model": TINY_QWEN_MODEL_NAME, "top_k": 1},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({chunk.id for chunk in chunks}) == 1
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert content
    assert [chunk.choices[0].finish_reason for chunk in chunks][-1] == "stop"
    assert all("docs" not in (chunk.model_extra or {}) for chunk in chunks[:-1])
    docs = (chunks[-1].model_extra or {})["docs"]
    assert [doc["source"] for doc in docs] == [REFUNDS_FILE]


def test_a_plain_model_completes_and_streams_the_same_text(llm: openai.OpenAI) -> None:
    completion = llm.chat.completions.create(
        model=TINY_QWEN_MODEL_NAME, messages=QUESTION, max_tokens=5, temperature=0.0, seed=1
    )
    assert completion.choices[0].finish_reason == "stop"
    assert "docs" not in (completion.model_extra or {})
    chunks = list(
        llm.chat.completions.create(
            model=TINY_QWEN_MODEL_NAME,
            messages=QUESTION,
            max_tokens=5,
            temperature=0.0,
            seed=1,
            stream=True,
        )
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert streamed == completion.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", ["no-such-llm", "kb/no-such-kb"])
def test_an_unknown_model_raises_not_found(llm: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        llm.chat.completions.create(model=model, messages=QUESTION)
    assert caught.value.code in {"unknown_model", "kb_not_found"}


def test_bad_requests_raise_the_matching_openai_errors(llm: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        llm.chat.completions.create(model="kb/shop", messages=[])
    with pytest.raises(openai.UnprocessableEntityError):
        llm.chat.completions.create(
            model="kb/shop", messages=[{"role": "assistant", "content": "no question"}]
        )


@pytest.mark.parametrize("stream", [False, True])
def test_an_unreachable_llm_is_a_503_in_openai_shape(api_settings: Settings, stream: bool) -> None:
    body = {"model": "kb/shop", "llm_model": "down", "stream": stream, "messages": QUESTION}
    with TestClient(app_with_llm_down(api_settings)) as client:
        response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("llm_unavailable", "server_error")
    assert response.json()["docs"][0]["source"] == REFUNDS_FILE


def test_a_seed_beyond_64_bits_is_a_bad_request(llm: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        llm.chat.completions.create(model=TINY_QWEN_MODEL_NAME, messages=QUESTION, seed=2**64)


def test_a_body_that_is_not_json_is_a_400_in_openai_shape(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
