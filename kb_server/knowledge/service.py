"""KnowledgeBaseService: the only code that changes a knowledge base.

The API, the CLI and the UI call this and nothing below it. Writes to one KB are serialized by
a lock that holds across processes; reads take no lock.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from kb_server.access.check import require, require_create, visible
from kb_server.chunking import DocumentPipeline
from kb_server.db.engine import Database
from kb_server.db.models import ChunkRow, KbChatPolicyRow, KnowledgeBase, KnowledgeFile
from kb_server.embedding import EmbeddingModelUnavailableError, get_embedder
from kb_server.embedding.base import Embedder
from kb_server.errors import InvalidInputError, require_valid_unicode
from kb_server.knowledge.ingest import KbWriter
from kb_server.knowledge.locks import KbLocks
from kb_server.knowledge.paths import KbPaths, validate_file_name
from kb_server.knowledge.prepared import splitter_of
from kb_server.knowledge.types import (
    ChatPolicy,
    ChunkInfo,
    ChunkNotFoundError,
    FileInfo,
    IngestProgress,
    IngestReport,
    KbExistsError,
    KbFileExistsError,
    KbFileNotFoundError,
    KbInfo,
    KbNotFoundError,
    NoProgress,
    SearchHit,
)
from kb_server.request_context import note_kb
from kb_server.retrieval.analyzer import KeywordAnalyzer
from kb_server.retrieval.reranker import load_reranker
from kb_server.retrieval.retriever import STALE_SLACK, KbIndexes, RankedChunk, Retriever
from kb_server.settings import SearchMode, Settings, SplitterSettings
from kb_server.stores.base import VectorLocation, VectorStore
from kb_server.stores.cache import KeywordIndexCache, VectorStoreCache
from kb_server.stores.faiss_store import CorruptIndexError
from kb_server.stores.keyword import KeywordIndex, KeywordLocation
from kb_server.stores.registry import check_store_type, open_keyword_index, open_vector_store

logger = logging.getLogger(__name__)

EmbedderProvider = Callable[[str], Embedder]


def _policy_row(policy: ChatPolicy, kb_id: int | None = None) -> KbChatPolicyRow:
    row = KbChatPolicyRow(
        strict=policy.strict, strict_min_score=policy.strict_min_score, refusal=policy.refusal
    )
    if kb_id is not None:
        row.kb_id = kb_id
    return row


def kb_splitter(row: KnowledgeBase) -> SplitterSettings:
    return SplitterSettings(
        chunk_size=row.chunk_size,
        chunk_overlap=row.chunk_overlap,
        zh_title_enhance=row.zh_title_enhance,
    )


class KnowledgeBaseService:
    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        embedder_provider: EmbedderProvider | None = None,
        store_cache: VectorStoreCache | None = None,
        locks: KbLocks | None = None,
        checks_access: bool = True,
    ) -> None:
        self.settings = settings
        # False only for file chat's temporary KBs, whose random ids are their own capability.
        self.checks_access = checks_access
        self.db = db or Database.from_settings(settings)
        self.db.create_tables()
        self.embedder_provider = embedder_provider or (
            lambda model: get_embedder(settings.embedding, model)
        )
        self.stores = store_cache or VectorStoreCache(
            settings.vector_store.cache_size,
            functools.partial(open_vector_store, settings=settings),
        )
        self.keyword_indexes = KeywordIndexCache(
            settings.vector_store.cache_size,
            functools.partial(open_keyword_index, settings=settings),
        )
        self.analyzer = KeywordAnalyzer()
        self.retriever = Retriever(settings, self.analyzer, lambda: load_reranker(settings))
        self.locks = locks or KbLocks(engine=self.db.engine)
        self._pipeline: DocumentPipeline | None = None
        self._pipeline_guard = threading.Lock()

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def pipeline(self) -> DocumentPipeline:
        with self._pipeline_guard:
            if self._pipeline is None:
                self._pipeline = DocumentPipeline(self.settings)
            return self._pipeline

    def paths(self, kb_name: str) -> KbPaths:
        return KbPaths(self.settings.kb_root, kb_name)

    @contextmanager
    def write_lock(self, kb_name: str) -> Iterator[KbPaths]:
        paths = self.paths(kb_name)
        with self.locks.hold(paths.lock_file()):
            yield paths

    def kb_row(self, kb_name: str, *, write: bool = False) -> KnowledgeBase:
        """The KB's row, when the caller may read it (``write``: change it). A KB it may not
        read raises the same KbNotFoundError as a missing one, after the same query."""
        name = self.paths(kb_name).name
        with self.db.session() as session:
            row = session.scalar(select(KnowledgeBase).where(KnowledgeBase.name == name))
        if row is None:
            raise KbNotFoundError(name)
        if self.checks_access:
            require(name, write=write)
        note_kb(row.name)
        return row

    def embedder_for(self, kb: KnowledgeBase) -> Embedder:
        """The KB's own embedding model; a fallback model never answers for another's index."""
        embedder = self.embedder_provider(kb.embed_model)
        if embedder.name != kb.embed_model:
            raise EmbeddingModelUnavailableError(
                kb.embed_model,
                f"knowledge base {kb.name!r} was built with it and only {embedder.name!r} could "
                "be loaded here. Provide that model, or rebuild the KB with another: "
                f"python init_database.py --recreate-vs -n {kb.name} -e {embedder.name}",
            )
        return embedder

    def vector_location(self, kb: KnowledgeBase) -> VectorLocation:
        return VectorLocation(
            kb_id=kb.id,
            embed_model=kb.embed_model,
            dimension=kb.embed_dimension,
            directory=self.paths(kb.name).vector_store(kb.embed_model),
        )

    def store_for(self, kb: KnowledgeBase) -> VectorStore:
        return self.stores.get(kb.vs_type, self.vector_location(kb))

    def drop_vectors(self, kb: KnowledgeBase) -> None:
        """Delete the KB's vector index of its current model, whatever state it is in."""
        location = self.vector_location(kb)
        try:
            store = self.stores.get(kb.vs_type, location)
        except CorruptIndexError:
            shutil.rmtree(location.directory, ignore_errors=True)
        else:
            store.drop()
        self.stores.evict(location.directory)

    def keywords_for(self, kb: KnowledgeBase) -> KeywordIndex:
        location = KeywordLocation(kb_id=kb.id, directory=self.paths(kb.name).keyword_index)
        return self.keyword_indexes.get(kb.vs_type, location)

    def writer(self, kb: KnowledgeBase, progress: IngestProgress | None = None) -> KbWriter:
        store = self.store_for(kb)
        return KbWriter(
            db=self.db,
            kb_id=kb.id,
            paths=self.paths(kb.name),
            kb_splitter=kb_splitter(kb),
            embedder=lambda: self.embedder_for(kb),
            dimension=kb.embed_dimension,
            store=store,
            save_store=store.save,
            keywords=self.keywords_for(kb),
            analyzer=self.analyzer,
            pipeline=self.pipeline,
            batch_size=self.settings.embedding.batch_size,
            progress=progress or NoProgress(),
        )

    def _kb_info(self, row: KnowledgeBase) -> KbInfo:
        with self.db.session() as session:
            file_count = session.scalar(
                select(func.count()).select_from(KnowledgeFile).where(KnowledgeFile.kb_id == row.id)
            )
            chunk_count = session.scalar(
                select(func.count()).select_from(ChunkRow).where(ChunkRow.kb_id == row.id)
            )
            policy = session.get(KbChatPolicyRow, row.id)
        return KbInfo(
            name=row.name,
            description=row.description,
            vs_type=row.vs_type,
            embed_model=row.embed_model,
            splitter=kb_splitter(row),
            file_count=file_count or 0,
            chunk_count=chunk_count or 0,
            created_at=row.created_at,
            chat_policy=ChatPolicy(policy.strict, policy.strict_min_score, policy.refusal)
            if policy
            else ChatPolicy(),
        )

    # -- knowledge bases ---------------------------------------------------------------------

    def create_kb(
        self,
        name: str,
        *,
        description: str = "",
        vs_type: str | None = None,
        embed_model: str | None = None,
        splitter: SplitterSettings | None = None,
        chat_policy: ChatPolicy | None = None,
    ) -> KbInfo:
        with self.write_lock(name) as paths:
            if self.checks_access:
                require_create(paths.name)
            with self.db.session() as session:
                if session.scalar(select(KnowledgeBase.id).where(KnowledgeBase.name == paths.name)):
                    raise KbExistsError(paths.name)
            store_type = vs_type or self.settings.vector_store.default_type
            check_store_type(store_type, self.settings)
            # The model that actually loads (a fallback, if need be) is the one recorded.
            embedder = self.embedder_provider(embed_model or self.settings.embedding.model)
            options = splitter or self.settings.splitter
            row = KnowledgeBase(
                name=paths.name,
                description=description,
                vs_type=store_type,
                embed_model=embedder.name,
                embed_dimension=embedder.dimension,
                chunk_size=options.chunk_size,
                chunk_overlap=options.chunk_overlap,
                zh_title_enhance=options.zh_title_enhance,
            )
            if chat_policy is not None:
                row.chat_policy = _policy_row(chat_policy)
            with self.db.transaction() as session:
                session.add(row)
            paths.content.mkdir(parents=True, exist_ok=True)
            return self._kb_info(row)

    def list_kbs(self) -> list[KbInfo]:
        with self.db.session() as session:
            rows = session.scalars(select(KnowledgeBase).order_by(KnowledgeBase.name)).all()
        if self.checks_access:
            shown = set(visible(row.name for row in rows))
            rows = [row for row in rows if row.name in shown]
        return [self._kb_info(row) for row in rows]

    def get_kb(self, name: str, *, write: bool = False) -> KbInfo:
        return self._kb_info(self.kb_row(name, write=write))

    def kb_exists(self, name: str) -> bool:
        try:
            self.kb_row(name)
        except KbNotFoundError:
            return False
        return True

    def update_info(self, name: str, description: str) -> KbInfo:
        with self.write_lock(name):
            row = self.kb_row(name, write=True)
            with self.db.transaction() as session:
                session.get_one(KnowledgeBase, row.id).description = description
            return self.get_kb(name)

    def set_chat_policy(self, name: str, policy: ChatPolicy) -> KbInfo:
        with self.write_lock(name):
            row = self.kb_row(name, write=True)
            with self.db.transaction() as session:
                stored = session.get(KbChatPolicyRow, row.id)
                if stored is None:
                    session.add(_policy_row(policy, row.id))
                else:
                    stored.strict = policy.strict
                    stored.strict_min_score = policy.strict_min_score
                    stored.refusal = policy.refusal
            return self.get_kb(name)

    def delete_kb(self, name: str) -> None:
        """Remove the KB's rows, index and folder (uploaded files included)."""
        with self.write_lock(name) as paths:
            row = self.kb_row(name, write=True)
            # Indexes first: a crash after this leaves rows that --repair re-embeds, never
            # index entries (in a database store, tables) that no KB owns.
            self.drop_vectors(row)
            self.keywords_for(row).drop()
            self.keyword_indexes.evict(paths.keyword_index)
            with self.db.transaction() as session:
                session.delete(session.get_one(KnowledgeBase, row.id))
            shutil.rmtree(paths.root, ignore_errors=True)

    # -- files -------------------------------------------------------------------------------

    def save_file(self, kb_name: str, file_name: str, data: bytes, *, override: bool) -> Path:
        """Write an uploaded file into the content folder (atomically); it is not yet indexed."""
        with self.write_lock(kb_name) as paths:
            self.kb_row(kb_name, write=True)
            target = paths.content_file(file_name)
            if target.exists() and not override:
                raise KbFileExistsError(paths.name, validate_file_name(file_name))
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_bytes(data)
            partial.replace(target)
            return target

    def add_files(
        self,
        kb_name: str,
        file_names: Sequence[str],
        *,
        splitter: SplitterSettings | None = None,
        force: bool = False,
        progress: IngestProgress | None = None,
    ) -> IngestReport:
        """Index files of the content folder; unchanged files (same bytes, same chunk
        settings, vectors present) are not embedded again unless ``force``."""
        names = [validate_file_name(name) for name in file_names]
        with self.write_lock(kb_name):
            kb = self.kb_row(kb_name, write=True)
            return self.writer(kb, progress).ingest(names, splitter=splitter, force=force)

    update_files = add_files

    def delete_files(
        self, kb_name: str, file_names: Sequence[str], *, delete_content: bool = False
    ) -> list[str]:
        names = [validate_file_name(name) for name in file_names]
        with self.write_lock(kb_name) as paths:
            kb = self.kb_row(kb_name, write=True)
            removed = self.writer(kb).remove(names)
            if delete_content:
                for name in names:
                    paths.content_file(name).unlink(missing_ok=True)
            return removed

    def list_files(self, kb_name: str) -> list[FileInfo]:
        kb = self.kb_row(kb_name)
        with self.db.session() as session:
            rows = session.scalars(
                select(KnowledgeFile)
                .where(KnowledgeFile.kb_id == kb.id)
                .order_by(KnowledgeFile.file_name)
            ).all()
        return [
            FileInfo(
                file_name=row.file_name,
                ext=row.ext,
                loader=row.loader,
                size=row.size,
                mtime=row.mtime,
                sha256=row.sha256,
                chunk_count=row.chunk_count,
                status=row.status,
                error=row.error,
                splitter=splitter_of(row),
                updated_at=row.updated_at,
            )
            for row in rows
        ]

    def content_files(self, kb_name: str) -> list[str]:
        """Files in the content folder (relative names), whether indexed or not."""
        content = self.paths(kb_name).content
        if not content.is_dir():
            return []
        names = (path.relative_to(content) for path in content.rglob("*") if path.is_file())
        # Dot-files are upload leftovers (".x.partial") or OS litter, never documents.
        return sorted(
            name.as_posix() for name in names if not any(p.startswith(".") for p in name.parts)
        )

    # -- chunks and search -------------------------------------------------------------------

    def _chunk_infos(self, rows: Sequence[tuple[ChunkRow, str]]) -> list[ChunkInfo]:
        return [
            ChunkInfo(id=row.id, file_name=file_name, seq=row.seq, text=row.text, metadata=row.meta)
            for row, file_name in rows
        ]

    def list_chunks(self, kb_name: str, file_name: str) -> list[ChunkInfo]:
        kb = self.kb_row(kb_name)
        name = validate_file_name(file_name)
        with self.db.session() as session:
            file_id = session.scalar(
                select(KnowledgeFile.id).where(
                    KnowledgeFile.kb_id == kb.id, KnowledgeFile.file_name == name
                )
            )
            if file_id is None:
                raise KbFileNotFoundError(kb.name, name)
            rows = session.execute(
                select(ChunkRow, KnowledgeFile.file_name)
                .join(KnowledgeFile)
                .where(ChunkRow.file_id == file_id)
                .order_by(ChunkRow.seq)
            ).all()
            return self._chunk_infos(list(rows))

    def edit_chunk(self, kb_name: str, chunk_id: int, text: str) -> ChunkInfo:
        """Replace one chunk's text; its vector is recomputed."""
        if not text.strip():
            raise InvalidInputError("a chunk's text cannot be empty")
        require_valid_unicode(text, "the chunk's text")
        with self.write_lock(kb_name):
            kb = self.kb_row(kb_name, write=True)
            writer = self.writer(kb)
            vector = writer.embed([text])
            with self.db.transaction() as session:
                row = session.get(ChunkRow, chunk_id)
                if row is None or row.kb_id != kb.id:
                    raise ChunkNotFoundError(f"chunk {chunk_id} is not in {kb.name!r}")
                row.text = text
                row.meta = {**row.meta, "edited": True}
                file_name = row.file.file_name
            writer.store.add([chunk_id], vector)
            writer.save_store()
            writer.update_keywords(add=writer.keyword_entries([(chunk_id, text)]))
            return self._chunk_infos([(row, file_name)])[0]

    def search(
        self,
        kb_name: str,
        query: str,
        *,
        top_k: int = 3,
        score_threshold: float | None = None,
        file_names: Sequence[str] | None = None,
        search_mode: SearchMode | None = None,
        rerank: bool | None = None,
    ) -> list[SearchHit]:
        """The top_k chunks for ``query``, best first.

        ``search_mode`` (default: retrieval.search_mode) picks dense, bm25 or hybrid retrieval;
        ``rerank`` (default: retrieval.rerank) reorders the candidates with the cross-encoder
        when one is available; ``score_threshold`` is the minimum ``score`` kept (its scale per
        mode: kb_server.retrieval.retriever).
        """
        require_valid_unicode(query, "the query")
        kb = self.kb_row(kb_name)
        mode = search_mode or self.settings.retrieval.search_mode
        use_reranker = self.settings.retrieval.rerank if rerank is None else rerank
        allowed: set[int] | None = None
        if file_names is not None:
            names = [validate_file_name(name) for name in file_names]
            with self.db.session() as session:
                allowed = set(
                    session.scalars(
                        select(ChunkRow.id)
                        .join(KnowledgeFile)
                        .where(KnowledgeFile.kb_id == kb.id, KnowledgeFile.file_name.in_(names))
                    )
                )
            if not allowed:
                return []
        if mode != "dense":
            self._ensure_keyword_index(kb)
        indexes = KbIndexes(
            embed_model=kb.embed_model,
            dense=lambda: (self.embedder_for(kb), self.store_for(kb)),
            keywords=self.keywords_for(kb),
        )
        reranker = self.retriever.reranker(use_reranker)
        ranked = self.retriever.rank(
            query,
            indexes,
            mode=mode,
            candidates=self.retriever.candidates(top_k, mode, reranker),
            allowed_ids=allowed,
        )
        # A threshold may drop chunks from the top: then every candidate may be needed.
        wanted = len(ranked) if score_threshold is not None else top_k
        existing, by_id = self._existing_chunks(
            kb, ranked, max(wanted, self.retriever.pool_size(top_k, reranker))
        )
        final = self.retriever.finish(
            query,
            existing,
            lambda ids: [by_id[chunk_id].text for chunk_id in ids],
            top_k=top_k,
            score_threshold=score_threshold,
            reranker=reranker,
        )
        return [SearchHit(by_id[chunk.id], chunk.score, chunk.scores) for chunk in final]

    def _existing_chunks(
        self, kb: KnowledgeBase, ranked: Sequence[RankedChunk], wanted: int
    ) -> tuple[list[RankedChunk], dict[int, ChunkInfo]]:
        """The first ``wanted`` ranked chunks that still exist, in order, and their rows.

        Rows are read in windows, so a search reads about as many rows as it returns; entries
        whose chunks a crash (or a concurrent delete) removed are skipped.
        """
        existing: list[RankedChunk] = []
        by_id: dict[int, ChunkInfo] = {}
        start = 0
        while len(existing) < wanted and start < len(ranked):
            window = ranked[start : start + wanted - len(existing) + STALE_SLACK]
            start += len(window)
            with self.db.session() as session:
                rows = session.execute(
                    select(ChunkRow, KnowledgeFile.file_name)
                    .join(KnowledgeFile)
                    .where(ChunkRow.id.in_([chunk.id for chunk in window]), ChunkRow.kb_id == kb.id)
                ).all()
                by_id.update((info.id, info) for info in self._chunk_infos(list(rows)))
            existing += [chunk for chunk in window if chunk.id in by_id]
        return existing[:wanted], by_id

    def _ensure_keyword_index(self, kb: KnowledgeBase) -> None:
        """Fill a keyword index that is empty while the KB has chunks (a KB built before
        keyword search, a deleted or unreadable index), from the chunk texts in the database."""
        keywords = self.keywords_for(kb)
        if keywords.count() > 0 and self.analyzer.built(keywords):
            return
        with self.db.session() as session:
            has_chunks = session.scalar(select(ChunkRow.id).where(ChunkRow.kb_id == kb.id).limit(1))
        if has_chunks is None:
            return
        with self.write_lock(kb.name):
            added = self.writer(kb).index_missing_keywords()
        if added:
            logger.info("%s: indexed the terms of %d chunks for keyword search", kb.name, added)
