"""File chat (Langchain-Chatchat 0.2.x paths): upload files into a temporary knowledge base,
then ask about them exactly as /knowledge_base/chat answers.

Temporary KBs expire after ``file_chat.ttl_s``; every call here first deletes the expired
ones, and an unknown or expired id is a 404.
"""

from __future__ import annotations

import threading
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import FileResponse

from kb_server.api.container import Container
from kb_server.api.downloads import file_response
from kb_server.api.envelope import CHATCHAT_TAG, Envelope, ok
from kb_server.api.routers.chat import _KB_CHAT_RESPONSES, _kb_chat
from kb_server.api.schemas.chat import KbChatAnswer
from kb_server.api.schemas.file_chat import FileChatBody, TempDocsResult
from kb_server.api.schemas.knowledge_base import merge_splitter
from kb_server.api.upload_limits import UploadLimitRoute
from kb_server.chat.file_chat import TempKnowledgeBases
from kb_server.chat.service import RetrievedDoc
from kb_server.knowledge.types import KbFileNotFoundError

# UploadLimitRoute: uploads over documents.max_request_mb or max_file_mb get a 413.
router = APIRouter(tags=["file_chat"], route_class=UploadLimitRoute)

# Guards the first creation of an app's TempKnowledgeBases: two would each cache indexes.
_BUILD_GUARD = threading.Lock()


def get_temp_kbs(request: Request) -> TempKnowledgeBases:
    """The app's temporary knowledge bases, made on first use (override in tests)."""
    state = request.app.state
    with _BUILD_GUARD:
        temp_kbs: TempKnowledgeBases | None = getattr(state, "temp_kbs", None)
        if temp_kbs is None:
            container: Container = state.container
            temp_kbs = TempKnowledgeBases.build(
                container.settings,
                llm_clients=container.chat.llm_clients,
                templates=container.chat.templates,
            )
            state.temp_kbs = temp_kbs
    return temp_kbs


TempKbsDep = Annotated[TempKnowledgeBases, Depends(get_temp_kbs)]


@router.post("/knowledge_base/upload_temp_docs", tags=[CHATCHAT_TAG])
def upload_temp_docs(
    temp_kbs: TempKbsDep,
    files: Annotated[list[UploadFile], File(description="上传文件，支持多文件")],
    prev_id: Annotated[str | None, Form(description="前知识库 ID：向其中追加文件")] = None,
    chunk_size: Annotated[int | None, Form(description="单段文本最大长度")] = None,
    chunk_overlap: Annotated[int | None, Form(description="相邻文本重合长度")] = None,
    zh_title_enhance: Annotated[bool | None, Form(description="是否开启中文标题加强")] = None,
) -> Envelope[TempDocsResult]:
    temp_kbs.sweep()
    service = temp_kbs.service
    if prev_id:
        base = service.get_kb(temp_kbs.kb_name(prev_id)).splitter
    else:
        base = service.settings.splitter
    splitter = merge_splitter(base, chunk_size, chunk_overlap, zh_title_enhance)
    temp_id = prev_id or temp_kbs.create(splitter)
    uploads = [(upload.filename or "", upload.file.read()) for upload in files]
    failed = temp_kbs.add_files(temp_id, uploads, splitter)
    return ok(TempDocsResult(id=temp_id, failed_files=failed), msg="文件上传与向量化完成")


@router.post(
    "/chat/file_chat",
    response_model=KbChatAnswer,
    responses=_KB_CHAT_RESPONSES,
    description="Answer a question from the files of a temporary knowledge base "
    "(upload_temp_docs' id), exactly as /knowledge_base/chat answers; its docs' urls point "
    "at download_temp_doc.",
)
def file_chat(body: FileChatBody, temp_kbs: TempKbsDep) -> Response:
    temp_kbs.sweep()
    kb_body = body.kb_chat_body(temp_kbs.kb_name(body.knowledge_id))

    def temp_doc_url(doc: RetrievedDoc) -> str:
        query = urlencode(
            {"knowledge_id": body.knowledge_id, "file_name": doc.file_name}, quote_via=quote
        )
        return f"{DOWNLOAD_TEMP_DOC_PATH}?{query}"

    return _kb_chat(temp_kbs.chat, kb_body, kb_body.score_threshold, temp_doc_url)


DOWNLOAD_TEMP_DOC_PATH = "/knowledge_base/download_temp_doc"


@router.get(DOWNLOAD_TEMP_DOC_PATH, description="A file of a temporary knowledge base.")
def download_temp_doc(
    knowledge_id: str, file_name: str, temp_kbs: TempKbsDep, preview: bool = False
) -> FileResponse:
    temp_kbs.sweep()
    kb_name = temp_kbs.kb_name(knowledge_id)
    path = temp_kbs.service.paths(kb_name).content_file(file_name)
    if not path.is_file():
        raise KbFileNotFoundError(kb_name, file_name)
    return file_response(path, preview=preview)
