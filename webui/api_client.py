"""A typed client over the HTTP API: one method per route the web UI uses.

Every failure is an ``ApiError`` carrying the server's code and message, so pages can show
``error.message`` and never a traceback. Streaming routes yield parsed events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import TypeAdapter

from webui.api_models import (
    ChatDelta,
    ChatDocs,
    ChatEvent,
    ChatFailure,
    ChatParams,
    Chunk,
    ChunkContext,
    Conversation,
    DocsResult,
    FileDetails,
    Health,
    Job,
    KbDetails,
    Message,
    RecreateEvent,
    SearchDoc,
    SourceDoc,
    TempDocs,
)
from webui.transport import ApiError, HttpApi

__all__ = ["ApiClient", "ApiError", "UploadFile"]

KB_MODEL_PREFIX = "kb/"
# A file to upload: its name and its bytes.
UploadFile = tuple[str, bytes]


class ApiClient(HttpApi):
    def _chat_events(
        self, path: str, body: dict[str, Any], delta_field: str
    ) -> Iterator[ChatEvent]:
        with self._stream(path, body) as payloads:
            for payload in payloads:
                if delta_field in payload:
                    yield ChatDelta(str(payload[delta_field]))
                elif "error" in payload:
                    error = payload["error"]
                    yield ChatFailure(
                        int(error.get("status", 500)),
                        str(error.get("code", "error")),
                        str(error.get("message", "")),
                    )
                elif "docs" in payload:
                    docs = TypeAdapter(list[SourceDoc]).validate_python(payload["docs"])
                    yield ChatDocs(docs, payload.get("search_query"))

    def fetch(self, path: str) -> bytes:
        """The body of a GET of an API path, such as a source's ``url``, sent with the API key.

        Only paths on this API are fetched: an absolute URL would carry the key elsewhere.
        """
        if not path.startswith("/") or path.startswith("//"):
            raise ApiError(0, "invalid_path", f"不是本 API 的路径: {path}")
        return self._response("GET", path).content

    # -- status and models ---------------------------------------------------------------------

    def health(self) -> Health:
        return Health.model_validate(self._request("GET", "/health"))

    def list_models(self) -> list[str]:
        """The LLMs (and "extractive"); ``kb/<name>`` entries are left out."""
        cards = self._request("GET", "/v1/models")["data"]
        return [str(card["id"]) for card in cards if not card["id"].startswith(KB_MODEL_PREFIX)]

    # -- knowledge bases -----------------------------------------------------------------------

    def list_knowledge_bases(self) -> list[KbDetails]:
        data = self._data("GET", "/knowledge_base/knowledge_bases")
        return TypeAdapter(list[KbDetails]).validate_python(data)

    def create_knowledge_base(
        self, name: str, *, description: str = "", embed_model: str | None = None
    ) -> KbDetails:
        body = {"knowledge_base_name": name, "kb_info": description, "embed_model": embed_model}
        data = self._data("POST", "/knowledge_base/create_knowledge_base", json=body)
        return KbDetails.model_validate(data)

    def set_kb_strict(self, name: str, strict: bool) -> KbDetails:
        body = {"knowledge_base_name": name, "strict": strict}
        data = self._data("POST", "/knowledge_base/update_info", json=body)
        return KbDetails.model_validate(data)

    def delete_knowledge_base(self, name: str) -> None:
        body = {"knowledge_base_name": name}
        self._request("POST", "/knowledge_base/delete_knowledge_base", json=body)

    def list_files(self, kb_name: str) -> list[FileDetails]:
        params = {"knowledge_base_name": kb_name}
        files = self._request("GET", "/knowledge_base/list_files", params=params)["files"]
        return TypeAdapter(list[FileDetails]).validate_python(files)

    def upload_docs(
        self,
        kb_name: str,
        files: Sequence[UploadFile],
        *,
        override: bool = False,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        zh_title_enhance: bool | None = None,
        background: bool | None = None,
    ) -> DocsResult:
        """Indexed now, or by a background job (``job_id`` set): ``background`` forces one
        or the other; None lets the server decide by size."""
        form = _form(
            knowledge_base_name=kb_name,
            override=override,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            zh_title_enhance=zh_title_enhance,
            background=background,
        )
        parts = [("files", (name, content)) for name, content in files]
        data = self._data("POST", "/knowledge_base/upload_docs", data=form, files=parts)
        return DocsResult.model_validate(data)

    def update_docs(self, kb_name: str, file_names: Sequence[str]) -> DocsResult:
        body = {"knowledge_base_name": kb_name, "file_names": list(file_names)}
        return DocsResult.model_validate(
            self._data("POST", "/knowledge_base/update_docs", json=body)
        )

    def delete_docs(
        self, kb_name: str, file_names: Sequence[str], *, delete_content: bool = True
    ) -> DocsResult:
        body = {
            "knowledge_base_name": kb_name,
            "file_names": list(file_names),
            "delete_content": delete_content,
        }
        return DocsResult.model_validate(
            self._data("POST", "/knowledge_base/delete_docs", json=body)
        )

    def download_path(self, kb_name: str, file_name: str) -> str:
        query = urlencode({"knowledge_base_name": kb_name, "file_name": file_name}, quote_via=quote)
        return f"/knowledge_base/download_doc?{query}"

    def download_doc(self, kb_name: str, file_name: str) -> bytes:
        return self.fetch(self.download_path(kb_name, file_name))

    def search_docs(
        self, kb_name: str, query: str, *, top_k: int = 3, score_threshold: float | None = None
    ) -> list[SearchDoc]:
        body = {
            "knowledge_base_name": kb_name,
            "query": query,
            "top_k": top_k,
            "score_threshold": score_threshold,
        }
        data = self._request("POST", "/knowledge_base/search_docs", json=body)
        return TypeAdapter(list[SearchDoc]).validate_python(data)

    def list_file_chunks(self, kb_name: str, file_name: str) -> list[Chunk]:
        params = {"knowledge_base_name": kb_name, "file_name": file_name}
        data = self._data("GET", "/knowledge_base/list_file_chunks", params=params)
        return TypeAdapter(list[Chunk]).validate_python(data)

    def chunk_context(
        self, kb_name: str, file_name: str, chunk_id: int, *, window: int = 300
    ) -> ChunkContext:
        params = {
            "knowledge_base_name": kb_name,
            "file_name": file_name,
            "chunk_id": chunk_id,
            "window": window,
        }
        data = self._request("GET", "/knowledge_base/chunk_context", params=params)
        return ChunkContext.model_validate(data)

    def update_chunk(self, kb_name: str, chunk_id: int, text: str) -> Chunk:
        body = {"knowledge_base_name": kb_name, "chunk_id": chunk_id, "text": text}
        return Chunk.model_validate(self._data("POST", "/knowledge_base/update_chunk", json=body))

    def recreate_vector_store(
        self, kb_name: str, *, force: bool = False
    ) -> Iterator[RecreateEvent]:
        """Progress events, then the summary; a failed rebuild raises ``ApiError``."""
        body = {"knowledge_base_name": kb_name, "allow_empty_kb": False, "force": force}
        with self._stream("/knowledge_base/recreate_vector_store", body) as payloads:
            for payload in payloads:
                event = RecreateEvent.model_validate(payload)
                if event.code != 200:
                    detail = payload.get("detail") or {}
                    raise ApiError(event.code, str(detail.get("code", "error")), event.msg)
                yield event

    # -- ingestion jobs ------------------------------------------------------------------------

    def list_jobs(self, kb_name: str, limit: int = 10) -> list[Job]:
        params = {"knowledge_base_name": kb_name, "limit": limit}
        return TypeAdapter(list[Job]).validate_python(
            self._data("GET", "/knowledge_base/jobs", params=params)
        )

    def get_job(self, job_id: str) -> Job:
        return Job.model_validate(self._data("GET", f"/knowledge_base/jobs/{quote(job_id)}"))

    def cancel_job(self, job_id: str) -> Job:
        path = f"/knowledge_base/jobs/{quote(job_id)}/cancel"
        return Job.model_validate(self._data("POST", path))

    def retry_job(self, job_id: str) -> Job:
        path = f"/knowledge_base/jobs/{quote(job_id)}/retry"
        return Job.model_validate(self._data("POST", path))

    # -- chat ----------------------------------------------------------------------------------

    def llm_chat(self, query: str, params: ChatParams) -> Iterator[ChatEvent]:
        return self._chat_events("/chat/chat", {"query": query, **params.body()}, "text")

    def kb_chat(self, query: str, kb_name: str, params: ChatParams) -> Iterator[ChatEvent]:
        body = {"query": query, "knowledge_base_name": kb_name, **params.retrieval_body()}
        return self._chat_events("/knowledge_base/chat", body, "answer")

    def upload_temp_docs(
        self, files: Sequence[UploadFile], *, prev_id: str | None = None
    ) -> TempDocs:
        parts = [("files", (name, content)) for name, content in files]
        form = _form(prev_id=prev_id)
        data = self._data("POST", "/knowledge_base/upload_temp_docs", data=form, files=parts)
        return TempDocs.model_validate(data)

    def file_chat(self, query: str, knowledge_id: str, params: ChatParams) -> Iterator[ChatEvent]:
        body = {"query": query, "knowledge_id": knowledge_id, **params.retrieval_body()}
        return self._chat_events("/chat/file_chat", body, "answer")

    # -- conversations -------------------------------------------------------------------------

    def list_conversations(self) -> list[Conversation]:
        data = self._request("GET", "/conversations")
        return TypeAdapter(list[Conversation]).validate_python(data)

    def create_conversation(self, name: str | None = None) -> Conversation:
        body = {} if name is None else {"name": name}
        return Conversation.model_validate(self._request("POST", "/conversations", json=body))

    def rename_conversation(self, conversation_id: str, name: str) -> Conversation:
        path = f"/conversations/{quote(conversation_id)}"
        return Conversation.model_validate(self._request("PATCH", path, json={"name": name}))

    def delete_conversation(self, conversation_id: str) -> None:
        self._request("DELETE", f"/conversations/{quote(conversation_id)}")

    def list_messages(self, conversation_id: str) -> list[Message]:
        data = self._request("GET", f"/conversations/{quote(conversation_id)}/messages")
        return TypeAdapter(list[Message]).validate_python(data)

    def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        docs: Sequence[SourceDoc] = (),
        model: str | None = None,
    ) -> Message:
        body = {
            "role": role,
            "content": content,
            "docs": [doc.model_dump() for doc in docs],
            "model": model,
        }
        path = f"/conversations/{quote(conversation_id)}/messages"
        return Message.model_validate(self._request("POST", path, json=body))

    def set_feedback(
        self, conversation_id: str, message_id: str, score: int, reason: str = ""
    ) -> Message:
        path = f"/conversations/{quote(conversation_id)}/messages/{quote(message_id)}/feedback"
        body = {"score": score, "reason": reason}
        return Message.model_validate(self._request("POST", path, json=body))


def _form(**fields: str | int | bool | None) -> dict[str, str]:
    """Multipart form fields; unset ones are left out so the server keeps its defaults."""
    return {
        key: (str(value).lower() if isinstance(value, bool) else str(value))
        for key, value in fields.items()
        if value is not None
    }
