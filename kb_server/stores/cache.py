"""Bounded LRUs of open vector stores and keyword indexes, shared by the threads of a process.

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
from dataclasses import replace
from pathlib import Path
from typing import Generic, Protocol, TypeVar, runtime_checkable

from kb_server.stores.base import VectorLocation, VectorStore
from kb_server.stores.keyword import KeywordIndex, KeywordLocation

logger = logging.getLogger(__name__)

# (vs_type, location) -> the store; e.g. functools.partial(open_vector_store, settings=...).
Opener = Callable[[str, VectorLocation], VectorStore]
KeywordOpener = Callable[[str, KeywordLocation], KeywordIndex]
# (vs_type, directory, kb id): a KB deleted and created again under its name is another KB,
# whose rows (in a database store) differ from the cached one's.
CacheKey = tuple[str, Path, int]
T = TypeVar("T")


class _OpenLru(Generic[T]):
    """At most ``capacity`` open indexes by (type, directory), least recently used dropped
    first; thread-safe. Opening happens under the lock, so two threads never open the same
    index twice."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, T] = OrderedDict()

    def get(self, key: CacheKey, open_: Callable[[], T], is_current: Callable[[T], bool]) -> T:
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and is_current(cached):
                self._entries.move_to_end(key)
                return cached
            opened = open_()
            self._entries[key] = opened
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                (dropped_type, dropped_dir, _), _ = self._entries.popitem(last=False)
                logger.debug("Closed %s index %s (cache full)", dropped_type, dropped_dir)
            return opened

    def evict(self, directory: Path) -> int:
        """Remove the entries kept in ``directory`` or below it; returns how many went."""
        root = directory.resolve()
        with self._lock:
            doomed = [key for key in self._entries if key[1] == root or root in key[1].parents]
            for key in doomed:
                del self._entries[key]
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@runtime_checkable
class DiskBackedStore(Protocol):
    """A store kept in files that another process may replace (FAISS, not pgvector)."""

    def changed_on_disk(self) -> bool: ...


class VectorStoreCache:
    """At most ``capacity`` open stores, keyed by (vs_type, directory, kb id); thread-safe."""

    def __init__(self, capacity: int, opener: Opener) -> None:
        self._stores = _OpenLru[VectorStore](capacity)
        self._opener = opener

    def get(self, vs_type: str, location: VectorLocation) -> VectorStore:
        """The open store for ``location``, opened or reopened if needed."""
        directory = location.directory.resolve()
        key = (vs_type, directory, location.kb_id)
        return self._stores.get(
            key,
            lambda: self._opener(vs_type, replace(location, directory=directory)),
            lambda store: self._is_current(key, store, location.dimension),
        )

    def evict(self, directory: Path) -> int:
        """Drop the stores kept in ``directory`` or below it; returns how many were dropped.

        Call it when a knowledge base is deleted or rebuilt; passing the KB folder drops the
        stores of all its embedding models.
        """
        return self._stores.evict(directory)

    def clear(self) -> None:
        self._stores.clear()

    def __len__(self) -> int:
        return len(self._stores)

    @staticmethod
    def _is_current(key: CacheKey, store: VectorStore, dimension: int) -> bool:
        if store.dimension != dimension:
            return False
        if isinstance(store, DiskBackedStore) and store.changed_on_disk():
            logger.info("Reloading %s store %s: it was saved by another process", *key[:2])
            return False
        return True


class KeywordIndexCache:
    """Open keyword indexes by (vs_type, directory, kb id), at most ``capacity``; thread-safe.
    An index notices other processes' commits itself, so entries never go stale."""

    def __init__(self, capacity: int, opener: KeywordOpener) -> None:
        self._indexes = _OpenLru[KeywordIndex](capacity)
        self._opener = opener

    def get(self, vs_type: str, location: KeywordLocation) -> KeywordIndex:
        directory = location.directory.resolve()
        key = (vs_type, directory, location.kb_id)
        return self._indexes.get(
            key,
            lambda: self._opener(vs_type, KeywordLocation(location.kb_id, directory)),
            lambda _: True,
        )

    def evict(self, directory: Path) -> int:
        """Drop the indexes kept in ``directory`` or below it (a deleted or rebuilt KB)."""
        return self._indexes.evict(directory)
