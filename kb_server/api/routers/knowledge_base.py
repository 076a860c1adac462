"""Knowledge-base management under ``/knowledge_base``, compatible with Langchain-Chatchat 0.2.x.

Unlike Chatchat, a failure is answered with its real HTTP status (the envelope's ``code`` equals
it). search_docs' ``score_threshold`` is a minimum score (docs/RETRIEVAL.md); values >= 1 keep
every hit, which is what Chatchat's default of 1.0 means on its own scale. upload_docs' ``docs``
and every ``not_refresh_vs_cache`` are accepted and ignored: the service refreshes its index
cache itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, Query, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from kb_server.api.container import Container
from kb_server.api.deps import ContainerDep, KbServiceDep, MaintenanceDep
from kb_server.api.downloads import file_response
from kb_server.api.envelope import CHATCHAT_TAG, Envelope, ok
from kb_server.api.rebuild_stream import rebuild_lines
from kb_server.api.schemas.jobs import JobAccepted
from kb_server.api.schemas.knowledge_base import (
    SAVED,
    ChunkOut,
    CreateKbRequest,
    DeleteDocsRequest,
    DocsResult,
    FileDetails,
    FileResult,
    KbDetails,
    KbNameBody,
    ListFilesResponse,
    RecreateRequest,
    SearchDoc,
    SearchDocsRequest,
    UpdateChunkRequest,
    UpdateDocsRequest,
    UpdateInfoRequest,
    merge_splitter,
)
from kb_server.api.sse import EventStreamResponse, sse_data
from kb_server.api.upload_limits import UploadLimitRoute
from kb_server.errors import KbError
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.paths import InvalidNameError, validate_file_name
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import (
    ChatPolicy,
    ChunkNotFoundError,
    IngestReport,
    KbFileExistsError,
    KbFileNotFoundError,
)
from kb_server.settings import JobSettings, SplitterSettings

logger = logging.getLogger(__name__)

# UploadLimitRoute: uploads over documents.max_request_mb or max_file_mb get a 413.
router = APIRouter(
    prefix="/knowledge_base",
    tags=["knowledge_base", CHATCHAT_TAG],
    route_class=UploadLimitRoute,
)

# Events waiting for a slow client; the rebuild waits when this many are unread.
EVENT_QUEUE_SIZE = 64
# A client that reads nothing for this long is gone: the rebuild goes on without its events.
CLIENT_STALL_SECONDS = 30.0
# The largest id a database row can have (SQLite's and PostgreSQL's 64-bit integers).
SQL_INTEGER_MAX = 2**63 - 1


# -- knowledge bases ---------------------------------------------------------------------------


@router.get("/list_knowledge_bases")
def list_knowledge_bases(service: KbServiceDep) -> Envelope[list[str]]:
    return ok([kb.name for kb in service.list_kbs()])


@router.get("/knowledge_bases")
def knowledge_bases(service: KbServiceDep) -> Envelope[list[KbDetails]]:
    return ok([KbDetails.of(kb) for kb in service.list_kbs()])


@router.post("/create_knowledge_base")
def create_knowledge_base(request: CreateKbRequest, service: KbServiceDep) -> Envelope[KbDetails]:
    info = service.create_kb(
        request.knowledge_base_name,
        description=request.description or request.kb_info,
        vs_type=request.vector_store_type,
        embed_model=request.embed_model,
        splitter=request.splitter(service.settings.splitter),
        chat_policy=request.chat_policy(ChatPolicy()),
    )
    return ok(KbDetails.of(info), msg=f"已新增知识库 {info.name}")


@router.post("/delete_knowledge_base")
def delete_knowledge_base(
    # Chatchat's clients send the bare name as the JSON body ("samples").
    body: Annotated[str | KbNameBody, Body(description='"name" or {"knowledge_base_name"}')],
    service: KbServiceDep,
) -> Envelope[None]:
    name = body if isinstance(body, str) else body.knowledge_base_name
    service.delete_kb(name)
    return ok(None, msg=f"成功删除知识库 {name}")


@router.post("/update_info")
def update_info(request: UpdateInfoRequest, service: KbServiceDep) -> Envelope[KbDetails]:
    name = request.knowledge_base_name
    info = service.get_kb(name)
    if request.kb_info is not None:
        info = service.update_info(name, request.kb_info)
    policy = request.chat_policy(info.chat_policy)
    if policy is not None:
        info = service.set_chat_policy(name, policy)
    return ok(KbDetails.of(info), msg="知识库介绍修改完成")


# -- files -------------------------------------------------------------------------------------


def file_details(service: KnowledgeBaseService, kb_name: str) -> list[FileDetails]:
    """Indexed (or failed) files, plus files only saved into the content folder."""
    details = {info.file_name: FileDetails.of(info) for info in service.list_files(kb_name)}
    paths = service.paths(kb_name)
    for name in service.content_files(kb_name):
        if name in details:
            continue
        try:
            stat = paths.content_file(name).stat()
        except (InvalidNameError, FileNotFoundError):
            # Copied in by hand under a name uploads refuse, or deleted since the listing.
            logger.warning("list_files: skipping %r in knowledge base %s", name, kb_name)
            continue
        details[name] = FileDetails.saved_only(name, stat.st_size, stat.st_mtime)
    return [details[name] for name in sorted(details)]


def checked_names(names: Sequence[str], failed: dict[str, str]) -> list[str]:
    """Valid, normalized, distinct names; the invalid ones go to ``failed`` with the reason."""
    valid: list[str] = []
    for name in names:
        try:
            valid.append(validate_file_name(name))
        except InvalidNameError as exc:
            failed[name] = exc.message
    return list(dict.fromkeys(valid))


BACKGROUND_HELP = (
    "true: index as a background job (HTTP 202 with its id); false: now; empty: by size"
)
# The answer of a request that became a background job.
JOB_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": Envelope[JobAccepted], "description": "Queued as a background job"}
}


def in_background(settings: JobSettings, requested: bool | None, sizes: Sequence[int]) -> bool:
    """The client's choice, else whether the files are too many or too large to index now."""
    if requested is not None:
        return requested
    too_large = sum(sizes) > settings.inline_max_mb * 1024 * 1024
    return too_large or len(sizes) > settings.inline_max_files


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def accepted_job(
    container: Container,
    response: Response,
    kb_name: str,
    kind: str,
    names: Sequence[str],
    result: DocsResult,
    splitter: SplitterSettings | None,
    options: dict[str, Any] | None = None,
) -> Envelope[JobAccepted | DocsResult]:
    """Queue a job over ``names``; the 202 answer holding its id and what was saved."""
    options = {**(options or {}), "splitter": splitter.model_dump() if splitter else None}
    job_id = container.jobs.submit(kb_name, kind, names, options)
    response.status_code = 202
    saved = [FileResult(file_name=name, status="saved") for name in names]
    data = JobAccepted(job_id=job_id, failed_files=result.failed_files, files=result.files + saved)
    return Envelope(code=202, msg=f"已转为后台任务 {job_id}", data=data)


