"""Follow-up questions into standalone queries: the heuristic, the LLM's output check, and
the LLM rewriter against the tiny Qwen2 worker and against an LLM that is down."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from kb_server.chat.prompts import PromptTemplates
from kb_server.chat.query_rewrite import (
    HeuristicRewriter,
    LlmRewriter,
    entities,
    select_rewriter,
    usable_rewrite,
)
from kb_server.llm.base import ChatMessage, GenerationParams, LLMClient
from kb_server.llm.registry import build_llm_clients
from kb_server.settings import ChatSettings, load_settings
from tests.conftest import TINY_QWEN_MODEL_NAME

PHONE_TURN = [
    ChatMessage("user", "星辰X1手机多少钱？"),
    ChatMessage("assistant", "两千九百九十九元 [1]"),
]
TEMPLATES = PromptTemplates.load(load_settings().prompts_file)


def heuristic(history_turns: int = 2, max_terms: int = 4) -> HeuristicRewriter:
    return HeuristicRewriter(history_turns=history_turns, max_terms=max_terms)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_entities_are_runs_of_nouns_and_names_without_single_characters() -> None:
    assert entities("星辰X1手机多少钱？") == ["星辰X1手机"]
    assert entities("Orion Pro 路由器支持哪些功能？") == ["Orion Pro 路由器", "功能"]
    assert entities("What does the Orion X2 router cost?") == ["Orion X2"]


def test_a_pronoun_is_replaced_by_the_entities_of_the_last_user_turn() -> None:
    rewritten = heuristic().rewrite("它的价格呢？", PHONE_TURN)
    assert (rewritten.text, rewritten.method) == ("星辰X1手机的价格呢？", "heuristic")
    english = [ChatMessage("user", "What does the Orion X2 router cost?")]
    assert heuristic().rewrite("does it have wifi?", english).text == "does Orion X2 have wifi?"


def test_a_followup_without_pronoun_gets_the_entities_in_front() -> None:
    history = [ChatMessage("user", "青云牌空气净化器的滤网多久换一次")]
    rewritten = heuristic().rewrite("价格呢？", history)
    assert rewritten.text == "青云牌空气净化器 滤网 价格呢？"


def test_a_followup_that_names_something_is_kept_as_asked() -> None:
    rewritten = heuristic().rewrite("华为Mate60的价格呢？", PHONE_TURN)
    assert (rewritten.text, rewritten.method) == ("华为Mate60的价格呢？", "none")


def test_answers_are_not_read_and_only_the_last_user_turns_count() -> None:
    history = [
        ChatMessage("user", "青云路由器怎么设置？"),
        ChatMessage("assistant", "请参考星辰说明书"),
        ChatMessage("user", "星辰X1手机多少钱？"),
    ]
    assert heuristic(history_turns=1).rewrite("它呢", history).text == "星辰X1手机呢"
    both = heuristic(history_turns=2).rewrite("它呢", history).text
    assert both == "星辰X1手机 青云路由器呢"
    assert heuristic(history_turns=2, max_terms=1).rewrite("它呢", history).text == "星辰X1手机呢"


def test_entities_the_question_already_has_are_not_added_twice() -> None:
    rewritten = heuristic().rewrite("星辰X1手机的价格呢？", PHONE_TURN)
    assert (rewritten.text, rewritten.method) == ("星辰X1手机的价格呢？", "none")


@pytest.mark.parametrize(
    ("raw", "usable"),
    [
        ("  星辰X1手机的价格是多少？ \n", "星辰X1手机的价格是多少？"),
        ("改写后的问题：“星辰X1手机的价格是多少？”", "星辰X1手机的价格是多少？"),
        ("", None),
        ("  \n ", None),
        ("星辰X1手机的价格\n是多少？", None),
        ("价" * 41, None),
        ("星辰\x0c手机", None),
    ],
)
def test_an_llm_rewrite_must_be_one_short_nonempty_line(raw: str, usable: str | None) -> None:
    assert usable_rewrite(raw, max_chars=40) == usable


def test_the_setting_picks_the_rewriter() -> None:
    assert select_rewriter(ChatSettings(query_rewrite="off"), TEMPLATES.query_rewrite, None) is None
    auto = select_rewriter(ChatSettings(), TEMPLATES.query_rewrite, None)
    assert isinstance(auto, HeuristicRewriter)


@pytest.fixture
def tiny_qwen(llm_worker: str, tiny_qwen_dir: Path) -> LLMClient:
    settings = load_settings(
        local_models={
            TINY_QWEN_MODEL_NAME: {"path": tiny_qwen_dir, "port": urlparse(llm_worker).port}
        },
        llm={"max_retries": 0},
    )
    return build_llm_clients(settings)[TINY_QWEN_MODEL_NAME]


def llm_rewriter(client: LLMClient, max_chars: int, temperature: float = 0.0) -> LlmRewriter:
    params = GenerationParams(temperature=temperature, max_tokens=8, seed=2)
    return LlmRewriter(
        client, TEMPLATES.query_rewrite, heuristic(), params=params, max_chars=max_chars
    )


def test_the_llm_output_is_the_query_when_it_is_usable(tiny_qwen: LLMClient) -> None:
    # Sampled, the tiny model writes one line of (meaningless) text.
    rewriter = llm_rewriter(tiny_qwen, max_chars=200, temperature=0.7)
    raw = tiny_qwen.complete(rewriter.messages("它的价格呢？", PHONE_TURN), rewriter.params).text
    assert usable_rewrite(raw, 200) is not None
    rewritten = rewriter.rewrite("它的价格呢？", PHONE_TURN)
    assert (rewritten.text, rewritten.method) == (usable_rewrite(raw, 200), "llm")
    too_long = llm_rewriter(tiny_qwen, max_chars=2, temperature=0.7)
    assert too_long.rewrite("它的价格呢？", PHONE_TURN).method == "heuristic"


def test_blank_llm_output_falls_back_to_the_heuristic(tiny_qwen: LLMClient) -> None:
    # Greedy, the tiny model writes nothing but newlines.
    rewriter = llm_rewriter(tiny_qwen, max_chars=200)
    raw = tiny_qwen.complete(rewriter.messages("它的价格呢？", PHONE_TURN), rewriter.params).text
    assert raw
    assert not raw.strip()
    rewritten = rewriter.rewrite("它的价格呢？", PHONE_TURN)
    assert (rewritten.text, rewritten.method) == ("星辰X1手机的价格呢？", "heuristic")


def test_an_llm_that_is_down_falls_back_to_the_heuristic() -> None:
    settings = load_settings(
        llm_models={"down": {"base_url": f"http://127.0.0.1:{free_port()}/v1"}},
        llm={"max_retries": 0},
    )
    down = build_llm_clients(settings)["down"]
    rewritten = llm_rewriter(down, max_chars=200).rewrite("它的价格呢？", PHONE_TURN)
    assert (rewritten.text, rewritten.method) == ("星辰X1手机的价格呢？", "heuristic")
