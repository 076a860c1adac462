"""OpenAI's chat-completions and models wire format, plus our knowledge-base extras."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kb_server.api.schemas.chat import SourceDoc
from kb_server.api.schemas.retrieval import RetrievalOptions
from kb_server.llm.base import SEED_MAX, SEED_MIN, ChatMessage

# A model named "kb/<knowledge base>" answers from that knowledge base.
KB_MODEL_PREFIX = "kb/"


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class OpenAIMessage(BaseModel):
    # "developer" is what newer clients send in place of "system".
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def is_turn(self) -> bool:
        return self.role in ("user", "assistant")

    def to_message(self) -> ChatMessage:
        return ChatMessage("user" if self.role == "user" else "assistant", self.text())


class ChatCompletionBody(RetrievalOptions):
    model: str = Field(
        description='A configured LLM, or "kb/<knowledge base>" to answer from that '
        "knowledge base.",
        examples=["kb/samples"],
    )
    messages: list[OpenAIMessage] = Field(
        min_length=1,
        description="The conversation; the last message is the user's question. System "
        "messages are ignored: the server's prompt templates supply the system text.",
    )
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="Same as max_tokens.")
    stream: bool = False
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stop: str | list[str] | None = None
    # Ours, for "kb/..." models.
    llm_model: str | None = Field(
        None,
        description='kb/ models: the LLM that answers (or "extractive"); default: the '
        "server's default_llm_model.",
    )
    model_name: str | None = Field(None, description="Same as llm_model.")
    top_k: int = Field(3, ge=1, le=100, description="kb/ models: chunks to answer from.")
    score_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="kb/ models: the minimum score kept, in [0, 1] (see "
        "/knowledge_base/search_docs).",
    )

    prompt_name: str | None = Field(None, description="A template in configs/prompts.yaml.")
    strict: bool | None = Field(
        None,
        description="kb/ models: strict mode (answer only from retrieved text, refuse when no "
        "chunk passes the threshold); null: the knowledge base's setting.",
    )

    def kb_name(self) -> str | None:
        if self.model.startswith(KB_MODEL_PREFIX):
            return self.model.removeprefix(KB_MODEL_PREFIX)
        return None

    def answer_tokens(self) -> int | None:
        return self.max_tokens or self.max_completion_tokens

    def sampling(self) -> dict[str, Any]:
        """top_p and stop strings for the chat request, where the client gave them."""
        options: dict[str, Any] = {}
        if self.top_p is not None:
            options["top_p"] = self.top_p
        if self.stop:
            options["stop"] = [self.stop] if isinstance(self.stop, str) else self.stop
        return options


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage = Field(description="Estimated token counts.")
    docs: list[SourceDoc] | None = Field(
        None, description="kb/ models only: the sources of the answer."
    )
    search_query: str | None = Field(
        None,
        description="kb/ models only: what was searched, the last question or, with earlier "
        "turns, its standalone rewrite.",
    )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "kb-server"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    code: str | None = None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody
    docs: list[SourceDoc] | None = Field(
        None, description="kb/ models whose LLM failed: the sources still retrieved."
    )