def ingest_results(
    service: KnowledgeBaseService, kb_name: str, names: Sequence[str], report: IngestReport
) -> list[FileResult]:
    chunks = {info.file_name: info.chunk_count for info in service.list_files(kb_name)}
    results = []
    for name in names:
        if name in report.files_failed:
            reason = report.files_failed[name]
            results.append(FileResult(file_name=name, status="failed", reason=reason))
        else:
            status = "unchanged" if name in report.files_unchanged else "indexed"
            results.append(FileResult(file_name=name, status=status, chunks=chunks.get(name, 0)))
    return results


@router.get("/list_files")
def list_files(knowledge_base_name: str, service: KbServiceDep) -> ListFilesResponse:
    details = file_details(service, knowledge_base_name)
    # Chatchat's list holds the files the knowledge base knows (its database), not every file
    # in the folder: one deleted with delete_content=false is gone from it.
    known = [info.file_name for info in details if info.status != SAVED]
    return ListFilesResponse(data=known, files=details)


@router.post("/upload_docs", responses=JOB_ACCEPTED)
def upload_docs(
    service: KbServiceDep,
    container: ContainerDep,
    response: Response,
    files: Annotated[list[UploadFile], File(description="上传文件，支持多文件")],
    knowledge_base_name: Annotated[str, Form(description="知识库名称")],
    override: Annotated[bool, Form(description="覆盖已有文件")] = False,
    to_vector_store: Annotated[bool, Form(description="上传后是否进行向量化")] = True,
    chunk_size: Annotated[int | None, Form()] = None,
    chunk_overlap: Annotated[int | None, Form()] = None,
    zh_title_enhance: Annotated[bool | None, Form()] = None,
    docs: Annotated[str, Form(description="Chatchat's custom docs (JSON): ignored")] = "",
    not_refresh_vs_cache: Annotated[bool, Form()] = False,
    background: Annotated[bool | None, Form(description=BACKGROUND_HELP)] = None,
) -> Envelope[JobAccepted | DocsResult]:
    kb = service.get_kb(knowledge_base_name)
    splitter = merge_splitter(kb.splitter, chunk_size, chunk_overlap, zh_title_enhance)
    sizes = [upload.size or 0 for upload in files]
    as_job = in_background(container.settings.jobs, background, sizes)
    result = DocsResult()
    saved: list[str] = []
    for upload in files:
        name = upload.filename or ""
        try:
            name = validate_file_name(name)
            service.save_file(kb.name, name, upload.file.read(), override=override)
        except (InvalidNameError, KbFileExistsError) as exc:
            result.failed_files[name] = exc.message
            result.files.append(FileResult(file_name=name, status="failed", reason=exc.message))
        else:
            saved.append(name)
    saved = list(dict.fromkeys(saved))
    if to_vector_store and saved and as_job:
        return accepted_job(container, response, kb.name, "upload", saved, result, splitter)
    if not to_vector_store:
        result.files += [FileResult(file_name=name, status="saved") for name in saved]
    elif saved:
        report = service.add_files(kb.name, saved, splitter=splitter)
        result.failed_files.update(report.files_failed)
        result.files += ingest_results(service, kb.name, saved, report)
    msg = "文件上传与向量化完成" if to_vector_store else "文件上传完成"
    if docs.strip() not in ("", "{}", "null"):
        logger.info("upload_docs: ignoring custom docs for %s", kb.name)
        msg += "（不支持自定义 docs，已忽略）"
    return ok(result, msg=msg)


