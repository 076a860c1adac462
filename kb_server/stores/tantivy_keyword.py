"""Keyword index on disk with tantivy (a Rust search library): BM25 over pre-analyzed terms.

One index per knowledge base in ``<kb>/keyword_index/``, in tantivy's own segment format
(never pickle). Terms arrive already analyzed (kb_server.retrieval.analyzer) and are stored
space-separated under tantivy's whitespace tokenizer, so what is searched is exactly what the
analyzer produced. A commit is atomic: tantivy publishes it by replacing meta.json, and a
crash before that leaves the previous commit intact. Other processes' commits are picked up
by tantivy's reader (it watches meta.json) and on the next search.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Final

import tantivy

from kb_server.stores.keyword import KeywordEntry, KeywordHit

logger = logging.getLogger(__name__)

ID_FIELD: Final = "id"
TERMS_FIELD: Final = "terms"
# Our own record next to tantivy's files: which analyzer produced the stored terms.
META_FILE: Final = "kb_keyword.json"
FORMAT_VERSION: Final = 1
# tantivy's indexing buffer; it wants at least 15 MB and flushes a segment when it is full.
WRITER_HEAP_BYTES: Final = 32_000_000
# BM25 constants tantivy uses (Lucene's): term-frequency saturation and length normalization.
BM25_K1: Final = 1.2


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field(ID_FIELD, stored=False, indexed=True, fast=True)
    builder.add_text_field(
        TERMS_FIELD, stored=False, tokenizer_name="whitespace", index_option="freq"
    )
    return builder.build()


class TantivyKeywordIndex:
    """Thread-safe; writers are serialized here and across processes by the KB's write lock."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._schema = _schema()
        self._lock = threading.RLock()
        self._index: tantivy.Index | None = None
        # tantivy's meta.json as last seen: when another process commits, it changes.
        self._seen_meta: tuple[int, int, int] | None = None
        self._open_existing()

    @classmethod
    def open(cls, directory: Path) -> TantivyKeywordIndex:
        return cls(directory)

    # -- opening -----------------------------------------------------------------------------

    def _open_existing(self) -> None:
        """Open the index if one is on disk; an unreadable one counts as absent (it is rebuilt
        from the database)."""
        if not (self._directory / "meta.json").is_file():
            return
        try:
            self._seen_meta = self._meta_signature()
            self._index = tantivy.Index(self._schema, path=str(self._directory), reuse=True)
        except (OSError, ValueError) as exc:
            logger.warning(
                "Keyword index %s is unreadable (%s); it will be rebuilt", self._directory, exc
            )
            self._index = None

    def _meta_signature(self) -> tuple[int, int, int] | None:
        try:
            stat = (self._directory / "meta.json").stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _readable(self) -> tantivy.Index | None:
        """The open index, reloaded when a commit (of any process) changed it since."""
        signature = self._meta_signature()
        if signature == self._seen_meta:
            return self._index
        with self._lock:
            if self._index is None:
                self._open_existing()
            elif signature is None:
                self._index = None  # removed (the KB was deleted or rebuilt)
            else:
                self._index.reload()
            self._seen_meta = signature
        return self._index

    def _writable(self) -> tantivy.Index:
        if self._readable() is None:
            if self._directory.exists():
                # Whatever is there could not be opened; it is derived data, start afresh.
                shutil.rmtree(self._directory)
            self._directory.mkdir(parents=True, exist_ok=True)
            self._index = tantivy.Index(self._schema, path=str(self._directory), reuse=False)
        assert self._index is not None
        return self._index

    @property
    def analyzer_version(self) -> str | None:
        if self._readable() is None:
            return None
        try:
            meta = json.loads((self._directory / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        version = meta.get("analyzer") if isinstance(meta, dict) else None
        return version if isinstance(version, str) else None

    def _write_meta(self, analyzer_version: str) -> None:
        target = self._directory / META_FILE
        temp = target.with_name(f".{target.name}.tmp")
        temp.write_text(
            json.dumps({"format_version": FORMAT_VERSION, "analyzer": analyzer_version}),
            encoding="utf-8",
        )
        temp.replace(target)

    # -- writing -----------------------------------------------------------------------------

    def update(
        self,
        *,
        delete: Collection[int] = (),
        add: Sequence[KeywordEntry] = (),
        analyzer_version: str,
    ) -> None:
        replaced = {entry.id for entry in add}
        doomed = sorted(set(delete) | replaced)
        if not doomed and not add and self.analyzer_version == analyzer_version:
            return
        with self._lock:
            index = self._writable()
            writer = index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
            try:
                if doomed:
                    writer.delete_documents_by_query(
                        tantivy.Query.term_set_query(self._schema, ID_FIELD, doomed)
                    )
                for entry in add:
                    document = tantivy.Document()
                    document.add_unsigned(ID_FIELD, entry.id)
                    document.add_text(TERMS_FIELD, " ".join(entry.terms))
                    writer.add_document(document)
                writer.commit()
            except BaseException:
                writer.rollback()
                raise
            finally:
                # Waits for merges and releases tantivy's writer lock file.
                writer.wait_merging_threads()
            self._write_meta(analyzer_version)
            index.reload()
            self._seen_meta = self._meta_signature()

    def clear(self, analyzer_version: str) -> None:
        with self._lock:
            index = self._writable()
            writer = index.writer(heap_size=WRITER_HEAP_BYTES, num_threads=1)
            try:
                writer.delete_all_documents()
                writer.commit()
            finally:
                writer.wait_merging_threads()
            self._write_meta(analyzer_version)
            index.reload()
            self._seen_meta = self._meta_signature()

    # -- reading -----------------------------------------------------------------------------

    def search(
        self, terms: Sequence[str], k: int, *, allowed_ids: Collection[int] | None = None
    ) -> list[KeywordHit]:
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        index = self._readable()
        unique = list(dict.fromkeys(term for term in terms if term))
        if index is None or not unique:
            return []
        query = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, TERMS_FIELD, term))
                for term in unique
            ]
        )
        if allowed_ids is not None:
            allowed = sorted(set(allowed_ids))
            if not allowed:
                return []
            # The id filter must match but adds nothing to the score.
            only_allowed = tantivy.Query.const_score_query(
                tantivy.Query.term_set_query(self._schema, ID_FIELD, allowed), 0.0
            )
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, query), (tantivy.Occur.Must, only_allowed)]
            )
        searcher = index.searcher()
        hits = searcher.search(query, k, count=False).hits
        ids = searcher.fast_field_values(ID_FIELD, [address for _, address in hits])
        return [
            KeywordHit(id=int(chunk_id), bm25=float(score))
            for (score, _), chunk_id in zip(hits, ids, strict=True)
            if chunk_id is not None
        ]

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        index = self._readable()
        if index is None:
            return {}
        searcher = index.searcher()
        total = searcher.num_docs
        weights: dict[str, float] = {}
        for term in dict.fromkeys(terms):
            containing = searcher.doc_freq(TERMS_FIELD, term)
            if containing > 0:
                # tantivy's (and Lucene's) BM25 idf; with term frequency 1 in a chunk of average
                # length, a term scores idf * (k1 + 1) / (1 + k1) = idf.
                weights[term] = math.log(1.0 + (total - containing + 0.5) / (containing + 0.5))
        return weights

    def ids(self) -> set[int]:
        index = self._readable()
        if index is None:
            return set()
        searcher = index.searcher()
        total = searcher.num_docs
        if total == 0:
            return set()
        hits = searcher.search(tantivy.Query.all_query(), total, count=False).hits
        values = searcher.fast_field_values(ID_FIELD, [address for _, address in hits])
        return {int(value) for value in values if value is not None}

    def count(self) -> int:
        index = self._readable()
        return 0 if index is None else int(index.searcher().num_docs)

    def drop(self) -> None:
        with self._lock:
            self._index = None
            shutil.rmtree(self._directory, ignore_errors=True)
            self._seen_meta = None
