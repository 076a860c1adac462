"""Move a knowledge base to another store type (FAISS + tantivy files, pgvector + keyword tables)
or another metadata database, copying its vectors instead of embedding again.

Same database: vectors go into the new store under the same chunk ids, the new keyword index is
filled from the chunk texts, one transaction switches ``knowledge_base.vs_type``, and only then
the old store is dropped: a crash before the switch leaves the KB on its old store, working.
Another database: the KB, file and chunk rows are copied (the target's sequence hands out new
chunk ids; vectors follow under them), the keyword index is filled, and the copy is verified as
``--check`` would; a failed copy is removed, and the source stays unless ``delete_source``.
Both sides share the KB root, so uploaded files stay where they are. The embedding model is
never loaded: stores open with the KB's recorded model name and dimension.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import URL, make_url, select
from sqlalchemy import inspect as sa_inspect

from kb_server.db.engine import database_url
from kb_server.db.models import ChunkRow, KnowledgeBase, KnowledgeFile
from kb_server.errors import InvalidInputError, KbError
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import CheckReport, KbExistsError
from kb_server.settings import Settings
from kb_server.stores.base import VectorStore
from kb_server.stores.keyword import KeywordEntry
from kb_server.stores.registry import VECTOR_STORES

logger = logging.getLogger(__name__)

# (source chunk id, target chunk id) pairs.
IdMap = list[tuple[int, int]]

# Vectors read from the source and added to the target per call.
VECTOR_BATCH = 2048
# Chunk rows copied per target transaction, and chunk texts per keyword-index commit.
ROW_BATCH_CHUNKS = 4096
KEYWORD_BATCH = 2000


class MigrationError(KbError):
    code = "migration_failed"
    http_status = 409


class PgNotConfiguredError(MigrationError):
    code = "pg_not_configured"


class MigrationProgress(Protocol):
    """Receives progress per stage ("rows", "vectors", "keywords"), counted in chunks."""

    def stage(self, name: str, total: int) -> None: ...

    def advance(self, count: int) -> None: ...


class NoMigrationProgress:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass


@dataclass(frozen=True)
class MigrationReport:
    kb_name: str
    from_vs_type: str
    to_vs_type: str
    same_database: bool
    chunks: int
    vectors_copied: int
    source_deleted: bool
    seconds: float


def pg_store_url(settings: Settings) -> str:
    """Where a ``pg`` store of these settings keeps its tables."""
    return settings.vector_store.pg.url or database_url(settings)


def require_pg(settings: Settings) -> None:
    """Refuse, with what to change, when these settings cannot open a ``pg`` store."""
    url = pg_store_url(settings)
    if make_url(url).get_backend_name() != "postgresql":
        raise PgNotConfiguredError(
            "the pg store needs PostgreSQL: set vector_store.pg.url or use a PostgreSQL "
            f"database_url (the database is {_shown(url)})"
        )
    try:
        importlib.import_module("kb_server.stores.pg_vector")
        importlib.import_module("kb_server.stores.pg_keyword")
    except ImportError as exc:
        raise PgNotConfiguredError(f"the pg store cannot be loaded here: {exc}") from exc


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _database_key(url: URL) -> tuple[str, ...]:
    backend = url.get_backend_name()
    if backend == "sqlite":
        name = url.database or ""
        return (backend, name if name in ("", ":memory:") else str(Path(name).resolve()))
    return (backend, url.host or "localhost", str(url.port or ""), url.database or "")


def same_database_url(first: str | URL, second: str | URL) -> bool:
    """Whether two URLs reach one database (whatever driver or spelling they use)."""
    return _database_key(make_url(first)) == _database_key(make_url(second))


def _values(row: Any, skip: Sequence[str]) -> dict[str, Any]:
    """A row's column values by attribute name, without ``skip`` (ids the target assigns)."""
    attributes = sa_inspect(type(row)).column_attrs
    return {attr.key: getattr(row, attr.key) for attr in attributes if attr.key not in skip}


