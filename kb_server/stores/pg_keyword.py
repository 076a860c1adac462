"""Keyword index in PostgreSQL: tantivy's BM25 over pre-analyzed terms, in three tables.

``kb_keyword_chunks`` (kb_id, chunk_id, length, terms tsvector) holds each chunk's terms with
their positions, so a term's frequency in a chunk is the number of its positions; a GIN index
on ``terms`` finds the chunks holding any query term. ``kb_keyword_terms`` (kb_id, term, df)
and ``kb_keyword_stats`` (kb_id, analyzer_version, doc_count, total_length) keep the BM25
statistics, changed in the same transaction as the chunks, so a search reads them without
scanning the knowledge base and a reader sees an update entirely or not at all.

Scores are tantivy's (Lucene's) BM25 with k1 = 1.2, b = 0.75, so a knowledge base moved
between the two backends ranks the same (tantivy rounds long chunk lengths, so scores differ
in the last digits). Terms are tokenized like tantivy's whitespace tokenizer. The top k are
found with the MaxScore idea: candidate chunks are collected for the rarest terms first, and
chunks holding only common terms are looked at only when they could still reach the top k.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Engine, text

from kb_server.settings import Settings
from kb_server.stores.keyword import KeywordEntry, KeywordHit, KeywordLocation
from kb_server.stores.pg_engine import engine_for, pg_store_url

logger = logging.getLogger(__name__)

# tantivy's (Lucene's) BM25 constants: term-frequency saturation and length normalization.
BM25_K1: Final = 1.2
BM25_B: Final = 0.75
# PostgreSQL's tsvector limits: bytes per lexeme, positions per lexeme, largest position.
MAX_LEXEME_BYTES: Final = 2046
MAX_POSITIONS: Final = 256
MAX_POSITION: Final = 16383
# tantivy's whitespace tokenizer splits on ASCII whitespace only.
_ASCII_WHITESPACE: Final = re.compile(r"[ \t\n\x0c\r]+")
# MaxScore's first round collects chunks of the rarest terms until their document
# frequencies add up to this many times k.
FIRST_ROUND_DF_FACTOR: Final = 4

# pg_advisory_xact_lock keys: table creation, and (with the kb_id) one KB's writers.
SCHEMA_LOCK_KEY: Final = 0x6B62_6B77_6464  # "kbkwdd"
KB_LOCK_CLASS: Final = 0x6B62_6B77  # "kbkw"

SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS kb_keyword_stats (kb_id bigint PRIMARY KEY, "
    "analyzer_version text NOT NULL, doc_count bigint NOT NULL DEFAULT 0, "
    "total_length bigint NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS kb_keyword_chunks (kb_id bigint NOT NULL, "
    "chunk_id bigint NOT NULL, length integer NOT NULL, terms tsvector NOT NULL, "
    "PRIMARY KEY (kb_id, chunk_id))",
    "CREATE INDEX IF NOT EXISTS kb_keyword_chunks_terms ON kb_keyword_chunks USING gin (terms)",
    "CREATE TABLE IF NOT EXISTS kb_keyword_terms (kb_id bigint NOT NULL, term text NOT NULL, "
    "df bigint NOT NULL, PRIMARY KEY (kb_id, term))",
)

# Removes chunks and takes their terms and lengths out of the statistics; returns the terms no
# chunk holds any more (deleted in a second statement: a row cannot change twice in one).
_REMOVE_CHUNKS: Final = text(
    "WITH gone AS (DELETE FROM kb_keyword_chunks WHERE kb_id = :kb_id "
    "  AND chunk_id = ANY(CAST(:ids AS bigint[])) RETURNING length, terms), "
    "gone_terms AS (SELECT lexeme, count(*) AS n FROM gone, unnest(gone.terms) "
    "  GROUP BY lexeme), "
    "counted AS (UPDATE kb_keyword_stats SET "
    "  doc_count = doc_count - (SELECT count(*) FROM gone), "
    "  total_length = total_length - (SELECT coalesce(sum(length), 0) FROM gone) "
    "  WHERE kb_id = :kb_id), "
    "lowered AS (UPDATE kb_keyword_terms AS t SET df = t.df - g.n FROM gone_terms AS g "
    "  WHERE t.kb_id = :kb_id AND t.term = g.lexeme RETURNING t.term, t.df) "
    "SELECT term FROM lowered WHERE df <= 0"
)
_COUNT_ADDED: Final = text(
    "WITH added AS (SELECT length, terms FROM kb_keyword_chunks WHERE kb_id = :kb_id "
    "  AND chunk_id = ANY(CAST(:ids AS bigint[]))), "
    "raised AS (INSERT INTO kb_keyword_terms (kb_id, term, df) "
    "  SELECT :kb_id, lexeme, count(*) FROM added, unnest(added.terms) GROUP BY lexeme "
    "  ON CONFLICT (kb_id, term) DO UPDATE SET df = kb_keyword_terms.df + EXCLUDED.df) "
    "UPDATE kb_keyword_stats SET doc_count = doc_count + (SELECT count(*) FROM added), "
    "  total_length = total_length + (SELECT coalesce(sum(length), 0) FROM added) "
    "WHERE kb_id = :kb_id"
)


class PgKeywordIndex:
    """One knowledge base's rows in the shared keyword tables; thread-safe (pooled
    connections), and writers of one KB are serialized across processes by an advisory lock."""

    def __init__(self, engine: Engine, kb_id: int) -> None:
        self._engine = engine
        self._kb_id = int(kb_id)

    @classmethod
    def open(cls, location: KeywordLocation, settings: Settings) -> PgKeywordIndex:
        """The index of ``location.kb_id``, creating the shared tables if missing."""
        pg = settings.vector_store.pg
        engine = engine_for(pg_store_url(settings), pg.pool_size)
        _ensure_schema(engine)
        return cls(engine, location.kb_id)

    @property
    def analyzer_version(self) -> str | None:
        with self._engine.connect() as conn:
            version = conn.execute(
                text("SELECT analyzer_version FROM kb_keyword_stats WHERE kb_id = :kb_id"),
                {"kb_id": self._kb_id},
            ).scalar()
        return None if version is None else str(version)

    # -- writing -------------------------------------------------------------------------------

    def update(
        self,
        *,
        delete: Collection[int] = (),
        add: Sequence[KeywordEntry] = (),
        analyzer_version: str,
    ) -> None:
        added = {int(entry.id): entry for entry in add}  # a repeated id: the last one wins
        if any(chunk_id < 0 for chunk_id in added):
            raise ValueError("ids must be non-negative int64 values")
        doomed = sorted({int(chunk_id) for chunk_id in delete} | set(added))
        with self._engine.begin() as conn:
            self._lock_and_set_version(conn, analyzer_version)
            if doomed:
                emptied = conn.execute(_REMOVE_CHUNKS, {"kb_id": self._kb_id, "ids": doomed})
                self._forget_terms(conn, [str(row[0]) for row in emptied])
            if added:
                raw: Any = conn.connection.driver_connection
                copy_sql = "COPY kb_keyword_chunks (kb_id, chunk_id, length, terms) FROM STDIN"
                with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    for chunk_id, entry in added.items():
                        literal, length = tsvector_literal(entry.terms)
                        copy.write_row((self._kb_id, chunk_id, length, literal))
                conn.execute(_COUNT_ADDED, {"kb_id": self._kb_id, "ids": sorted(added)})

    def clear(self, analyzer_version: str) -> None:
        with self._engine.begin() as conn:
            self._lock_and_set_version(conn, analyzer_version)
            self._delete_rows(conn)
            conn.execute(
                text(
                    "UPDATE kb_keyword_stats SET doc_count = 0, total_length = 0 "
                    "WHERE kb_id = :kb_id"
                ),
                {"kb_id": self._kb_id},
            )

    def drop(self) -> None:
        with self._engine.begin() as conn:
            self._lock(conn)
            self._delete_rows(conn)
            conn.execute(
                text("DELETE FROM kb_keyword_stats WHERE kb_id = :kb_id"), {"kb_id": self._kb_id}
            )

    def _lock(self, conn: Connection) -> None:
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:class, :kb_id)"),
            {"class": KB_LOCK_CLASS, "kb_id": self._kb_id % 2**31},
        )

    def _lock_and_set_version(self, conn: Connection, analyzer_version: str) -> None:
        self._lock(conn)
        conn.execute(
            text(
                "INSERT INTO kb_keyword_stats (kb_id, analyzer_version) VALUES (:kb_id, :version) "
                "ON CONFLICT (kb_id) DO UPDATE SET analyzer_version = EXCLUDED.analyzer_version"
            ),
            {"kb_id": self._kb_id, "version": analyzer_version},
        )

    def _forget_terms(self, conn: Connection, terms: list[str]) -> None:
        if terms:
            conn.execute(
                text(
                    "DELETE FROM kb_keyword_terms WHERE kb_id = :kb_id "
                    "AND term = ANY(CAST(:terms AS text[]))"
                ),
                {"kb_id": self._kb_id, "terms": terms},
            )

    def _delete_rows(self, conn: Connection) -> None:
        for table in ("kb_keyword_chunks", "kb_keyword_terms"):
            conn.execute(text(f"DELETE FROM {table} WHERE kb_id = :kb_id"), {"kb_id": self._kb_id})

    # -- reading -------------------------------------------------------------------------------

    def search(
        self, terms: Sequence[str], k: int, *, allowed_ids: Collection[int] | None = None
    ) -> list[KeywordHit]:
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        allowed = None if allowed_ids is None else sorted({int(i) for i in allowed_ids})
        if allowed is not None and not allowed:
            return []
        # One snapshot for the statistics and the chunks: a concurrent update is seen entirely
        # or not at all.
        with (
            self._engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
            conn.begin(),
        ):
            stats = self._term_stats(conn, terms)
            if stats is None or not stats.df:
                return []
            # Bound parameters make the plan depend on the terms' frequencies, not a guess.
            conn.execute(text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)"))
            hits = top_k(conn, self._kb_id, stats, k, allowed)
        return [KeywordHit(id=chunk_id, bm25=score) for chunk_id, score in hits]

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        with self._engine.connect() as conn:
            stats = self._term_stats(conn, terms)
        return {} if stats is None else {term: stats.idf(term) for term in stats.df}

    def _term_stats(self, conn: Connection, terms: Sequence[str]) -> TermStats | None:
        """Document count, average length and the document frequency of each of ``terms``
        the KB holds (in the order asked); None for a KB with no chunks."""
        row = conn.execute(
            text("SELECT doc_count, total_length FROM kb_keyword_stats WHERE kb_id = :kb_id"),
            {"kb_id": self._kb_id},
        ).first()
        if row is None or int(row[0]) == 0:
            return None
        unique = list(dict.fromkeys(term for term in terms if term and "\x00" not in term))
        rows = conn.execute(
            text(
                "SELECT term, df FROM kb_keyword_terms WHERE kb_id = :kb_id "
                "AND term = ANY(CAST(:terms AS text[]))"
            ),
            {"kb_id": self._kb_id, "terms": unique},
        )
        found: dict[str, int] = {str(row[0]): int(row[1]) for row in rows}
        df = {term: int(found[term]) for term in unique if term in found}
        return TermStats(doc_count=int(row[0]), total_length=int(row[1]), df=df)

    def ids(self) -> set[int]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                text("SELECT chunk_id FROM kb_keyword_chunks WHERE kb_id = :kb_id"),
                {"kb_id": self._kb_id},
            )
            return {int(row[0]) for row in rows}

    def count(self) -> int:
        with self._engine.connect() as conn:
            count = conn.execute(
                text("SELECT doc_count FROM kb_keyword_stats WHERE kb_id = :kb_id"),
                {"kb_id": self._kb_id},
            ).scalar()
        return 0 if count is None else int(count)


def _ensure_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('kb_keyword_terms')")).scalar()
    if exists is not None:
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        for statement in SCHEMA:
            conn.execute(text(statement))
    logger.info("Created the PostgreSQL keyword index tables")


@dataclass(frozen=True, slots=True)
class TermStats:
    """What BM25 needs besides the chunks: the KB's size and the query terms' frequencies."""

    doc_count: int
    total_length: int
    df: dict[str, int]

    def idf(self, term: str) -> float:
        containing = self.df[term]
        return math.log(1.0 + (self.doc_count - containing + 0.5) / (containing + 0.5))


def tsvector_literal(terms: Iterable[str]) -> tuple[str, int]:
    """A chunk's terms as tsvector input text, and its length in tokens (what tantivy counts).

    Each lexeme is quoted (quotes and backslashes escaped), so any characters survive, and
    carries its positions, whose count is the term frequency (up to 256, PostgreSQL's limit;
    BM25 has long saturated by then). A chunk longer than the largest position gets positions
    1..tf per term instead, which keeps the frequencies. Terms PostgreSQL cannot store (over
    2046 bytes, or holding NUL) are left out but still count towards the length.
    """
    tokens = [token for term in terms for token in _ASCII_WHITESPACE.split(term) if token]
    positions: dict[str, list[int]] = {}
    for position, token in enumerate(tokens, start=1):
        if "\x00" not in token and len(token.encode("utf-8")) <= MAX_LEXEME_BYTES:
            positions.setdefault(token, []).append(position)
    synthetic = len(tokens) > MAX_POSITION
    parts = []
    for token, found in positions.items():
        kept = range(1, len(found) + 1) if synthetic else found
        listed = ",".join(str(position) for position in kept[:MAX_POSITIONS])
        parts.append(f"{quote_lexeme(token)}:{listed}")
    return " ".join(parts), len(tokens)


def quote_lexeme(term: str) -> str:
    """``term`` as one quoted lexeme of tsvector or tsquery input."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


