"""Loading a local chat model and generating with it, on the tiny random-weight Qwen2.

Its text is noise, so these tests assert on token counts, errors and the shape of prompts.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from kb_server.llm.base import ChatMessage, GenerationParams
from kb_server.llm.local_model import (
    ContextOverflowError,
    LocalChatModel,
    ModelLoadError,
    load_local_model,
    resolve_dtype,
)
from kb_server.settings import LocalModelSettings

SYSTEM = ChatMessage("system", "你是知识库助手。")
# not in the tiny tokenizer's training text, so ~50 tokens per sentence
FILLER = "机器学习模型在训练以后会被部署到服务器上，为用户提供服务。" * 3


@pytest.fixture(scope="module")
def tiny_model(tiny_qwen_dir: Path) -> Iterator[LocalChatModel]:
    # one intra-op thread: two contend with the test's own threads on a 2-core machine
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_local_model(LocalModelSettings(path=tiny_qwen_dir, device="cpu"))
    torch.set_num_threads(previous_threads)


def _copy_without(source: Path, target: Path, *names: str) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*names))
    return target


def test_tiny_model_loads_through_the_auto_classes(tiny_model: LocalChatModel) -> None:
    assert tiny_model.device == "cpu"
    assert tiny_model.dtype == "float32"
    assert tiny_model.context_window == 1024  # max_position_embeddings in config.json
    # the sampling defaults of generation_config.json (Qwen2.5's)
    assert tiny_model.default_temperature == pytest.approx(0.7)
    assert tiny_model.default_top_p == pytest.approx(0.8)


def test_model_is_named_after_its_directory_unless_named(tiny_qwen_dir: Path) -> None:
    settings = LocalModelSettings(path=tiny_qwen_dir, device="cpu", context_window=256)
    assert load_local_model(settings).name == tiny_qwen_dir.name
    named = load_local_model(settings, name="qwen-tiny")
    assert named.name == "qwen-tiny"
    assert named.context_window == 256


def test_missing_directory_fails_at_load(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError) as caught:
        load_local_model(LocalModelSettings(path=missing, device="cpu"))
    assert str(missing) in caught.value.message


def test_directory_with_only_a_config_fails_at_load(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_qwen_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelLoadError) as caught:
        load_local_model(LocalModelSettings(path=tmp_path, device="cpu"))
    assert str(tmp_path) in caught.value.message


def test_corrupt_weights_fail_at_load(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    broken = _copy_without(tiny_qwen_dir, tmp_path / "broken", "model.safetensors")
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError):
        load_local_model(LocalModelSettings(path=broken, device="cpu"))


def test_tokenizer_without_chat_template_fails_at_load(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    plain = _copy_without(tiny_qwen_dir, tmp_path / "plain", "chat_template.jinja")
    with pytest.raises(ModelLoadError) as caught:
        load_local_model(LocalModelSettings(path=plain, device="cpu"))
    assert "chat template" in caught.value.reason


def test_quantization_without_cuda_fails_at_load(tiny_qwen_dir: Path) -> None:
    settings = LocalModelSettings(path=tiny_qwen_dir, device="cpu", quantization="4bit")
    with pytest.raises(ModelLoadError):
        load_local_model(settings)


def test_auto_dtype_is_float32_on_cpu() -> None:
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16


def test_long_history_drops_oldest_turns_but_keeps_system_and_last(
    tiny_model: LocalChatModel, tiny_qwen_dir: Path
) -> None:
    history = [
        ChatMessage("user" if turn % 2 == 0 else "assistant", f"第{turn}轮。{FILLER}")
        for turn in range(12)
    ]
    question = ChatMessage("user", "最后一个问题：什么是知识库？")
    prompt = tiny_model.prepare([SYSTEM, *history, question], GenerationParams(max_tokens=64))
    assert prompt.dropped_messages > 0
    assert len(prompt.input_ids) + prompt.max_new_tokens <= tiny_model.context_window
    assert prompt.max_new_tokens == 64
    text = AutoTokenizer.from_pretrained(tiny_qwen_dir).decode(prompt.input_ids)
    assert SYSTEM.content in text
    assert question.content in text
    assert "第0轮" not in text
    assert "第11轮" in text
    # the kept history opens with a user turn
    assert text.index("<|im_start|>user") < text.index("<|im_start|>assistant")


def test_answer_budget_shrinks_when_no_history_is_left_to_drop(
    tiny_model: LocalChatModel,
) -> None:
    message = ChatMessage("user", FILLER * 3)
    prompt = tiny_model.prepare([message], GenerationParams(max_tokens=1000))
    assert prompt.dropped_messages == 0
    assert 0 < prompt.max_new_tokens < 1000
    assert len(prompt.input_ids) + prompt.max_new_tokens == tiny_model.context_window


def test_last_message_larger_than_the_window_is_rejected(tiny_model: LocalChatModel) -> None:
    with pytest.raises(ContextOverflowError) as caught:
        tiny_model.prepare([ChatMessage("user", FILLER * 10)], GenerationParams(max_tokens=8))
    assert caught.value.http_status == 400


def test_same_seed_gives_same_text_streaming_or_not(tiny_model: LocalChatModel) -> None:
    messages = [ChatMessage("user", "介绍一下向量检索。")]
    params = GenerationParams(temperature=1.0, seed=5, max_tokens=24)
    completion = tiny_model.complete(messages, params)
    assert "".join(tiny_model.stream(messages, params)) == completion.text
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 24


def test_stop_string_cuts_the_text_before_it(tiny_model: LocalChatModel) -> None:
    messages = [ChatMessage("user", "总结这篇文章。")]
    params = GenerationParams(temperature=1.0, seed=9, max_tokens=40)
    full = tiny_model.complete(messages, params).text
    stop = full[15:17]
    cut = tiny_model.complete(
        messages, GenerationParams(temperature=1.0, seed=9, max_tokens=40, stop=[stop])
    )
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"
    assert cut.usage is not None
    assert cut.usage.completion_tokens < 40


def test_cancel_stops_generation_within_a_few_tokens(tiny_model: LocalChatModel) -> None:
    messages = [ChatMessage("user", "你好")]
    params = GenerationParams(temperature=0.0, max_tokens=900)
    run = tiny_model.start(tiny_model.prepare(messages, params), params)
    deltas = iter(run)
    next(deltas)
    run.cancel()
    started = time.monotonic()
    run.wait(timeout=10)
    assert time.monotonic() - started < 2
    assert run.cancelled
    assert run.completion_tokens < 900
    # the model is free again
    assert tiny_model.complete(messages, GenerationParams(temperature=0, max_tokens=3)).text


def test_a_vanishing_temperature_decodes_greedily(tiny_model: LocalChatModel) -> None:
    messages = [ChatMessage("user", "你好")]
    greedy = tiny_model.complete(messages, GenerationParams(temperature=0.0, max_tokens=6))
    tiny = tiny_model.complete(messages, GenerationParams(temperature=1e-300, max_tokens=6))
    assert tiny.text == greedy.text
