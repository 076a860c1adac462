"""Bodies and answers of file chat (Langchain-Chatchat 0.2.x's upload_temp_docs and file_chat)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from kb_server.api.schemas.chat import KbChatBody, LlmChatBody


class TempDocsResult(BaseModel):
    id: str = Field(description="The temporary knowledge base: file_chat's knowledge_id.")
    failed_files: dict[str, str] = Field(
        default_factory=dict, description="Files that could not be used, with the reason."
    )


class FileChatBody(LlmChatBody):
    """/knowledge_base/chat's body with the temporary knowledge base's id as its source."""

    query: str = Field(description="The question.", examples=["这份文件讲了什么？"])
    knowledge_id: str = Field(description="The id upload_temp_docs returned.")
    top_k: int = Field(3, ge=1, le=100, description="How many chunks to answer from.")
    score_threshold: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="The minimum cosine similarity a chunk needs (higher is stricter); "
        "null keeps every chunk.",
    )
    model_name: str | None = Field(
        None,
        description='An LLM, or "extractive" (cited sentences, no LLM); '
        "default: the server's default_llm_model.",
    )

    def kb_chat_body(self, kb_name: str) -> KbChatBody:
        """The same request as a /knowledge_base/chat body over ``kb_name``."""
        fields = self.model_dump(exclude={"knowledge_id"})
        return KbChatBody.model_validate({**fields, "knowledge_base_name": kb_name})