# The BM25 score of candidate chunks: the query terms' lexemes cut out of each chunk's tsvector
# (setweight marks them, ts_filter keeps them: 3x faster than unnesting every lexeme), joined
# with their weights (idf * (k1 + 1)); the chunk length normalizes the term frequency.
_SCORE_SQL: Final = (
    "SELECT c.chunk_id, sum(q.weight * t.tf / (t.tf + :k1 * (1 - :b + :b * c.length / :avg))) "
    "AS score FROM kb_keyword_chunks AS c "
    "CROSS JOIN LATERAL (SELECT u.lexeme, coalesce(cardinality(u.positions), 1) AS tf "
    "  FROM unnest(ts_filter(setweight(c.terms, 'A', CAST(:terms AS text[])), '{{a}}')) AS u) "
    "  AS t "
    "JOIN unnest(CAST(:terms AS text[]), CAST(:weights AS float8[])) AS q(term, weight) "
    "  ON q.term = t.lexeme "
    "WHERE c.kb_id = :kb_id AND c.terms @@ CAST(:query AS tsquery) {allowed}"
    "GROUP BY c.chunk_id ORDER BY score DESC, c.chunk_id LIMIT :k"
)


def top_k(
    conn: Connection, kb_id: int, stats: TermStats, k: int, allowed: list[int] | None
) -> list[tuple[int, float]]:
    """The k best chunks by BM25 over the terms in ``stats.df``, best first (MaxScore).

    A term adds at most idf * (k1 + 1) to a chunk's score. Chunks holding one of the rarest
    terms are scored on every term; the common terms left out of that candidate search can
    together add at most the sum of their bounds, so once the k-th score reaches that sum, no
    chunk holding only common terms can enter the top k. Otherwise a second round collects
    candidates for every term whose bound could still matter.
    """
    rarest_first = sorted(stats.df, key=lambda term: (stats.df[term], term))
    weights = [stats.idf(term) * (BM25_K1 + 1) for term in rarest_first]
    essential, covered = 0, 0
    while essential < len(rarest_first) and covered < FIRST_ROUND_DF_FACTOR * k:
        covered += stats.df[rarest_first[essential]]
        essential += 1
    while True:
        hits = _score(
            conn, kb_id, stats, rarest_first, weights, rarest_first[:essential], k, allowed
        )
        threshold = hits[-1][1] if len(hits) == k else 0.0
        if essential == len(rarest_first) or sum(weights[essential:]) <= threshold:
            return hits
        # The fewest essential terms whose left-out bounds cannot beat the k-th score.
        while essential < len(rarest_first) and sum(weights[essential:]) > threshold:
            essential += 1


def _score(
    conn: Connection,
    kb_id: int,
    stats: TermStats,
    terms: list[str],
    weights: list[float],
    essential: list[str],
    k: int,
    allowed: list[int] | None,
) -> list[tuple[int, float]]:
    params: dict[str, Any] = {
        "kb_id": kb_id,
        "k1": BM25_K1,
        "b": BM25_B,
        "avg": stats.total_length / stats.doc_count,
        "terms": terms,
        "weights": weights,
        "query": " | ".join(quote_lexeme(term) for term in essential),
        "k": k,
    }
    allowed_sql = ""
    if allowed is not None:
        allowed_sql = "AND c.chunk_id = ANY(CAST(:allowed AS bigint[])) "
        params["allowed"] = allowed
    rows = conn.execute(text(_SCORE_SQL.format(allowed=allowed_sql)), params)
    return [(int(row[0]), float(row[1])) for row in rows]
