"""Adding and removing files of one knowledge base, in the order that survives a crash.

1. Load, split and embed (nothing stored is touched; a failure here changes nothing). A reader
   thread loads (and OCRs) and splits the next files while this thread embeds the chunks of
   earlier ones, in batches across files.
2. One database transaction replaces the files' rows and chunks (new chunk ids = vector ids).
3. The index drops the old ids, adds the new vectors and is saved atomically.
4. The keyword index drops the old ids and adds the new chunks' terms in one commit.
A crash between 2 and 4 leaves chunks without vectors or terms and stale entries without
chunks: search ignores the latter, and ``check``/``repair`` finds and mends both (terms come
back from the chunk text in the database, without the embedding model).
The caller holds the KB's write lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kb_server.chunking import DocumentPipeline
from kb_server.db.engine import Database
from kb_server.db.models import ChunkRow, FileStatus, KnowledgeFile
from kb_server.documents.base import OcrUse
from kb_server.embedding.base import Embedder
from kb_server.failpoints import failpoint
from kb_server.fingerprints import file_sha256
from kb_server.knowledge.keyword_sync import KeywordSync
from kb_server.knowledge.paths import KbPaths
from kb_server.knowledge.prefetch import Prefetcher
from kb_server.knowledge.prepared import (
    NO_TEXT_REASON,
    FileOutcome,
    PreparedFile,
    StageClock,
    read_and_split,
    splitter_of,
)
from kb_server.knowledge.types import IngestProgress, IngestReport, SerializedProgress
from kb_server.retrieval.analyzer import KeywordAnalyzer
from kb_server.settings import SplitterSettings
from kb_server.stores.base import VectorStore
from kb_server.stores.keyword import KeywordEntry, KeywordIndex

logger = logging.getLogger(__name__)

# Files are stored in groups of about this many chunks: bounds memory and the work a crash
# can lose, while keeping index saves (which rewrite the whole index file) infrequent.
GROUP_CHUNKS = 4096
# Chunks from several files are embedded together once this many embedding batches' worth
# are waiting, longest first (batches of similar length waste little on padding).
EMBED_WINDOW_BATCHES = 8
# Files read ahead of the embedding wait in memory as chunks: at most this many files, and
# the reader pauses while this many chunks are read but not yet embedded.
PREFETCH_FILES = 256
PREFETCH_CHUNKS = GROUP_CHUNKS
_OCR_RANKS: Final[dict[OcrUse, int]] = {"none": 0, "embedded": 1, "whole": 2}


class KbWriter(KeywordSync):
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
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.progress: IngestProgress = SerializedProgress(progress)
        self.clock = StageClock()

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
        """Index files: a reader thread hashes, reads, OCRs and splits them in order while this
        thread embeds the chunks of the files before them, across files, and stores them in
        groups of about GROUP_CHUNKS chunks."""
        started = time.perf_counter()
        report = IngestReport()
        self.clock = StageClock()
        existing = self._existing_files()
        indexed_ids = self.store.ids()
        keyword_ids = self.current_keyword_ids()
        unchanged_ids: list[int] = []
        self.progress.files_planned(len(file_names))

        def prepare(file_name: str) -> FileOutcome:
            return self._prepare(file_name, existing.get(file_name), splitter, force, indexed_ids)

        group: list[PreparedFile] = []
        group_chunks = 0
        waiting: list[tuple[PreparedFile, int]] = []
        window = self.batch_size * EMBED_WINDOW_BATCHES
        # Files that need no OCR are read first, images last: embedding starts at once and the
        # OCR runs beside it, instead of first with nothing to embed yet.
        reading_order = sorted(file_names, key=self._ocr_rank)
        with Prefetcher(
            prepare,
            reading_order,
            depth=PREFETCH_FILES,
            name="kb-ingest-reader",
            cost=lambda outcome: len(outcome.prepared.chunks) if outcome.prepared else 0,
            budget=PREFETCH_CHUNKS,
        ) as outcomes:

            def embed_waiting() -> None:
                self._embed_waiting(waiting, report)
                outcomes.release(len(waiting))
                waiting.clear()

            for outcome in outcomes:
                name = outcome.file_name
                if outcome.unchanged is not None:
                    unchanged_ids += outcome.unchanged_ids
                    report.files_unchanged.append(name)
                    report.chunks_reused += outcome.unchanged.chunk_count
                    self._file_done(name, "unchanged", chunks=outcome.unchanged.chunk_count)
                    continue
                if outcome.prepared is None:
                    report.files_failed[name] = outcome.failed
                    self._file_done(name, "failed", outcome.failed)
                    continue
                prepared = outcome.prepared
                group.append(prepared)
                group_chunks += len(prepared.chunks)
                missing = self._chunks_to_embed(prepared, keep_vectors=not force, report=report)
                outcomes.release(len(prepared.chunks) - len(missing))
                waiting += missing
                if len(waiting) >= window:
                    embed_waiting()
                if group_chunks >= GROUP_CHUNKS:
                    embed_waiting()
                    self._store_group(group, report)
                    group, group_chunks = [], 0
            embed_waiting()
            if group:
                self._store_group(group, report)
        # Unchanged files keep their vectors; their terms are added if the keyword index lacks
        # them (a KB from before keyword search, a lost or outdated keyword index).
        with self.clock.timing("store"):
            self.index_keywords_from_db([i for i in unchanged_ids if i not in keyword_ids])
        report.model_load_seconds = self.model_load_seconds
        report.seconds = time.perf_counter() - started - self.model_load_seconds
        report.images_ocred = self.clock.images_ocred
        report.stage_seconds = dict(self.clock.seconds)
        return report

    def _prepare(
        self,
        file_name: str,
        row: KnowledgeFile | None,
        splitter: SplitterSettings | None,
        force: bool,
        indexed_ids: set[int],
    ) -> FileOutcome:
        """Runs in the reader thread: hash the file; read and split it unless unchanged."""
        path = self.paths.content_file(file_name)
        wanted = splitter or (splitter_of(row) if row else self.kb_splitter)
        if not path.is_file():
            return FileOutcome(file_name, failed="file not found in the content folder")
        with self.clock.timing("read"):
            stat = path.stat()
            sha = file_sha256(path)
        unchanged_ids = None if force else self._unchanged_chunk_ids(row, sha, wanted, indexed_ids)
        if unchanged_ids is not None:
            return FileOutcome(file_name, unchanged=row, unchanged_ids=unchanged_ids)
        if not force and row is not None and self._known_empty(row, sha, wanted):
            return FileOutcome(file_name, failed=NO_TEXT_REASON)
        prepared = PreparedFile(file_name, sha, stat.st_size, stat.st_mtime, wanted, previous=row)
        read_and_split(
            prepared,
            path,
            pipeline=self.pipeline,
            content_root=self.paths.content,
            analyzer=self.analyzer,
            progress=self.progress,
            clock=self.clock,
        )
        return FileOutcome(file_name, prepared=prepared)

    def _chunks_to_embed(
        self, prepared: PreparedFile, *, keep_vectors: bool, report: IngestReport
    ) -> list[tuple[PreparedFile, int]]:
        """The file's chunks that need embedding; a changed file keeps the vectors of chunks
        whose text it had before (one edited paragraph re-embeds a few chunks, not all)."""
        prepared.vectors = np.zeros((len(prepared.chunks), self.dimension), dtype=np.float32)
        kept: set[int] = set()
        if keep_vectors and prepared.previous is not None and prepared.chunks:
            kept = self._keep_vectors(prepared, prepared.previous)
            report.chunks_reused += len(kept)
        missing = [(prepared, i) for i in range(len(prepared.chunks)) if i not in kept]
        if missing:
            self.progress.file_stage(prepared.file_name, "embedding", 0, len(missing))
            self.progress.embedding_planned(len(missing))
        return missing

    def _keep_vectors(self, prepared: PreparedFile, previous: KnowledgeFile) -> set[int]:
        with self.db.session() as session:
            old = session.execute(
                select(ChunkRow.id, ChunkRow.text).where(ChunkRow.file_id == previous.id)
            ).all()
        old_id_of_text = {text: chunk_id for chunk_id, text in reversed(old)}
        wanted = {
            index: old_id_of_text[chunk.text]
            for index, chunk in enumerate(prepared.chunks)
            if chunk.text in old_id_of_text
        }
        if not wanted:
            return set()
        found_ids, vectors = self.store.get_vectors(sorted(set(wanted.values())))
        vector_of = dict(zip(found_ids, vectors, strict=True))
        assert prepared.vectors is not None
        kept = set()
        for index, old_id in wanted.items():
            if old_id in vector_of:
                prepared.vectors[index] = vector_of[old_id]
                kept.add(index)
        return kept

    def _embed_waiting(
        self, waiting: Sequence[tuple[PreparedFile, int]], report: IngestReport
    ) -> None:
        if not waiting:
            return
        load_before = self.model_load_seconds
        started = time.perf_counter()
        vectors = self.embed([prepared.chunks[index].text for prepared, index in waiting])
        loading = self.model_load_seconds - load_before
        self.clock.add("embed", time.perf_counter() - started - loading)
        report.chunks_embedded += len(waiting)
        for (prepared, index), vector in zip(waiting, vectors, strict=True):
            assert prepared.vectors is not None
            prepared.vectors[index] = vector

    def _existing_files(self) -> dict[str, KnowledgeFile]:
        with self.db.session() as session:
            rows = session.scalars(select(KnowledgeFile).where(KnowledgeFile.kb_id == self.kb_id))
            return {row.file_name: row for row in rows}

    def _unchanged_chunk_ids(
        self,
        row: KnowledgeFile | None,
        sha: str,
        wanted: SplitterSettings,
        indexed_ids: set[int],
    ) -> list[int] | None:
        """The chunk ids of a file that needs no work (same bytes and chunk settings, every
        vector in the index); None when it must be read again."""
        if row is None or row.status != FileStatus.INDEXED or row.sha256 != sha:
            return None
        if splitter_of(row) != wanted:
            return None
        chunk_ids = self._chunk_ids(row)
        return chunk_ids if all(i in indexed_ids for i in chunk_ids) else None

    def _ocr_rank(self, file_name: str) -> int:
        """0 when its loader needs no OCR, 1 when it may OCR images inside the file, 2 when
        the file is an image (by its loader, so suffixes mapped to one in settings count).
        Unsupported files rank 0: they fail at once."""
        registry = self.pipeline.registry
        if not registry.is_supported(file_name):
            return 0
        return _OCR_RANKS[registry.loader_for(file_name).ocr_use]

    @staticmethod
    def _known_empty(row: KnowledgeFile, sha: str, wanted: SplitterSettings) -> bool:
        return (
            row.status == FileStatus.FAILED
            and row.error == NO_TEXT_REASON
            and row.sha256 == sha
            and splitter_of(row) == wanted
        )

    def _chunk_ids(self, row: KnowledgeFile) -> list[int]:
        with self.db.session() as session:
            return list(session.scalars(select(ChunkRow.id).where(ChunkRow.file_id == row.id)))

    def _store_group(self, group: list[PreparedFile], report: IngestReport) -> None:
        started = time.perf_counter()
        # _chunks_to_embed gave every file one vector row per chunk (none for no chunks).
        vectors = np.concatenate(
            [prepared.vectors for prepared in group if prepared.vectors is not None]
        )
        terms = [term_list for prepared in group for term_list in prepared.terms]
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
        self.clock.add("store", time.perf_counter() - started)
        for prepared in group:
            if prepared.error:
                report.files_failed[prepared.file_name] = prepared.error
                self._file_done(prepared.file_name, "failed", prepared.error)
            else:
                report.files_indexed.append(prepared.file_name)
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