_SKIPPED = ("id", "kb_id", "file_id")


def as_vs_type(kb: KnowledgeBase, vs_type: str) -> KnowledgeBase:
    """A detached copy of ``kb`` that names another store type: what the service opens for
    the new store before the switch is committed."""
    return KnowledgeBase(**{**_values(kb, ()), "vs_type": vs_type})


class KbMigration:
    """Moves knowledge bases from ``source`` to ``target``: services on one KB root (the same
    service, or one on the same database, for a store switch). Build the target with the
    source's ``locks``: the KB's lock file is one, held once, through the source."""

    def __init__(
        self,
        source: KnowledgeBaseService,
        target: KnowledgeBaseService,
        *,
        progress: MigrationProgress | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.progress = progress or NoMigrationProgress()

    def migrate(
        self, kb_name: str, to_vs_type: str, *, delete_source: bool = False
    ) -> MigrationReport:
        if to_vs_type not in VECTOR_STORES:
            known = ", ".join(sorted(VECTOR_STORES))
            raise InvalidInputError(f"unknown store type {to_vs_type!r}; known types: {known}")
        if self.source.settings.kb_root.resolve() != self.target.settings.kb_root.resolve():
            raise InvalidInputError("the source and the target must share the KB root")
        if to_vs_type == "pg":
            require_pg(self.target.settings)
        started = time.perf_counter()
        one_database = same_database_url(self.source.db.engine.url, self.target.db.engine.url)
        if one_database and delete_source:
            raise InvalidInputError("delete_source needs a target in another database")
        with self.source.write_lock(kb_name):
            kb = self.source.kb_row(kb_name)
            if kb.vs_type == "pg":
                require_pg(self.source.settings)
            if one_database:
                chunks, copied = self._switch(kb, to_vs_type)
            else:
                chunks, copied = self._copy(kb, to_vs_type)
                if delete_source:
                    self._delete_source(kb)
        return MigrationReport(
            kb_name=kb.name,
            from_vs_type=kb.vs_type,
            to_vs_type=to_vs_type,
            same_database=one_database,
            chunks=chunks,
            vectors_copied=copied,
            source_deleted=delete_source,
            seconds=time.perf_counter() - started,
        )

    # -- same database: switch the store -----------------------------------------------------

    def _switch(self, kb: KnowledgeBase, to_vs_type: str) -> tuple[int, int]:
        if kb.vs_type == to_vs_type:
            raise MigrationError(f"knowledge base {kb.name!r} already uses the {to_vs_type} store")
        new = as_vs_type(kb, to_vs_type)
        service = self.target
        ids = self._chunk_ids(service, kb.id)
        if to_vs_type == "pg":
            # Rows keyed by this KB's id are leftovers of an interrupted run: start afresh.
            _drop_indexes(service, new)
        else:
            # Files named after the KB may be another database's KB on the same KB root.
            _require_empty(service, new)
        try:
            copied = self._copy_vectors(
                kb.name, self.source.store_for(kb), service.store_for(new), [(i, i) for i in ids]
            )
            self._fill_keywords(service, new, ids)
            self._verify(service, new, len(ids))
        except BaseException:
            _drop_indexes(service, new)
            raise
        with service.db.transaction() as session:
            session.get_one(KnowledgeBase, kb.id).vs_type = to_vs_type
        # Only now is the old store unused by every process that reads the row afresh.
        _drop_indexes(self.source, kb)
        logger.info("%s: switched from the %s store to %s", kb.name, kb.vs_type, to_vs_type)
        return len(ids), copied

    # -- another database: copy rows, then vectors -------------------------------------------

    def _copy(self, kb: KnowledgeBase, to_vs_type: str) -> tuple[int, int]:
        source, target = self.source, self.target
        if _index_place(source, kb.vs_type) == _index_place(target, to_vs_type):
            raise MigrationError(
                f"the source's and the target's {to_vs_type} index of {kb.name!r} would be the "
                "same (one KB root, one pg database): copy it to the other store type"
            )
        with target.db.session() as session:
            if session.scalar(select(KnowledgeBase.id).where(KnowledgeBase.name == kb.name)):
                raise KbExistsError(kb.name)
        expected = len(self._chunk_ids(source, kb.id))
        new: KnowledgeBase | None = None
        filled = False
        try:
            with target.db.transaction() as session:
                new = KnowledgeBase(**{**_values(kb, ("id",)), "vs_type": to_vs_type})
                session.add(new)
            _require_empty(target, new)
            filled = True
            id_map = self._copy_rows(kb, new, expected)
            store = target.store_for(new)
            copied = self._copy_vectors(kb.name, source.store_for(kb), store, id_map)
            self._fill_keywords(target, new, [new_id for _, new_id in id_map])
            self._verify(target, new, expected)
        except BaseException:
            if new is not None:
                self._remove_copy(new, drop_indexes=filled)
            raise
        return len(id_map), copied

    def _copy_rows(self, kb: KnowledgeBase, new: KnowledgeBase, total: int) -> IdMap:
        """Copy file and chunk rows; returns (source chunk id, target chunk id) pairs."""
        source, target = self.source.db, self.target.db
        with source.session() as session:
            files = session.scalars(select(KnowledgeFile).where(KnowledgeFile.kb_id == kb.id))
            copies = {
                row.id: KnowledgeFile(kb_id=new.id, **_values(row, ("id", "kb_id")))
                for row in files
            }
        with target.transaction() as session:
            session.add_all(copies.values())
        file_ids = {old_id: row.id for old_id, row in copies.items()}
        self.progress.stage("rows", total)
        id_map: IdMap = []
        while True:
            last = id_map[-1][0] if id_map else 0
            with source.session() as session:
                chunks = list(
                    session.scalars(
                        select(ChunkRow)
                        .where(ChunkRow.kb_id == kb.id, ChunkRow.id > last)
                        .order_by(ChunkRow.id)
                        .limit(ROW_BATCH_CHUNKS)
                    )
                )
            if not chunks:
                return id_map
            rows = [
                ChunkRow(kb_id=new.id, file_id=file_ids[chunk.file_id], **_values(chunk, _SKIPPED))
                for chunk in chunks
            ]
            with target.transaction() as session:
                session.add_all(rows)
                session.flush()  # assigns the target's ids from its own sequence
                id_map += [(old.id, row.id) for old, row in zip(chunks, rows, strict=True)]
            self.progress.advance(len(chunks))

    def _remove_copy(self, new: KnowledgeBase, *, drop_indexes: bool) -> None:
        """Undo a failed copy: its indexes (if this run wrote them) and its rows."""
        if drop_indexes:
            _drop_indexes(self.target, new)
        with self.target.db.transaction() as session:
            row = session.get(KnowledgeBase, new.id)
            if row is not None:
                session.delete(row)
        logger.info("%s: removed the partial copy in %s", new.name, _shown(self.target.db.url))

    def _delete_source(self, kb: KnowledgeBase) -> None:
        """Remove the source KB's indexes and rows; its folder is the target's now."""
        _drop_indexes(self.source, kb)
        with self.source.db.transaction() as session:
            session.delete(session.get_one(KnowledgeBase, kb.id))

    # -- shared steps ------------------------------------------------------------------------

    def _copy_vectors(
        self, kb_name: str, source: VectorStore, target: VectorStore, id_map: IdMap
    ) -> int:
        if source.dimension != target.dimension:
            raise MigrationError(
                f"{kb_name!r}: the source vectors have {source.dimension} dimensions, the "
                f"target store {target.dimension}"
            )
        self.progress.stage("vectors", len(id_map))
        for start in range(0, len(id_map), VECTOR_BATCH):
            batch = dict(id_map[start : start + VECTOR_BATCH])
            found, vectors = source.get_vectors(list(batch))
            if len(found) != len(batch):
                raise MigrationError(
                    f"{len(batch) - len(found)} chunks of {kb_name!r} have no vector in the "
                    f"source index; mend it first: init_database.py --check --repair -n {kb_name}"
                )
            target.add([batch[old_id] for old_id in found], vectors)
            self.progress.advance(len(found))
        target.save()
        return len(id_map)

    def _fill_keywords(
        self, service: KnowledgeBaseService, kb: KnowledgeBase, ids: Sequence[int]
    ) -> None:
        """Index the chunks' terms from their texts in ``service``'s database."""
        keywords = service.keywords_for(kb)
        version = service.analyzer.version
        keywords.clear(version)
        self.progress.stage("keywords", len(ids))
        for start in range(0, len(ids), KEYWORD_BATCH):
            batch = ids[start : start + KEYWORD_BATCH]
            with service.db.session() as session:
                rows = session.execute(
                    select(ChunkRow.id, ChunkRow.text).where(
                        ChunkRow.kb_id == kb.id, ChunkRow.id.in_(batch)
                    )
                ).all()
            entries = [KeywordEntry(i, service.analyzer.terms(text)) for i, text in rows]
            keywords.update(add=entries, analyzer_version=version)
            self.progress.advance(len(batch))

    def _verify(self, service: KnowledgeBaseService, kb: KnowledgeBase, expected: int) -> None:
        """The comparison ``--check`` makes, on the new indexes: fail loudly on any gap."""
        chunk_ids = set(self._chunk_ids(service, kb.id))
        vector_ids = service.store_for(kb).ids()
        keywords = service.keywords_for(kb)
        keyword_ids = keywords.ids() if service.analyzer.built(keywords) else set()
        found = CheckReport(
            kb_name=kb.name,
            chunks_without_vectors=sorted(chunk_ids - vector_ids),
            vectors_without_chunks=sorted(vector_ids - chunk_ids),
            chunks_without_keywords=sorted(chunk_ids - keyword_ids),
            keywords_without_chunks=sorted(keyword_ids - chunk_ids),
        )
        problems = [f"{len(items)} {label}" for label, items in found.problems().items() if items]
        if len(chunk_ids) != expected:
            problems.append(f"{len(chunk_ids)} chunks instead of {expected}")
        if problems:
            raise MigrationError(
                f"the {kb.vs_type} copy of {kb.name!r} does not match its source "
                f"({'; '.join(problems)}); it was removed"
            )

    @staticmethod
    def _chunk_ids(service: KnowledgeBaseService, kb_id: int) -> list[int]:
        query = select(ChunkRow.id).where(ChunkRow.kb_id == kb_id).order_by(ChunkRow.id)
        with service.db.session() as session:
            return list(session.scalars(query))


def _index_place(service: KnowledgeBaseService, vs_type: str) -> tuple[str, ...]:
    """Where a store of ``vs_type`` keeps a KB's index: equal places hold one index (the KB
    root is shared, so two FAISS stores of one KB name are the same files)."""
    if vs_type == "pg":
        return ("pg", *_database_key(make_url(pg_store_url(service.settings))))
    return (vs_type,)


def _require_empty(service: KnowledgeBaseService, kb: KnowledgeBase) -> None:
    """Refuse to write into a new store that already holds entries this run did not make."""
    if service.store_for(kb).count() or service.keywords_for(kb).count():
        raise MigrationError(
            f"the target's {kb.vs_type} index of {kb.name!r} is not empty: it belongs to a KB of "
            "that name in another database on this KB root (migrate that one with "
            "--delete-source, or delete it), or to an interrupted migration (delete it)"
        )


def _drop_indexes(service: KnowledgeBaseService, kb: KnowledgeBase) -> None:
    """Delete the vector store and keyword index of ``kb``'s ``vs_type``."""
    service.drop_vectors(kb)
    service.keywords_for(kb).drop()
    service.keyword_indexes.evict(service.paths(kb.name).keyword_index)