@router.post("/delete_docs")
def delete_docs(request: DeleteDocsRequest, service: KbServiceDep) -> Envelope[DocsResult]:
    kb_name = service.get_kb(request.knowledge_base_name).name
    result = DocsResult()
    names = checked_names(request.file_names, result.failed_files)
    present = {info.file_name for info in file_details(service, kb_name)}
    service.delete_files(kb_name, names, delete_content=request.delete_content)
    result.failed_files.update({name: "not found" for name in names if name not in present})
    return ok(result, msg="文件删除完成")


@router.post("/update_docs", responses=JOB_ACCEPTED)
def update_docs(
    request: UpdateDocsRequest,
    service: KbServiceDep,
    container: ContainerDep,
    response: Response,
    background: Annotated[bool | None, Query(description=BACKGROUND_HELP)] = None,
) -> Envelope[JobAccepted | DocsResult]:
    kb = service.get_kb(request.knowledge_base_name)
    result = DocsResult()
    names = checked_names(request.file_names, result.failed_files)
    paths = service.paths(kb.name)
    sizes = [_size(paths.content_file(name)) for name in names]
    if names and in_background(container.settings.jobs, background, sizes):
        splitter = request.splitter(kb.splitter)
        return accepted_job(container, response, kb.name, "update", names, result, splitter)
    report = service.update_files(kb.name, names, splitter=request.splitter(kb.splitter))
    result.failed_files.update(report.files_failed)
    result.files = ingest_results(service, kb.name, names, report)
    return ok(result, msg="更新文档完成")


@router.get("/download_doc")
def download_doc(
    knowledge_base_name: str, file_name: str, service: KbServiceDep, preview: bool = False
) -> FileResponse:
    kb_name = service.get_kb(knowledge_base_name).name
    path = service.paths(kb_name).content_file(file_name)
    if not path.is_file():
        raise KbFileNotFoundError(kb_name, file_name)
    return file_response(path, preview=preview)


# -- chunks and search -------------------------------------------------------------------------


@router.post("/search_docs")
def search_docs(request: SearchDocsRequest, service: KbServiceDep) -> list[SearchDoc]:
    hits = service.search(
        request.knowledge_base_name,
        request.query,
        top_k=request.top_k,
        score_threshold=request.min_score(),
        file_names=request.file_names(),
        search_mode=request.search_mode,
        rerank=request.rerank,
    )
    return [SearchDoc.of(hit) for hit in hits]


@router.get("/list_file_chunks")
def list_file_chunks(
    knowledge_base_name: str, file_name: str, service: KbServiceDep
) -> Envelope[list[ChunkOut]]:
    chunks = service.list_chunks(knowledge_base_name, file_name)
    return ok([ChunkOut.of(chunk) for chunk in chunks])


@router.post("/update_chunk")
def update_chunk(request: UpdateChunkRequest, service: KbServiceDep) -> Envelope[ChunkOut]:
    if abs(request.chunk_id) > SQL_INTEGER_MAX:
        # No such row can exist, and the database driver would overflow binding it.
        kb_name = service.paths(request.knowledge_base_name).name
        raise ChunkNotFoundError(f"chunk {request.chunk_id} is not in {kb_name!r}")
    chunk = service.edit_chunk(request.knowledge_base_name, request.chunk_id, request.text)
    return ok(ChunkOut.of(chunk))


# -- rebuild -----------------------------------------------------------------------------------


