"""A zip-bomb guard for the formats that are zip archives: docx, xlsx, pptx, epub.

``check_archive`` reads only the archive's central directory (no member is decompressed) and
fails the file when its members declare more than ``documents.max_unpacked_mb`` in all, or
when one large member is compressed far beyond what real documents reach. Loaders call it
before handing the file to python-docx, openpyxl, python-pptx or ebooklib.

Declared sizes can lie, but they still bound what is read: all four libraries read members
through CPython's ``zipfile``, whose reader stops at a member's declared size and then fails
its CRC check when the data was longer (``zipfile.BadZipFile``, which the loaders report as a
corrupt file). So a member never yields more bytes than the guard has already counted.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from kb_server.errors import DocumentLoadError

MB = 1024 * 1024
# Real XML and media parts compress at most a few dozen to one; a member this large that
# compresses further is almost surely padding meant to exhaust memory.
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_MIN_BYTES = 4 * MB


def check_archive(path: Path, max_unpacked_mb: float) -> None:
    """Raise ``DocumentLoadError`` if the zip at ``path`` would unpack to too much.

    A file that is not a zip archive passes: the loader then reports it in its own terms
    (corrupt, encrypted, another format renamed).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return
    total = 0
    for member in members:
        total += member.file_size
        if (
            member.file_size > RATIO_CHECK_MIN_BYTES
            and member.file_size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1)
        ):
            ratio = member.file_size / max(member.compress_size, 1)
            raise DocumentLoadError(
                path.name,
                f"member {member.filename!r} would unpack to {member.file_size / MB:.1f} MB "
                f"from {member.compress_size / 1024:.0f} KB (compressed {ratio:.0f}:1, more "
                f"than {MAX_COMPRESSION_RATIO}:1); it looks like a zip bomb",
            )
    if total > max_unpacked_mb * MB:
        raise DocumentLoadError(
            path.name,
            f"it would unpack to {total / MB:.1f} MB, more than documents.max_unpacked_mb "
            f"({max_unpacked_mb:g} MB); it may be a zip bomb",
        )
