"""Prompt templates from configs/prompts.yaml, and assembly within a token budget.

The budget: system prompt and question always go in; then retrieved chunks in rank order; then
history from the newest turn back. What does not fit is left out, never cut mid-sentence
silently: a chunk that fits only in part is shortened with an ellipsis.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, model_validator

from kb_server.errors import InvalidInputError, KbError
from kb_server.llm.base import ChatMessage

TokenCounter = Callable[[str], int]
# Per-message overhead of chat templates (role markers, separators), in tokens.
MESSAGE_OVERHEAD_TOKENS = 8
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
REFERENCE_CLOSE = "</参考资料>"


class UnknownPromptError(KbError):
    code = "unknown_prompt"
    http_status = 422


class KbChatPrompt(BaseModel):
    system: str
    user: str
    no_docs: str
    # Strict mode; None: the default template's.
    strict_system: str | None = None
    strict_refusal: str | None = None

    def strict(self) -> KbChatPrompt:
        """This template with strict mode's system prompt in place of its own."""
        return self.model_copy(update={"system": self.strict_system or self.system})


class LlmChatPrompt(BaseModel):
    system: str


class QueryRewritePrompt(BaseModel):
    """Asks an LLM for the standalone form of a follow-up question."""

    system: str
    # Placeholders: {history} (one line per turn), {question}.
    user: str


class ExtractivePrompt(BaseModel):
    header: str
    max_sentences: int = Field(3, ge=1, le=20)


class PromptTemplates(BaseModel):
    llm_chat: dict[str, LlmChatPrompt]
    kb_chat: dict[str, KbChatPrompt]
    query_rewrite: QueryRewritePrompt
    extractive: ExtractivePrompt

    @model_validator(mode="after")
    def _default_kb_template_is_complete(self) -> PromptTemplates:
        default = self.kb_chat.get("default")
        if default is None or default.strict_system is None or default.strict_refusal is None:
            raise ValueError(
                "kb_chat needs a 'default' template with strict_system and "
                "strict_refusal (the other templates fall back to them)"
            )
        return self

    @classmethod
    def load(cls, path: Path) -> PromptTemplates:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        return cls.model_validate(data)

    def kb(self, name: str | None) -> KbChatPrompt:
        """The named template, its strict-mode texts filled in from the default one."""
        template = self.kb_chat[_known(self.kb_chat, name, "kb_chat")]
        default = self.kb_chat["default"]
        return template.model_copy(
            update={
                "strict_system": template.strict_system or default.strict_system,
                "strict_refusal": template.strict_refusal or default.strict_refusal,
            }
        )

    def llm(self, name: str | None) -> LlmChatPrompt:
        return self.llm_chat[_known(self.llm_chat, name, "llm_chat")]


def _known(templates: dict[str, Any], name: str | None, kind: str) -> str:
    key = name or "default"
    if key not in templates:
        raise UnknownPromptError(
            f"no {kind} prompt named {key!r}; known: {', '.join(sorted(templates))}"
        )
    return key


def estimate_tokens(text: str) -> int:
    """A conservative count for models whose tokenizer is not at hand: one token per CJK
    character, one per four other characters."""
    cjk = len(_CJK.findall(text))
    return cjk + (len(text) - cjk + 3) // 4


@dataclass(frozen=True)
class Reference:
    """One retrieved chunk as the prompt shows it; ``number`` is what answers cite."""

    number: int
    source: str
    text: str
    page: int | None = None


def format_reference(reference: Reference) -> str:
    where = reference.source + (f"，第{reference.page}页" if reference.page else "")
    # A document must not be able to end the reference block and speak as the user.
    body = reference.text.replace(REFERENCE_CLOSE, "</ 参考资料>")
    return f"[{reference.number}] 来源：{where}\n{body}"


@dataclass(frozen=True)
class BuiltPrompt:
    messages: list[ChatMessage]
    references_used: int
    history_used: int


class PromptBuilder:
    def __init__(self, count_tokens: TokenCounter, context_window: int, max_tokens: int) -> None:
        self.count = count_tokens
        self.budget = context_window - max_tokens
        if self.budget <= 0:
            raise InvalidInputError(
                f"max_tokens ({max_tokens}) leaves no room in the context window ({context_window})"
            )

    def _fixed_cost(self, texts: Sequence[str]) -> int:
        return sum(self.count(text) + MESSAGE_OVERHEAD_TOKENS for text in texts)

    def _fit_history(
        self, history: Sequence[ChatMessage], remaining: int
    ) -> tuple[list[ChatMessage], int]:
        kept: list[ChatMessage] = []
        for message in reversed(history):
            cost = self.count(message.content) + MESSAGE_OVERHEAD_TOKENS
            if cost > remaining:
                break
            kept.insert(0, message)
            remaining -= cost
        return kept, remaining

    def _fit_references(self, references: Sequence[Reference], remaining: int) -> list[str]:
        blocks: list[str] = []
        for reference in references:
            block = format_reference(reference)
            cost = self.count(block) + 2
            if cost <= remaining:
                blocks.append(block)
                remaining -= cost
                continue
            if remaining > 64:  # worth a shortened chunk rather than none
                shortened = block
                while shortened and self.count(shortened + "…") + 2 > remaining:
                    shortened = shortened[: int(len(shortened) * 0.8)]
                if shortened:
                    blocks.append(shortened + "…")
            break
        return blocks

    def chat(self, system: str, history: Sequence[ChatMessage], question: str) -> BuiltPrompt:
        remaining = self.budget - self._fixed_cost([system, question])
        if remaining < 0:
            raise InvalidInputError("the question is too long for the model's context window")
        kept, _ = self._fit_history(history, remaining)
        messages = [ChatMessage("system", system), *kept, ChatMessage("user", question)]
        return BuiltPrompt(messages, 0, len(kept))

    def kb_chat(
        self,
        template: KbChatPrompt,
        references: Sequence[Reference],
        history: Sequence[ChatMessage],
        question: str,
    ) -> BuiltPrompt:
        frame = template.user.format(context="", question=question)
        remaining = self.budget - self._fixed_cost([template.system, frame])
        if remaining < 0:
            raise InvalidInputError("the question is too long for the model's context window")
        # Sources come before history: an answer needs its evidence more than old turns.
        blocks = self._fit_references(references, remaining)
        remaining -= sum(self.count(block) + 2 for block in blocks)
        kept, _ = self._fit_history(history, max(remaining, 0))
        user = template.user.format(context="\n\n".join(blocks), question=question)
        messages = [ChatMessage("system", template.system), *kept, ChatMessage("user", user)]
        return BuiltPrompt(messages, len(blocks), len(kept))
