"""A bounded LRU of open vector stores, shared by the threads of one process.

Loading an index costs far more than a search, so stores stay open between requests. Another
process (a CLI rebuild, a second API worker) may save an index meanwhile; a store that reports
its file changed on disk is reopened on the next ``get``. A store records the file it saved
itself, so this process's own saves never count as a change.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from kb_server.stores.base import VectorStore

logger = logging.getLogger(__name__)

# (vs_type, directory, dimension) -> the store; e.g. functools.partial(open_vector_store,
# settings=settings.vector_store).
Opener = Callable[[str, Path, int], VectorStore]
CacheKey = tuple[str, Path]


@runtime_checkable
class DiskBackedStore(Protocol):
    """A store kept in files that another process may replace (FAISS, not pgvector)."""

    def changed_on_disk(self) -> bool: ...


class VectorStoreCache:
    """At most ``capacity`` open stores, keyed by (vs_type, directory); thread-safe."""

    def __init__(self, capacity: int, opener: Opener) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._capacity = capacity
        self._opener = opener
        self._lock = threading.Lock()
        self._stores: OrderedDict[CacheKey, VectorStore] = OrderedDict()

    def get(self, vs_type: str, directory: Path, dimension: int) -> VectorStore:
        """The open store for ``directory``, opened or reopened if needed."""
        key = (vs_type, directory.resolve())
        # Opening happens under the lock, so two threads never load the same index twice.
        with self._lock:
            cached = self._stores.get(key)
            if cached is not None and self._is_current(key, cached, dimension):
                self._stores.move_to_end(key)
                return cached
            store = self._opener(vs_type, key[1], dimension)
            self._stores[key] = store
            self._stores.move_to_end(key)
            while len(self._stores) > self._capacity:
                (dropped_type, dropped_dir), _ = self._stores.popitem(last=False)
                logger.debug("Closed %s store %s (cache full)", dropped_type, dropped_dir)
            return store

    def evict(self, directory: Path) -> int:
        """Drop the stores kept in ``directory`` or below it; returns how many were dropped.

        Call it when a knowledge base is deleted or rebuilt; passing the KB folder drops the
        stores of all its embedding models.
        """
        root = directory.resolve()
        with self._lock:
            doomed = [key for key in self._stores if key[1] == root or root in key[1].parents]
            for key in doomed:
                del self._stores[key]
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._stores.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._stores)

    @staticmethod
    def _is_current(key: CacheKey, store: VectorStore, dimension: int) -> bool:
        if store.dimension != dimension:
            return False
        if isinstance(store, DiskBackedStore) and store.changed_on_disk():
            logger.info("Reloading %s store %s: it was saved by another process", *key)
            return False
        return True
