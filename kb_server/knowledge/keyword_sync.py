"""Keeping a KB's keyword (BM25) index in step with its chunks in the database."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from sqlalchemy import select

from kb_server.db.engine import Database
from kb_server.db.models import ChunkRow
from kb_server.retrieval.analyzer import KeywordAnalyzer
from kb_server.stores.keyword import KeywordEntry, KeywordIndex

logger = logging.getLogger(__name__)

# Chunks read back from the database per keyword-index commit when terms are rebuilt.
KEYWORD_REBUILD_BATCH = 2000


class KeywordSync:
    """The keyword-index half of a KB writer (KbWriter inherits it)."""

    db: Database
    kb_id: int
    keywords: KeywordIndex
    analyzer: KeywordAnalyzer
    _keyword_analyzer_checked: bool = False

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
