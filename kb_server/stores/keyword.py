"""The keyword index contract: BM25 over analyzed terms, under the same int64 ids as vectors.

A keyword index is derived data: every entry can be rebuilt from the chunk rows in the
database (no model needed), so a missing or stale index is repaired, never fatal.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeywordHit:
    id: int
    # Raw BM25 (k1 = 1.2, b = 0.75), higher is better; unbounded.
    bm25: float


@dataclass(frozen=True, slots=True)
class KeywordEntry:
    id: int
    terms: Sequence[str]


@dataclass(frozen=True, slots=True)
class KeywordLocation:
    """One knowledge base's keyword index: files in ``directory`` (tantivy) or rows keyed by
    ``kb_id`` (PostgreSQL)."""

    kb_id: int
    directory: Path


class KeywordIndex(Protocol):
    @property
    def analyzer_version(self) -> str | None:
        """The analyzer the stored terms came from; None for an index never written."""
        ...

    def update(
        self,
        *,
        delete: Collection[int] = (),
        add: Sequence[KeywordEntry] = (),
        analyzer_version: str,
    ) -> None:
        """Remove ``delete``, then add ``add`` (an id already present is replaced); one atomic
        commit: a reader in any process sees all of it or none of it."""
        ...

    def clear(self, analyzer_version: str) -> None:
        """Remove every entry (before a rebuild, e.g. after an analyzer change)."""
        ...

    def search(
        self, terms: Sequence[str], k: int, *, allowed_ids: Collection[int] | None = None
    ) -> list[KeywordHit]:
        """The k best ids for any of ``terms`` by BM25, best first."""
        ...

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25's inverse document frequency of each term the index holds (absent terms are
        left out): what one occurrence of the term in a chunk of average length scores."""
        ...

    def ids(self) -> set[int]: ...

    def count(self) -> int: ...

    def drop(self) -> None:
        """Delete the whole index (a deleted knowledge base); it reads as never written."""
        ...
