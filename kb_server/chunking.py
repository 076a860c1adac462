"""The one entry point from a file on disk to chunks: load by extension, then split.

Everything later (knowledge-base ingest, file chat, the CLI) calls ``load_and_split`` or a
``DocumentPipeline`` it keeps for many files.
"""

from __future__ import annotations

import logging
from pathlib import Path

from langchain_core.documents import Document

from kb_server.documents.base import LoaderContext, LoadProgress, MeteredOcrReader
from kb_server.documents.ocr import get_ocr_reader
from kb_server.documents.registry import LoaderRegistry
from kb_server.errors import DocumentLoadError, KbError
from kb_server.settings import Settings, SplitterSettings
from kb_server.splitting import split_documents
from kb_server.splitting.base import Chunk

logger = logging.getLogger(__name__)


def build_loader_context(settings: Settings) -> LoaderContext:
    progress = LoadProgress()
    ocr = MeteredOcrReader(get_ocr_reader(settings.ocr), progress) if settings.ocr.enabled else None
    return LoaderContext(documents=settings.documents, ocr=ocr, progress=progress)


def source_name(path: Path, content_root: Path | None) -> str:
    """The ``source`` metadata: the path relative to the content folder, with forward slashes."""
    if content_root is None:
        return path.name
    return path.resolve().relative_to(content_root.resolve()).as_posix()


class DocumentPipeline:
    """Loads and splits files with one configuration; build once, use for many files."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = build_loader_context(settings)
        self.registry = LoaderRegistry(self.context)

    def load(self, path: Path, *, content_root: Path | None = None) -> list[Document]:
        """Read one file into documents whose metadata names their ``source`` and ``loader``.

        Raises UnsupportedFileTypeError for an extension no loader handles and
        DocumentLoadError for a file that cannot be read; never a library's own exception.
        """
        loader = self.registry.loader_for(path)
        source = source_name(path, content_root)
        if not path.is_file():
            raise DocumentLoadError(source, "file not found")
        try:
            documents = loader.load(path)
        except KbError:
            raise
        except Exception as exc:
            # Parsers of untrusted files fail in countless library-specific ways; the user
            # needs the file name and the reason, the operator the traceback.
            logger.warning("loader %s failed on %s", loader.name, source, exc_info=True)
            raise DocumentLoadError(source, f"{type(exc).__name__}: {exc}") from exc
        for document in documents:
            document.metadata = {**document.metadata, "source": source, "loader": loader.name}
        return documents

    def load_and_split(
        self,
        path: Path,
        *,
        content_root: Path | None = None,
        splitter: SplitterSettings | None = None,
    ) -> list[Chunk]:
        documents = self.load(path, content_root=content_root)
        return split_documents(documents, splitter or self.settings.splitter)


def load_and_split(
    path: Path,
    settings: Settings,
    *,
    content_root: Path | None = None,
    splitter: SplitterSettings | None = None,
) -> list[Chunk]:
    """Load one file and split it into chunks with metadata.

    ``content_root``: the knowledge base's content folder; ``source`` is taken relative to it.
    ``splitter``: per-KB or per-upload chunk settings (default: ``settings.splitter``).
    """
    return DocumentPipeline(settings).load_and_split(
        path, content_root=content_root, splitter=splitter
    )
