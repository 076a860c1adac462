"""pgvector store: one table per (knowledge base, embedding model) in a PostgreSQL database.

``kb_vectors_<kb_id>_<hash of the model name>`` holds ``id bigint primary key, embedding
vector(<dimension>)`` with an HNSW index (cosine distance) built as rows arrive. The catalog
``kb_vector_tables`` records each table's knowledge base, model and dimension, so reopening
with another dimension fails like FAISS does and tables can be found and cleaned up.

Every write is one transaction, committed when the call returns: another process (a second API
worker) sees it at once, and :meth:`PgVectorStore.save` has nothing left to do. Scores are
cosine similarities, ``1 - (embedding <=> query)``, which for the normalized vectors the
embedder produces equal FAISS's inner products.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any, Final, TypeVar

import numpy as np
from numpy.typing import NDArray
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from kb_server.settings import PgVectorSettings, Settings
from kb_server.stores.base import Hit, VectorLocation
from kb_server.stores.pg_engine import engine_for, pg_store_url
from kb_server.stores.validation import (
    DimensionMismatchError,
    validated_batch,
    validated_ids,
    validated_vectors,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

CATALOG: Final = "kb_vector_tables"
# pg_advisory_xact_lock key serializing table creation and removal across processes.
CATALOG_LOCK_KEY: Final = 0x6B62_7665_6374  # "kbvect"
# pgvector 0.6 indexes vectors of up to 2000 dimensions; larger ones are scanned exactly.
HNSW_MAX_DIMENSION: Final = 2000
# The largest hnsw.ef_search pgvector accepts; a larger k is answered by an exact scan.
HNSW_MAX_EF_SEARCH: Final = 1000


def table_name(kb_id: int, embed_model: str) -> str:
    """The table of one KB's vectors of one model: built from an int and a hex digest only."""
    digest = hashlib.sha256(embed_model.encode("utf-8")).hexdigest()[:12]
    return f"kb_vectors_{int(kb_id)}_{digest}"


