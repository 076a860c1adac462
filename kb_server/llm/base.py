"""The LLM contract: chat messages in, text deltas out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]


# Sampling seeds are 64-bit: a local model's torch.manual_seed fails on a bigger one, and a
# failed generation reads as the LLM being down, not as a bad request.
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: Sequence[str] = field(default_factory=tuple)
    seed: int | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None = None
    usage: Usage | None = None


class LLMClient(Protocol):
    """One chat model behind an OpenAI-compatible endpoint."""

    @property
    def name(self) -> str: ...

    @property
    def context_window(self) -> int: ...

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        """Text deltas as the server sends them. Closing the iterator closes the request."""
        ...

    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion: ...
