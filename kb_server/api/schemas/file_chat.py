"""Bodies and answers of file chat (Langchain-Chatchat 0.2.x's upload_temp_docs and file_chat)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from kb_server.api.schemas.chat import KbChatBody, RetrievalChatBody


class TempDocsResult(BaseModel):
    id: str = Field(description="The temporary knowledge base: file_chat's knowledge_id.")
    failed_files: dict[str, str] = Field(
        default_factory=dict, description="Files that could not be used, with the reason."
    )


class FileChatBody(RetrievalChatBody):
    """/knowledge_base/chat's body with the temporary knowledge base's id as its source."""

    query: str = Field(description="The question.", examples=["这份文件讲了什么？"])
    knowledge_id: str = Field(description="The id upload_temp_docs returned.")

    def kb_chat_body(self, kb_name: str) -> KbChatBody:
        """The same request as a /knowledge_base/chat body over ``kb_name``."""
        fields = self.model_dump(exclude={"knowledge_id"})
        return KbChatBody.model_validate({**fields, "knowledge_base_name": kb_name})