class PgVectorStore:
    """A knowledge base's vectors in PostgreSQL; thread-safe (each call borrows a pooled
    connection) and shared safely by several processes."""

    def __init__(
        self, engine: Engine, location: VectorLocation, settings: PgVectorSettings
    ) -> None:
        if location.dimension < 1:
            raise ValueError(f"dimension must be positive, got {location.dimension}")
        self._engine = engine
        self._location = location
        self._settings = settings
        self._table = table_name(location.kb_id, location.embed_model)

    @classmethod
    def open(cls, location: VectorLocation, settings: Settings) -> PgVectorStore:
        """The store of ``location``, creating its table (and the catalog) if missing."""
        pg = settings.vector_store.pg
        store = cls(engine_for(pg_store_url(settings), pg.pool_size), location, pg)
        store._ensure_table()
        return store

    @property
    def dimension(self) -> int:
        return self._location.dimension

    # -- the table -----------------------------------------------------------------------------

    def _ensure_table(self) -> None:
        """Create the table, its index and its catalog row unless they exist; check the
        dimension of an existing one."""
        with self._engine.connect() as conn:
            if self._catalogued_dimension(conn) is None:
                conn.rollback()
                with conn.begin():
                    # Serializes concurrent creators in every process: CREATE ... IF NOT EXISTS
                    # alone can still fail when two sessions race on the same name.
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": CATALOG_LOCK_KEY}
                    )
                    self._create(conn)
            dimension = self._catalogued_dimension(conn)
        if dimension is not None and dimension != self.dimension:
            raise DimensionMismatchError(
                f"the pgvector table {self._table}", self.dimension, dimension
            )

    def _catalogued_dimension(self, conn: Connection) -> int | None:
        if conn.execute(text("SELECT to_regclass(:name)"), {"name": CATALOG}).scalar() is None:
            return None
        row = conn.execute(
            text(f"SELECT dimension FROM {CATALOG} WHERE table_name = :table"),
            {"table": self._table},
        ).first()
        return None if row is None else int(row[0])

    def _create(self, conn: Connection) -> None:
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {CATALOG} (table_name text PRIMARY KEY, "
                "kb_id bigint NOT NULL, embed_model text NOT NULL, dimension integer NOT NULL, "
                "created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (kb_id, embed_model))"
            )
        )
        if self._catalogued_dimension(conn) is not None:
            return  # another process created it while this one waited for the lock
        dimension = int(self.dimension)
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {self._table} "
                f"(id bigint PRIMARY KEY, embedding vector({dimension}) NOT NULL)"
            )
        )
        if dimension <= HNSW_MAX_DIMENSION:
            m, ef_construction = (
                int(self._settings.hnsw_m),
                int(self._settings.hnsw_ef_construction),
            )
            conn.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS {self._table}_hnsw ON {self._table} "
                    f"USING hnsw (embedding vector_cosine_ops) "
                    f"WITH (m = {m}, ef_construction = {ef_construction})"
                )
            )
        else:
            logger.warning(
                "%d dimensions exceed pgvector's HNSW limit (%d); %s is searched exactly",
                dimension,
                HNSW_MAX_DIMENSION,
                self._table,
            )
        conn.execute(
            text(
                f"INSERT INTO {CATALOG} (table_name, kb_id, embed_model, dimension) "
                "VALUES (:table, :kb_id, :model, :dimension)"
            ),
            {
                "table": self._table,
                "kb_id": self._location.kb_id,
                "model": self._location.embed_model,
                "dimension": dimension,
            },
        )
        logger.info("Created pgvector table %s (%d dimensions)", self._table, dimension)

    def _read(self, work: Callable[[Connection], T], empty: T) -> T:
        """``work`` in one transaction; ``empty`` when the table is gone (the store was dropped,
        here or by another process)."""
        try:
            with self._engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            if isinstance(exc.orig, pg_errors.UndefinedTable):
                return empty
            raise

    def _write(self, work: Callable[[Connection], T]) -> T:
        """``work`` in one transaction, recreating the table if it was dropped meanwhile."""
        try:
            with self._engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            if not isinstance(exc.orig, pg_errors.UndefinedTable):
                raise
        self._ensure_table()
        with self._engine.begin() as conn:
            return work(conn)

    # -- writing -------------------------------------------------------------------------------

    def add(self, ids: Sequence[int], vectors: NDArray[np.float32]) -> None:
        id_array, matrix = validated_batch(ids, vectors, self.dimension)
        if id_array.size == 0:
            return

        def replace(conn: Connection) -> None:
            conn.execute(
                text(f"DELETE FROM {self._table} WHERE id = ANY(CAST(:ids AS bigint[]))"),
                {"ids": id_array.tolist()},
            )
            # COPY in binary: the fastest way in, on the same connection and transaction.
            raw: Any = conn.connection.driver_connection
            copy_sql = f"COPY {self._table} (id, embedding) FROM STDIN (FORMAT BINARY)"
            with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                copy.set_types(["int8", "vector"])
                for chunk_id, row in zip(id_array.tolist(), matrix, strict=True):
                    copy.write_row((chunk_id, row))

        self._write(replace)

    def delete(self, ids: Collection[int]) -> int:
        id_array = validated_ids(ids)
        if id_array.size == 0:
            return 0

        def remove(conn: Connection) -> int:
            result = conn.execute(
                text(f"DELETE FROM {self._table} WHERE id = ANY(CAST(:ids AS bigint[]))"),
                {"ids": id_array.tolist()},
            )
            return int(result.rowcount)

        return self._read(remove, 0)

    def drop(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CATALOG_LOCK_KEY})
            conn.execute(text(f"DROP TABLE IF EXISTS {self._table}"))
            if conn.execute(text("SELECT to_regclass(:name)"), {"name": CATALOG}).scalar():
                conn.execute(
                    text(f"DELETE FROM {CATALOG} WHERE table_name = :table"), {"table": self._table}
                )
        logger.info("Dropped pgvector table %s", self._table)

    def save(self) -> None:
        """Nothing to do: every write committed when it returned."""

    # -- reading -------------------------------------------------------------------------------

    def search(
        self, vector: NDArray[np.float32], k: int, *, allowed_ids: Collection[int] | None = None
    ) -> list[Hit]:
        query = validated_vectors(vector, "query vector", self.dimension, allow_single_row=True)
        if query.shape[0] != 1:
            raise ValueError(f"search takes one query vector, got {query.shape[0]}")
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        params: dict[str, Any] = {"query": query[0], "k": k}
        if allowed_ids is not None:
            allowed = np.unique(validated_ids(allowed_ids))
            if allowed.size == 0:
                return []
            # An exact scan of the allowed rows (found by primary key): ordering by the
            # similarity, not by the distance operator, keeps the HNSW index out of it. HNSW
            # with a filter would drop non-matching neighbours after the search and could
            # return fewer than k hits.
            sql = (
                f"SELECT id, 1 - (embedding <=> :query) AS score FROM {self._table} "
                "WHERE id = ANY(CAST(:allowed AS bigint[])) ORDER BY score DESC, id LIMIT :k"
            )
            params["allowed"] = allowed.tolist()
        elif k > HNSW_MAX_EF_SEARCH:
            sql = (
                f"SELECT id, 1 - (embedding <=> :query) AS score FROM {self._table} "
                "ORDER BY score DESC, id LIMIT :k"
            )
        else:
            sql = (
                f"SELECT id, 1 - (embedding <=> :query) AS score FROM {self._table} "
                "ORDER BY embedding <=> :query LIMIT :k"
            )
        ef_search = min(HNSW_MAX_EF_SEARCH, max(self._settings.hnsw_ef_search, k))

        def nearest(conn: Connection) -> list[Hit]:
            conn.execute(
                text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef_search)}
            )
            rows = conn.execute(text(sql), params).all()
            return [Hit(id=int(row[0]), score=float(row[1])) for row in rows]

        return self._read(nearest, [])

    def similarities(self, vector: NDArray[np.float32], ids: Collection[int]) -> dict[int, float]:
        query = validated_vectors(vector, "query vector", self.dimension, allow_single_row=True)
        wanted = validated_ids(ids)
        if wanted.size == 0:
            return {}
        sql = text(
            f"SELECT id, 1 - (embedding <=> :query) FROM {self._table} "
            "WHERE id = ANY(CAST(:ids AS bigint[]))"
        )

        def scores(conn: Connection) -> dict[int, float]:
            rows = conn.execute(sql, {"query": query[0], "ids": wanted.tolist()})
            return {int(row[0]): float(row[1]) for row in rows}

        return self._read(scores, {})

    def get_vectors(self, ids: Sequence[int]) -> tuple[list[int], NDArray[np.float32]]:
        wanted = validated_ids(ids).tolist()
        sql = text(
            f"SELECT id, embedding FROM {self._table} WHERE id = ANY(CAST(:ids AS bigint[]))"
        )

        def fetch(conn: Connection) -> dict[int, NDArray[np.float32]]:
            rows = conn.execute(sql, {"ids": wanted})
            return {int(row[0]): row[1].to_numpy() for row in rows}

        nothing: dict[int, NDArray[np.float32]] = {}
        stored = self._read(fetch, nothing) if wanted else nothing
        found = [chunk_id for chunk_id in wanted if chunk_id in stored]
        if not found:
            return [], np.empty((0, self.dimension), dtype=np.float32)
        matrix = np.vstack([stored[chunk_id] for chunk_id in found])
        return found, matrix.astype(np.float32, copy=False)

    def count(self) -> int:
        sql = text(f"SELECT count(*) FROM {self._table}")
        return self._read(lambda conn: int(conn.execute(sql).scalar_one()), 0)

    def ids(self) -> set[int]:
        sql = text(f"SELECT id FROM {self._table}")
        return self._read(lambda conn: {int(row[0]) for row in conn.execute(sql)}, set())