class RecreateRun:
    """One rebuild in its own thread; its progress reaches the response through a bounded queue.

    The rebuild always runs to its end, holding the KB's write lock, so a client that goes away
    never leaves the KB half-built; its events are then dropped instead of waited on.
    """

    def __init__(
        self,
        maintenance: KbMaintenance,
        kb_name: str,
        embed_model: str | None,
        force: bool,
        splitter: SplitterSettings | None,
    ) -> None:
        self.kb_name = kb_name
        self.total = 0
        self.finished = 0
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue(EVENT_QUEUE_SIZE)
        self._client_gone = threading.Event()
        # Not a daemon: shutting the server down waits for the rebuild to finish.
        self._thread = threading.Thread(
            target=self._run,
            args=(maintenance, embed_model, force, splitter),
            name=f"recreate-{kb_name}",
            daemon=False,
        )

    # IngestProgress
    def files_planned(self, total: int) -> None:
        self.total += total

    def file_stage(self, file_name: str, stage: str, done: int, total: int) -> None:
        pass

    def file_done(self, file_name: str, status: str, reason: str = "", chunks: int = 0) -> None:
        self.finished += 1
        self._emit(
            {
                "msg": f"({self.finished} / {self.total}): {file_name}",
                "doc": file_name,
                "status": status,
            }
        )

    def embedding_planned(self, total_chunks: int) -> None:
        pass

    def chunks_embedded(self, count: int) -> None:
        pass

    def _emit(self, event: dict[str, Any] | None) -> None:
        if event is not None:
            event = {"code": 200, **event, "total": self.total, "finished": self.finished}
        deadline = time.monotonic() + CLIENT_STALL_SECONDS
        while not self._client_gone.is_set():
            try:
                self._events.put(event, timeout=0.5)
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    self._client_gone.set()

    def _run(
        self,
        maintenance: KbMaintenance,
        embed_model: str | None,
        force: bool,
        splitter: SplitterSettings | None,
    ) -> None:
        final: dict[str, Any]
        try:
            report = maintenance.recreate(
                self.kb_name, embed_model=embed_model, force=force, splitter=splitter, progress=self
            )
            summary = {
                "indexed": len(report.files_indexed),
                "unchanged": len(report.files_unchanged),
                "failed": len(report.files_failed),
                "removed": len(report.files_removed),
                "chunks_embedded": report.chunks_embedded,
                "failed_files": report.files_failed,
            }
            final = {"msg": "done", "summary": summary}
        except KbError as exc:
            detail = {"code": exc.code, "message": exc.message}
            final = {"code": exc.http_status, "msg": exc.message, "detail": detail}
        except Exception as exc:
            logger.exception("recreating knowledge base %s failed", self.kb_name)
            final = {"code": 500, "msg": f"{type(exc).__name__}: {exc}"}
        self._emit(final)
        self._emit(None)

    def lines(self) -> Generator[str, None, None]:
        """``data: {json}`` events ending with the summary or the error. Closing this early
        (the client went away) lets the rebuild finish without waiting for a reader."""
        self._thread.start()
        try:
            while True:
                try:
                    event = self._events.get(timeout=0.5)
                except queue.Empty:
                    if self._thread.is_alive():
                        continue
                    break  # a reader that stalled too long had the last events dropped
                if event is None:
                    break
                yield sse_data(event)
            self._thread.join()
        finally:
            self._client_gone.set()


@router.post("/recreate_vector_store", responses=JOB_ACCEPTED, response_model=None)
def recreate_vector_store(
    request: RecreateRequest,
    service: KbServiceDep,
    maintenance: MaintenanceDep,
    container: ContainerDep,
    background: Annotated[
        bool | None, Query(description="true: a background job (202) instead of the stream")
    ] = None,
) -> EventStreamResponse | JSONResponse:
    name = service.paths(request.knowledge_base_name).name
    if request.allow_empty_kb:
        # Chatchat's behaviour: a folder without a row (or nothing at all) becomes a KB.
        maintenance.ensure_kb(name, embed_model=request.embed_model)
    # The rebuild runs in its own thread, where no caller is set: check the write here.
    kb = service.get_kb(name, write=True)
    splitter = merge_splitter(
        kb.splitter, request.chunk_size, request.chunk_overlap, request.zh_title_enhance
    )
    files = service.content_files(name)
    paths = service.paths(name)
    # Names found in the folder, not given by a client (content_file() refuses odd ones).
    sizes = [_size(paths.content / file) for file in files]
    # Unasked, a large rebuild is a job too, but the client still gets Chatchat's stream.
    if in_background(container.settings.jobs, background, sizes):
        known = {info.file_name for info in service.list_files(name)}
        removed = sorted(known - set(files))
        options = {"embed_model": request.embed_model, "force": request.force}
        response = Response()
        accepted = accepted_job(
            container, response, name, "rebuild", files, DocsResult(), splitter, options
        )
        if background is None and isinstance(accepted.data, JobAccepted):
            store = container.jobs.store
            return EventStreamResponse(rebuild_lines(store, accepted.data.job_id, removed))
        return JSONResponse(accepted.model_dump(mode="json"), status_code=response.status_code)
    run = RecreateRun(maintenance, name, request.embed_model, request.force, splitter)
    return EventStreamResponse(run.lines())
