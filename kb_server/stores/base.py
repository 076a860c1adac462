"""The vector store contract: int64 ids and vectors, nothing else.

Chunk text and metadata live in the database; a store only answers "which ids are nearest".
Scores are cosine similarities in [-1, 1] (inner products of normalized vectors), higher is
better, for every implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Hit:
    id: int
    score: float


@dataclass(frozen=True, slots=True)
class VectorLocation:
    """Which index a store holds: one knowledge base's vectors of one embedding model.

    File-based stores (FAISS) keep their files in ``directory``; database stores (pgvector) key
    their table by ``kb_id`` and ``embed_model`` and never touch ``directory``.
    """

    kb_id: int
    embed_model: str
    dimension: int
    directory: Path


class VectorStore(Protocol):
    @property
    def dimension(self) -> int: ...

    def add(self, ids: Sequence[int], vectors: NDArray[np.float32]) -> None:
        """Add vectors under ids; an id already present is replaced."""
        ...

    def delete(self, ids: Collection[int]) -> int:
        """Remove ids (absent ones are ignored); returns how many were removed."""
        ...

    def search(
        self, vector: NDArray[np.float32], k: int, *, allowed_ids: Collection[int] | None = None
    ) -> list[Hit]:
        """The k nearest ids, best first; ``allowed_ids`` restricts the candidates."""
        ...

    def similarities(self, vector: NDArray[np.float32], ids: Collection[int]) -> dict[int, float]:
        """The score of each of ``ids`` against ``vector``; ids not in the store are left out."""
        ...

    def get_vectors(self, ids: Sequence[int]) -> tuple[list[int], NDArray[np.float32]]:
        """The stored vectors of those ``ids`` the store holds, in the order asked (for copying
        an index to another store without embedding again)."""
        ...

    def count(self) -> int: ...

    def ids(self) -> set[int]: ...

    def drop(self) -> None:
        """Delete everything this store persisted (a deleted or rebuilt knowledge base); the
        store is empty afterwards."""
        ...

    def save(self) -> None:
        """Persist atomically: a reader sees the old state or the new one, never half."""
        ...
