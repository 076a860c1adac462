"""Upload size limits from the settings, answered with HTTP 413 before anything is stored.

Routes of a router built with ``route_class=UploadLimitRoute`` check both limits before their
dependencies or their function run, so a refused upload changes nothing:

- ``documents.max_request_mb`` bounds a whole request: from Content-Length when the client
  sends one, and by counting the body's bytes as they arrive (a chunked upload, or a
  Content-Length that lies), so an oversize body is never read to its end.
- ``documents.max_file_mb`` bounds each file of a multipart body. Starlette spools the files
  to temporary files while parsing; their sizes are compared, their bytes are not read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Message, Receive

from kb_server.errors import UploadTooLargeError
from kb_server.settings import DocumentSettings

MB = 1024 * 1024


def limit_bytes(limit_mb: float) -> int:
    return int(limit_mb * MB)


def _shown_mb(size: int) -> str:
    return f"{size / MB:.2f} MB"


def request_too_large(size: int | None, limits: DocumentSettings) -> UploadTooLargeError:
    """The error for a request body of ``size`` bytes (None: more than the limit, so far)."""
    limit_mb = limits.max_request_mb
    shown = f"is {_shown_mb(size)}" if size is not None else "is larger"
    return UploadTooLargeError(
        f"The upload request {shown}, more than documents.max_request_mb ({limit_mb:g} MB); "
        "send fewer or smaller files per request. Nothing of it was stored",
        setting="documents.max_request_mb",
        limit_mb=limit_mb,
    )


def upload_size(upload: UploadFile) -> int:
    """The size of a parsed upload: Starlette's count, else the spooled file's length."""
    if upload.size is not None:
        return upload.size
    position = upload.file.tell()
    size = upload.file.seek(0, os.SEEK_END)
    upload.file.seek(position)
    return size


def check_upload_sizes(uploads: Sequence[UploadFile], limits: DocumentSettings) -> None:
    """Raise ``UploadTooLargeError`` for the first upload over ``documents.max_file_mb``."""
    max_bytes = limit_bytes(limits.max_file_mb)
    for upload in uploads:
        size = upload_size(upload)
        if size > max_bytes:
            name = upload.filename or "(no name)"
            raise UploadTooLargeError(
                f"File {name!r} is {_shown_mb(size)}, more than documents.max_file_mb "
                f"({limits.max_file_mb:g} MB). Nothing of this upload was stored",
                setting="documents.max_file_mb",
                limit_mb=limits.max_file_mb,
                file_name=name,
            )


def _counting_receive(receive: Receive, max_bytes: int, limits: DocumentSettings) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise request_too_large(None, limits)
        return message

    return counted


async def _check_form_files(request: Request, limits: DocumentSettings) -> None:
    """Parse the multipart body now (the request keeps it for the route) and check its files."""
    try:
        form = await request.form()
    except MultiPartException as exc:
        raise HTTPException(status_code=400, detail=exc.message) from exc
    uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    try:
        check_upload_sizes(uploads, limits)
    except UploadTooLargeError:
        await form.close()
        raise


class UploadLimitRoute(APIRoute):
    """An APIRoute that refuses an upload over the request or the per-file limit with 413."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited_handler(request: Request) -> Response:
            limits: DocumentSettings = request.app.state.container.settings.documents
            max_bytes = limit_bytes(limits.max_request_mb)
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise request_too_large(int(declared), limits)
            counted = Request(request.scope, _counting_receive(request.receive, max_bytes, limits))
            content_type = request.headers.get("content-type", "")
            if content_type.lower().startswith("multipart/form-data"):
                await _check_form_files(counted, limits)
            try:
                return await handler(counted)
            except HTTPException as exc:
                # FastAPI answers any failure while reading a body with Starlette's
                # HTTPException 400, raised from the original error.
                if isinstance(exc.__cause__, UploadTooLargeError):
                    raise exc.__cause__ from None
                raise

        return limited_handler
