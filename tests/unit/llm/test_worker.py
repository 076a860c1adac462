"""The model worker on loopback (llm_worker fixture), driven by the official openai client.

The tiny model writes noise: these tests compare texts with each other, count tokens and
check the wire format, never the words.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from transformers import AutoTokenizer

from tests.conftest import TINY_QWEN_MODEL_NAME

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "知识库是怎样回答问题的？"}
]
# not in the tiny tokenizer's training text: ~50 tokens per sentence
FILLER = "机器学习模型在训练以后会被部署到服务器上，为用户提供服务。" * 3


@pytest.fixture
def client(llm_worker: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm_worker, api_key="x", max_retries=0, timeout=30)


def _health(llm_worker: str) -> dict[str, Any]:
    answer = httpx.get(llm_worker.removesuffix("/v1") + "/health", timeout=5).json()
    assert isinstance(answer, dict)
    return answer


def _complete(
    client: openai.OpenAI,
    *,
    max_tokens: int,
    temperature: float = 0.0,
    seed: int | None = None,
    stop: str | list[str] | None = None,
    messages: list[ChatCompletionMessageParam] = QUESTION,
) -> tuple[str, str, int]:
    """Text, finish reason and completion tokens of one non-streamed completion."""
    answer = client.chat.completions.create(
        model=TINY_QWEN_MODEL_NAME,
        messages=messages,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        stop=stop,
    )
    assert answer.usage is not None
    choice = answer.choices[0]
    return choice.message.content or "", choice.finish_reason, answer.usage.completion_tokens


def _stream(
    client: openai.OpenAI,
    *,
    max_tokens: int,
    temperature: float = 0.0,
    seed: int | None = None,
    stop: str | list[str] | None = None,
) -> tuple[list[str], str | None]:
    """Content deltas and the finish reason of one streamed completion."""
    deltas: list[str] = []
    finish: str | None = None
    chunks = client.chat.completions.create(
        model=TINY_QWEN_MODEL_NAME,
        messages=QUESTION,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        stop=stop,
        stream=True,
    )
    for position, chunk in enumerate(chunks):
        choice = chunk.choices[0]
        if position == 0:
            assert choice.delta.role == "assistant"
        if choice.delta.content:
            assert finish is None, "content after the finish reason"
            deltas.append(choice.delta.content)
        if choice.finish_reason is not None:
            finish = choice.finish_reason
    return deltas, finish


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [TINY_QWEN_MODEL_NAME]


def test_completion_has_the_openai_shape(llm_worker: str) -> None:
    body = {"model": TINY_QWEN_MODEL_NAME, "messages": QUESTION, "max_tokens": 4}
    answer = httpx.post(f"{llm_worker}/chat/completions", json=body, timeout=30).json()
    assert answer["object"] == "chat.completion"
    assert answer["id"].startswith("chatcmpl-")
    assert answer["model"] == TINY_QWEN_MODEL_NAME
    assert answer["choices"][0]["message"]["role"] == "assistant"
    assert answer["choices"][0]["finish_reason"] in {"stop", "length"}
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize(("temperature", "seed"), [(0.0, None), (1.0, 21)])
def test_stream_deltas_join_to_the_non_stream_text(
    client: openai.OpenAI, temperature: float, seed: int | None
) -> None:
    text, finish, _ = _complete(client, temperature=temperature, seed=seed, max_tokens=24)
    deltas, stream_finish = _stream(client, temperature=temperature, seed=seed, max_tokens=24)
    assert len(deltas) > 1
    assert "".join(deltas) == text
    assert stream_finish == finish


def test_max_tokens_is_respected(client: openai.OpenAI) -> None:
    _, finish, completion_tokens = _complete(client, temperature=1.0, seed=3, max_tokens=5)
    assert completion_tokens == 5
    assert finish == "length"


def test_stop_string_ends_the_stream_and_is_left_out(client: openai.OpenAI) -> None:
    full, _, _ = _complete(client, temperature=1.0, seed=8, max_tokens=40)
    stop = full[16:18]
    deltas, finish = _stream(
        client, temperature=1.0, seed=8, max_tokens=40, stop=[stop, "never-said"]
    )
    assert "".join(deltas) == full[: full.index(stop)]
    assert finish == "stop"
    cut, _, completion_tokens = _complete(client, temperature=1.0, seed=8, max_tokens=40, stop=stop)
    assert cut == full[: full.index(stop)]
    assert completion_tokens < 40


def test_unknown_model_gets_404_in_openai_shape(client: openai.OpenAI, llm_worker: str) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    body = {"model": "gpt-4o", "messages": QUESTION}
    answer = httpx.post(f"{llm_worker}/chat/completions", json=body, timeout=30)
    assert answer.status_code == 404
    assert set(answer.json()["error"]) >= {"message", "type", "code"}


def test_concurrent_requests_each_get_their_own_text(client: openai.OpenAI) -> None:
    seeds = (31, 32)
    expected = {
        seed: _complete(client, temperature=1.0, seed=seed, max_tokens=20) for seed in seeds
    }
    results: dict[int, tuple[str, str, int]] = {}

    def ask(seed: int) -> None:
        results[seed] = _complete(client, temperature=1.0, seed=seed, max_tokens=20)

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in seeds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == expected
    assert expected[31][0] != expected[32][0]


def test_client_disconnect_cancels_generation_and_frees_the_worker(
    client: openai.OpenAI, llm_worker: str
) -> None:
    cancelled_before = _health(llm_worker)["generations"]["cancelled"]
    body = {
        "model": TINY_QWEN_MODEL_NAME,
        "messages": QUESTION,
        "temperature": 0,
        "max_tokens": 900,
        "stream": True,
    }
    with httpx.stream("POST", f"{llm_worker}/chat/completions", json=body, timeout=30) as answer:
        received = 0
        for line in answer.iter_lines():
            received += line.startswith("data: {")
            if received == 3:
                break  # leaving the block drops the connection mid-answer
    started = time.monotonic()
    _, _, completion_tokens = _complete(client, temperature=0, max_tokens=4)
    # 900 tokens would take seconds; the cancelled generation stops within a token
    assert time.monotonic() - started < 2.5
    assert completion_tokens == 4
    assert _health(llm_worker)["generations"]["cancelled"] == cancelled_before + 1


def test_non_stream_client_that_gives_up_cancels_its_generation(
    client: openai.OpenAI, llm_worker: str
) -> None:
    cancelled_before = _health(llm_worker)["generations"]["cancelled"]
    body = {"model": TINY_QWEN_MODEL_NAME, "messages": QUESTION, "max_tokens": 900}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{llm_worker}/chat/completions", json=body, timeout=0.4)
    started = time.monotonic()
    _, _, completion_tokens = _complete(client, max_tokens=4)
    assert time.monotonic() - started < 2.5
    assert completion_tokens == 4
    assert _health(llm_worker)["generations"]["cancelled"] == cancelled_before + 1


def test_long_history_is_trimmed_to_the_window(client: openai.OpenAI, tiny_qwen_dir: Path) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": "你是助手。"}]
    for turn in range(8):
        messages.append({"role": "user", "content": f"{turn}. {FILLER}"})
        messages.append({"role": "assistant", "content": f"{turn}. {FILLER}"})
    messages.extend(QUESTION)
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    assert 16 * len(tokenizer(FILLER)["input_ids"]) > 1024  # the tiny model's window
    answer = client.chat.completions.create(
        model=TINY_QWEN_MODEL_NAME, messages=messages, max_tokens=8, temperature=0
    )
    assert answer.usage is not None
    assert answer.usage.prompt_tokens + 8 <= 1024
    assert answer.usage.completion_tokens <= 8


def test_oversized_last_message_gets_400(client: openai.OpenAI, llm_worker: str) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": FILLER * 10}]
    with pytest.raises(openai.BadRequestError):
        _complete(client, max_tokens=8, messages=messages)
    body = {"model": TINY_QWEN_MODEL_NAME, "messages": messages, "max_tokens": 8}
    answer = httpx.post(f"{llm_worker}/chat/completions", json=body, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "context_length_exceeded"


def test_a_seed_beyond_64_bits_is_a_bad_request(llm_worker: str) -> None:
    body = {
        "model": TINY_QWEN_MODEL_NAME,
        "messages": [{"role": "user", "content": "你好"}],
        "max_tokens": 2,
        "seed": 2**70,
    }
    answer = httpx.post(f"{llm_worker}/chat/completions", json=body, timeout=30)
    assert 400 <= answer.status_code < 500
    assert "error" in answer.json()


def test_stream_with_usage_reports_token_counts(llm_worker: str) -> None:
    body = {
        "model": TINY_QWEN_MODEL_NAME,
        "messages": QUESTION,
        "max_tokens": 6,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{llm_worker}/chat/completions", json=body, timeout=30) as answer:
        lines = [line for line in answer.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    usage_chunk = json.loads(lines[-2].removeprefix("data: "))
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] <= 6


def test_cli_with_a_bad_model_path_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-model-here"
    finished = subprocess.run(
        [sys.executable, "-m", "kb_server.llm.worker", "--model-path", str(missing)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 2
    error_lines = finished.stderr.strip().splitlines()
    assert len(error_lines) == 1
    assert str(missing) in error_lines[0]
    assert finished.stdout == ""
