"""Adding and removing files of one knowledge base, in the order that survives a crash.

1. Load, split and embed (nothing stored is touched; a failure here changes nothing).
2. One database transaction replaces the files' rows and chunks (new chunk ids = vector ids).
3. The index drops the old ids, adds the new vectors and is saved atomically.
4. The keyword index drops the old ids and adds the new chunks' terms in one commit.
A crash between 2 and 4 leaves chunks without vectors or terms and stale entries without
chunks: search ignores the latter, and ``check``/``repair`` finds and mends both (terms come
back from the chunk text in the database, without the embedding model).
The caller holds the KB's write lock.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kb_server.chunking import DocumentPipeline
from kb_server.db.engine import Database
from kb_server.db.models import ChunkRow, FileStatus, KnowledgeFile
from kb_server.embedding.base import Embedder
from kb_server.errors import KbError
from kb_server.failpoints import failpoint
from kb_server.knowledge.paths import KbPaths
from kb_server.knowledge.types import IngestProgress, IngestReport
from kb_server.retrieval.analyzer import KeywordAnalyzer
from kb_server.settings import SplitterSettings
from kb_server.splitting import split_documents
from kb_server.splitting.base import Chunk
from kb_server.stores.base import VectorStore
from kb_server.stores.keyword import KeywordEntry, KeywordIndex

logger = logging.getLogger(__name__)

# Files are stored in groups of about this many chunks: bounds memory and the work a crash
# can lose, while keeping index saves (which rewrite the whole index file) infrequent.
GROUP_CHUNKS = 4096
# Chunks read back from the database per keyword-index commit when terms are rebuilt.
KEYWORD_REBUILD_BATCH = 2000


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def splitter_of(row: KnowledgeFile) -> SplitterSettings:
    return SplitterSettings(
        chunk_size=row.chunk_size,
        chunk_overlap=row.chunk_overlap,
        zh_title_enhance=row.zh_title_enhance,
    )


@dataclass
class PreparedFile:
    file_name: str
    sha256: str
    size: int
    mtime: float
    splitter: SplitterSettings
    loader: str = ""
    chunks: list[Chunk] = field(default_factory=list)
    error: str = ""


class KbWriter:
    """Changes one KB's rows and vectors; build one per locked operation."""

    def __init__(
        self,
        *,
        db: Database,
        kb_id: int,
        paths: KbPaths,
        kb_splitter: SplitterSettings,
        embedder: Callable[[], Embedder],
        dimension: int,
        store: VectorStore,
        save_store: Callable[[], None],
        keywords: KeywordIndex,
        analyzer: KeywordAnalyzer,
        pipeline: DocumentPipeline,
        batch_size: int,
        progress: IngestProgress,
    ) -> None:
        self.db = db
        self.kb_id = kb_id
        self.paths = paths
        self.kb_splitter = kb_splitter
        self._load_embedder = embedder
        self._embedder: Embedder | None = None
        self.model_load_seconds = 0.0
        self.dimension = dimension
        self.store = store
        self.save_store = save_store
        self.keywords = keywords
        self.analyzer = analyzer
        self._keyword_analyzer_checked = False
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.progress = progress

    # -- embedding ---------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: a run where every file is unchanged never loads the model."""
        if self._embedder is None:
            started = time.perf_counter()
            self._embedder = self._load_embedder()
            self.model_load_seconds += time.perf_counter() - started
        return self._embedder

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Vectors for texts, in batches of similar length (less padding), with progress."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            vectors[batch] = self.embedder.embed_documents([texts[i] for i in batch])
            self.progress.chunks_embedded(len(batch))
        return vectors

    # -- ingest ------------------------------------------------------------------------------

    def ingest(
        self,
        file_names: Sequence[str],
        *,
        splitter: SplitterSettings | None = None,
        force: bool = False,
    ) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        existing = self._existing_files()
        indexed_ids = self.store.ids()
        keyword_ids = self.current_keyword_ids()
        unchanged_ids: list[int] = []
        self.progress.files_planned(len(file_names))
        group: list[PreparedFile] = []
        group_chunks = 0
        for file_name in file_names:
            path = self.paths.content_file(file_name)
            row = existing.get(file_name)
            wanted = splitter or (splitter_of(row) if row else self.kb_splitter)
            if not path.is_file():
                report.files_failed[file_name] = "file not found in the content folder"
                self._file_done(file_name, "failed", report.files_failed[file_name])
                continue
            stat = path.stat()
            sha = file_sha256(path)
            if not force and row is not None and self._unchanged(row, sha, wanted, indexed_ids):
                unchanged_ids += self._chunk_ids(row)
                report.files_unchanged.append(file_name)
                report.chunks_reused += row.chunk_count
                self._file_done(file_name, "unchanged", chunks=row.chunk_count)
                continue
            prepared = PreparedFile(file_name, sha, stat.st_size, stat.st_mtime, wanted)
            self._load(prepared, path)
            group.append(prepared)
            group_chunks += len(prepared.chunks)
            if group_chunks >= GROUP_CHUNKS:
                self._store_group(group, report)
                group, group_chunks = [], 0
        if group:
            self._store_group(group, report)
        # Unchanged files keep their vectors; their terms are added if the keyword index lacks
        # them (a KB from before keyword search, a lost or outdated keyword index).
        self.index_keywords_from_db([i for i in unchanged_ids if i not in keyword_ids])
        report.model_load_seconds = self.model_load_seconds
        report.seconds = time.perf_counter() - started - self.model_load_seconds
        return report

    def _existing_files(self) -> dict[str, KnowledgeFile]:
        with self.db.session() as session:
            rows = session.scalars(select(KnowledgeFile).where(KnowledgeFile.kb_id == self.kb_id))
            return {row.file_name: row for row in rows}

    def _unchanged(
        self, row: KnowledgeFile, sha: str, wanted: SplitterSettings, indexed_ids: set[int]
    ) -> bool:
        if row.status != FileStatus.INDEXED or row.sha256 != sha or splitter_of(row) != wanted:
            return False
        return all(chunk_id in indexed_ids for chunk_id in self._chunk_ids(row))

    def _chunk_ids(self, row: KnowledgeFile) -> list[int]:
        with self.db.session() as session:
            return list(session.scalars(select(ChunkRow.id).where(ChunkRow.file_id == row.id)))

    # -- keyword index -----------------------------------------------------------------------

    def _check_keyword_analyzer(self) -> None:
        """Empty a keyword index whose terms came from another analyzer version (they would
        never match), before anything is added to it."""
        if self._keyword_analyzer_checked:
            return
        if not self.analyzer.built(self.keywords):
            logger.info("keyword index analyzed with another version: rebuilding it")
            self.keywords.clear(self.analyzer.version)
        self._keyword_analyzer_checked = True

    def current_keyword_ids(self) -> set[int]:
        self._check_keyword_analyzer()
        return self.keywords.ids()

    def update_keywords(
        self, *, delete: Collection[int] = (), add: Sequence[KeywordEntry] = ()
    ) -> None:
        self._check_keyword_analyzer()
        self.keywords.update(delete=delete, add=add, analyzer_version=self.analyzer.version)

    def keyword_entries(self, rows: Sequence[tuple[int, str]]) -> list[KeywordEntry]:
        return [KeywordEntry(chunk_id, self.analyzer.terms(text)) for chunk_id, text in rows]

    def index_keywords_from_db(self, chunk_ids: Sequence[int]) -> None:
        """(Re)index the terms of chunks from their text in the database."""
        for start in range(0, len(chunk_ids), KEYWORD_REBUILD_BATCH):
            batch = chunk_ids[start : start + KEYWORD_REBUILD_BATCH]
            with self.db.session() as session:
                rows = session.execute(
                    select(ChunkRow.id, ChunkRow.text).where(
                        ChunkRow.kb_id == self.kb_id, ChunkRow.id.in_(batch)
                    )
                ).all()
            self.update_keywords(add=self.keyword_entries([(i, text) for i, text in rows]))

    def index_missing_keywords(self) -> int:
        """Analyze the KB's chunks that the keyword index lacks; returns how many there were."""
        known = self.current_keyword_ids()
        with self.db.session() as session:
            chunk_ids = session.scalars(select(ChunkRow.id).where(ChunkRow.kb_id == self.kb_id))
            missing = [chunk_id for chunk_id in chunk_ids if chunk_id not in known]
        self.index_keywords_from_db(missing)
        return len(missing)

    def drop_keyword_orphans(self, chunk_ids: set[int]) -> None:
        """Remove keyword entries whose chunks are gone."""
        orphans = self.current_keyword_ids() - chunk_ids
        if orphans:
            logger.info("removing %d keyword entries without chunks", len(orphans))
            self.update_keywords(delete=orphans)

    def _load(self, prepared: PreparedFile, path: Path) -> None:
        name = prepared.file_name

        def on_ocr_page(number: int, total: int) -> None:
            self.progress.file_stage(name, "ocr", number, total)

        self.progress.file_stage(name, "loading", 0, 0)
        try:
            prepared.loader = self.pipeline.registry.loader_for(path).name
            with self.pipeline.context.progress.listening(on_ocr_page):
                documents = self.pipeline.load(path, content_root=self.paths.content)
            self.progress.file_stage(name, "splitting", 0, 0)
            prepared.chunks = split_documents(documents, prepared.splitter)
        except KbError as exc:
            prepared.error = exc.message
            return
        if not prepared.chunks:
            prepared.error = "no text could be extracted from this file"

    def _store_group(self, group: list[PreparedFile], report: IngestReport) -> None:
        texts = [chunk.text for prepared in group for chunk in prepared.chunks]
        for prepared in group:
            if prepared.chunks:
                self.progress.file_stage(prepared.file_name, "embedding", 0, len(texts))
        self.progress.embedding_planned(len(texts))
        vectors = self.embed(texts)
        terms = [self.analyzer.terms(text) for text in texts]
        failpoint("ingest.loaded")
        new_ids: list[int] = []
        old_ids: list[int] = []
        with self.db.transaction() as session:
            for prepared in group:
                old_ids += self._replace_rows(session, prepared, new_ids)
        failpoint("ingest.rows_committed")
        self.store.delete(old_ids)
        if new_ids:
            self.store.add(new_ids, vectors)
        self.save_store()
        failpoint("ingest.vectors_saved")
        self.update_keywords(
            delete=old_ids, add=[KeywordEntry(i, t) for i, t in zip(new_ids, terms, strict=True)]
        )
        for prepared in group:
            if prepared.error:
                report.files_failed[prepared.file_name] = prepared.error
                self._file_done(prepared.file_name, "failed", prepared.error)
            else:
                report.files_indexed.append(prepared.file_name)
                report.chunks_embedded += len(prepared.chunks)
                self._file_done(prepared.file_name, "indexed", chunks=len(prepared.chunks))

    def _file_done(self, file_name: str, status: str, reason: str = "", chunks: int = 0) -> None:
        """Progress, and one log line per file (its name and outcome, never its text)."""
        self.progress.file_done(file_name, status, reason, chunks)
        logger.info(
            "ingest kb=%s file=%r status=%s chunks=%d%s",
            self.paths.name,
            file_name,
            status,
            chunks,
            f" reason={reason!r}" if reason else "",
        )

    def _replace_rows(
        self, session: Session, prepared: PreparedFile, new_ids: list[int]
    ) -> list[int]:
        """Upsert the file row and replace its chunks; returns the ids that were dropped."""
        row = session.scalar(
            select(KnowledgeFile).where(
                KnowledgeFile.kb_id == self.kb_id, KnowledgeFile.file_name == prepared.file_name
            )
        )
        old_ids: list[int] = []
        if row is None:
            row = KnowledgeFile(kb_id=self.kb_id, file_name=prepared.file_name)
            session.add(row)
        else:
            old_ids = list(session.scalars(select(ChunkRow.id).where(ChunkRow.file_id == row.id)))
            session.execute(delete(ChunkRow).where(ChunkRow.file_id == row.id))
        row.ext = Path(prepared.file_name).suffix.lower()
        row.loader = prepared.loader
        row.size = prepared.size
        row.mtime = prepared.mtime
        row.sha256 = prepared.sha256
        row.chunk_size = prepared.splitter.chunk_size
        row.chunk_overlap = prepared.splitter.chunk_overlap
        row.zh_title_enhance = prepared.splitter.zh_title_enhance
        row.chunk_count = len(prepared.chunks)
        row.status = FileStatus.FAILED if prepared.error else FileStatus.INDEXED
        row.error = prepared.error
        session.flush()
        chunk_rows = [
            ChunkRow(
                kb_id=self.kb_id, file_id=row.id, seq=seq, text=chunk.text, meta=chunk.metadata
            )
            for seq, chunk in enumerate(prepared.chunks)
        ]
        session.add_all(chunk_rows)
        session.flush()
        new_ids.extend(chunk_row.id for chunk_row in chunk_rows)
        return old_ids

    # -- removal -----------------------------------------------------------------------------

    def remove(self, file_names: Sequence[str]) -> list[str]:
        """Delete files' rows, then their vectors; returns the names that were present."""
        removed: list[str] = []
        old_ids: list[int] = []
        with self.db.transaction() as session:
            for file_name in file_names:
                row = session.scalar(
                    select(KnowledgeFile).where(
                        KnowledgeFile.kb_id == self.kb_id, KnowledgeFile.file_name == file_name
                    )
                )
                if row is None:
                    continue
                old_ids += session.scalars(select(ChunkRow.id).where(ChunkRow.file_id == row.id))
                session.execute(delete(ChunkRow).where(ChunkRow.file_id == row.id))
                session.delete(row)
                removed.append(file_name)
        if old_ids:
            self.store.delete(old_ids)
            self.save_store()
            self.update_keywords(delete=old_ids)
        return removed
