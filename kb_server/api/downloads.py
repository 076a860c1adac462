"""Sending a knowledge base's file back: inline for a preview, else as an attachment."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi.responses import FileResponse


def file_response(path: Path, *, preview: bool) -> FileResponse:
    return FileResponse(
        path,
        media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        filename=path.name,
        content_disposition_type="inline" if preview else "attachment",
    )
