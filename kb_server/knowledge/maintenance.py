"""Whole-KB operations behind init_database.py: rebuild, increment, prune, check and repair.

Each takes the KB's write lock for its whole run, so it sees and leaves a consistent state.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from kb_server.db.models import ChunkRow, FileStatus, KnowledgeBase, KnowledgeFile
from kb_server.knowledge.ingest import KbWriter
from kb_server.knowledge.paths import InvalidNameError, validate_kb_name
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import CheckReport, IngestProgress, IngestReport
from kb_server.settings import SplitterSettings

logger = logging.getLogger(__name__)


class KbMaintenance:
    def __init__(self, service: KnowledgeBaseService) -> None:
        self.service = service

    def folder_kbs(self) -> list[str]:
        """KB folders under the KB root (those holding a content/ folder)."""
        root = self.service.settings.kb_root
        if not root.is_dir():
            return []
        names = []
        for folder in sorted(root.iterdir()):
            if not (folder / "content").is_dir():
                continue
            try:
                names.append(validate_kb_name(folder.name))
            except InvalidNameError:
                logger.warning("ignoring folder %s: not a valid knowledge base name", folder)
        return names

    def ensure_kb(self, name: str, embed_model: str | None = None) -> None:
        """Register a KB folder (e.g. a shipped sample) that the database does not know yet."""
        if not self.service.kb_exists(name):
            self.service.create_kb(name, embed_model=embed_model)

    def _row_names(self, kb: KnowledgeBase) -> dict[str, KnowledgeFile]:
        with self.service.db.session() as session:
            rows = session.scalars(select(KnowledgeFile).where(KnowledgeFile.kb_id == kb.id))
            return {row.file_name: row for row in rows}

    def recreate(
        self,
        name: str,
        *,
        embed_model: str | None = None,
        force: bool = False,
        splitter: SplitterSettings | None = None,
        progress: IngestProgress | None = None,
    ) -> IngestReport:
        """Make the KB match its content folder: rows of vanished files go, every file is
        indexed. Unchanged files keep their vectors unless ``force`` or the model changes.
        ``splitter`` re-splits every file with these settings (default: each file's own)."""
        service = self.service
        with service.write_lock(name):
            kb = old_kb = service.kb_row(name)
            if embed_model is not None:
                embedder = service.embedder_provider(embed_model)
                if embedder.name != kb.embed_model:
                    with service.db.transaction() as session:
                        row = session.get_one(KnowledgeBase, kb.id)
                        row.embed_model = embedder.name
                        row.embed_dimension = embedder.dimension
                    kb = service.kb_row(name)
            if force or kb.embed_model != old_kb.embed_model:
                service.drop_vectors(old_kb)
            writer = service.writer(kb, progress)
            if force:
                writer.keywords.clear(service.analyzer.version)
            content = set(service.content_files(name))
            vanished = [file for file in self._row_names(kb) if file not in content]
            report = IngestReport(files_removed=writer.remove(vanished))
            self._drop_vectors_without_chunks(kb, writer)
            report.merge(writer.ingest(sorted(content), force=force, splitter=splitter))
            return report

    def increment(self, name: str, *, progress: IngestProgress | None = None) -> IngestReport:
        """Index content files that have no row yet."""
        known = self._row_names(self.service.kb_row(name))
        new = [file for file in self.service.content_files(name) if file not in known]
        return self.service.add_files(name, new, progress=progress)

    def update_in_db(self, name: str, *, progress: IngestProgress | None = None) -> IngestReport:
        """Re-index the files the database knows (changed ones are embedded again)."""
        content = set(self.service.content_files(name))
        known = [file for file in self._row_names(self.service.kb_row(name)) if file in content]
        return self.service.add_files(name, known, progress=progress)

    def prune_db(self, name: str) -> list[str]:
        """Delete rows and vectors of files no longer in the content folder."""
        content = set(self.service.content_files(name))
        known = self._row_names(self.service.kb_row(name))
        return self.service.delete_files(name, [file for file in known if file not in content])

    def prune_folder(self, name: str) -> list[str]:
        """Delete content files that the database does not know."""
        with self.service.write_lock(name) as paths:
            known = self._row_names(self.service.kb_row(name))
            strays = [file for file in self.service.content_files(name) if file not in known]
            for file in strays:
                paths.content_file(file).unlink(missing_ok=True)
            return strays

    def check(self, name: str) -> CheckReport:
        service = self.service
        with service.write_lock(name):
            kb = service.kb_row(name)
            store = service.store_for(kb)
            index_ids = store.ids()
            keywords = service.keywords_for(kb)
            # Terms from another analyzer version do not count: they are rebuilt.
            keyword_ids = keywords.ids() if service.analyzer.built(keywords) else set()
            with service.db.session() as session:
                chunk_ids = set(session.scalars(select(ChunkRow.id).where(ChunkRow.kb_id == kb.id)))
            rows = self._row_names(kb)
            content = set(service.content_files(name))
            return CheckReport(
                kb_name=kb.name,
                chunks_without_vectors=sorted(chunk_ids - index_ids),
                vectors_without_chunks=sorted(index_ids - chunk_ids),
                chunks_without_keywords=sorted(chunk_ids - keyword_ids),
                keywords_without_chunks=sorted(keyword_ids - chunk_ids),
                files_without_content=sorted(set(rows) - content),
                content_without_rows=sorted(content - set(rows)),
                failed_files={
                    file: row.error for file, row in rows.items() if row.status == FileStatus.FAILED
                },
            )

    def repair(self, name: str, *, progress: IngestProgress | None = None) -> CheckReport:
        """Mend what ``check`` finds; returns the findings that were mended."""
        service = self.service
        with service.write_lock(name):
            found = self.check(name)
            kb = service.kb_row(name)
            writer = service.writer(kb, progress)
            writer.remove(found.files_without_content)
            self._drop_vectors_without_chunks(kb, writer)
            with service.db.session() as session:
                missing = list(
                    session.execute(
                        select(ChunkRow.id, ChunkRow.text).where(
                            ChunkRow.kb_id == kb.id, ChunkRow.id.in_(found.chunks_without_vectors)
                        )
                    ).all()
                )
            if missing:
                vectors = writer.embed([text for _, text in missing])
                writer.store.add([chunk_id for chunk_id, _ in missing], vectors)
                writer.save_store()
            writer.index_missing_keywords()
            writer.ingest(found.content_without_rows)
            return found

    def _drop_vectors_without_chunks(self, kb: KnowledgeBase, writer: KbWriter) -> None:
        with self.service.db.session() as session:
            chunk_ids = set(session.scalars(select(ChunkRow.id).where(ChunkRow.kb_id == kb.id)))
        orphans = writer.store.ids() - chunk_ids
        if orphans:
            logger.info("%s: removing %d vectors without chunks", kb.name, len(orphans))
            writer.store.delete(orphans)
            writer.save_store()
        writer.drop_keyword_orphans(chunk_ids)
