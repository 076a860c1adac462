"""FAISS vector store: one ``IndexIDMap2(IndexFlatIP)`` per (knowledge base, embedding model).

In the caller's directory (``<kb>/vector_store/<model>/``): ``index.faiss`` in FAISS's own
binary format (never pickle) and ``meta.json`` (format version, dimension, metric, count).
Each is replaced atomically (temp file in the same directory, fsync, rename, fsync of the
directory), so a reader in another process sees the old file or the new one, never half.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np
from faiss import PyCallbackIOReader, PyCallbackIOWriter  # type: ignore[attr-defined]
from numpy.typing import NDArray

from kb_server.failpoints import failpoint
from kb_server.settings import VectorStoreSettings
from kb_server.stores.base import Hit
from kb_server.stores.validation import (
    DimensionMismatchError,
    validated_batch,
    validated_ids,
    validated_vectors,
)

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
META_FILE = "meta.json"
FORMAT_VERSION = 1
METRIC = "ip"
TEMP_SUFFIX = ".tmp"
# A temp file untouched for this long belongs to a crashed save, not to one in progress in
# another process (a save writes continuously and renames within seconds).
STALE_TEMP_AGE_S = 3600.0


class CorruptIndexError(RuntimeError):
    """The index file exists but is not a readable FAISS inner-product ID-mapped index."""


@dataclass(frozen=True, slots=True)
class FileSignature:
    """What tells one saved version of a file from another without reading it."""

    mtime_ns: int
    size: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileSignature:
        return cls(mtime_ns=stat.st_mtime_ns, size=stat.st_size, inode=stat.st_ino)


def file_signature(path: Path) -> FileSignature | None:
    try:
        return FileSignature.of(path.stat())
    except FileNotFoundError:
        return None


class FaissStore:
    """Exact search under int64 chunk ids; thread-safe. Vectors come L2-normalized (the
    embedder does it), so inner products are cosine similarities in [-1, 1]."""

    def __init__(self, directory: Path, dimension: int, *, threads: int | None = None) -> None:
        """An empty store for ``directory``; nothing is written until :meth:`save`."""
        if dimension < 1:
            raise ValueError(f"dimension must be positive, got {dimension}")
        self._directory = directory
        self._dimension = dimension
        self._threads = threads
        # FAISS does not allow add/remove concurrently with search on the same index.
        self._lock = threading.Lock()
        # Any: faiss's bundled stubs lack the numpy conveniences its Python wrapper adds.
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._signature: FileSignature | None = None

    @classmethod
    def open(
        cls, directory: Path, dimension: int, settings: VectorStoreSettings | None = None
    ) -> FaissStore:
        """Load the index saved in ``directory``, or start an empty one if there is none."""
        store = cls(directory, dimension, threads=settings.faiss_threads if settings else None)
        _remove_stale_temp_files(directory)
        _check_meta(directory / META_FILE)
        index_path = directory / INDEX_FILE
        # Stat before reading: if another process replaces the file in between, the recorded
        # signature is the older one and the next check reloads, rather than missing a change.
        signature = file_signature(index_path)
        if signature is not None:
            store._index = _read_index(index_path, dimension)
            store._signature = signature
            logger.debug("Loaded %d vectors from %s", store._index.ntotal, index_path)
        return store

    @property
    def dimension(self) -> int:
        return self._dimension

    def add(self, ids: Sequence[int], vectors: NDArray[np.float32]) -> None:
        id_array, matrix = validated_batch(ids, vectors, self._dimension)
        if id_array.size == 0:
            return
        with self._lock, self._omp_threads():
            self._index.remove_ids(id_array)
            self._index.add_with_ids(matrix, id_array)

    def delete(self, ids: Collection[int]) -> int:
        id_array = validated_ids(ids)
        if id_array.size == 0:
            return 0
        with self._lock, self._omp_threads():
            return int(self._index.remove_ids(id_array))

    def search(
        self, vector: NDArray[np.float32], k: int, *, allowed_ids: Collection[int] | None = None
    ) -> list[Hit]:
        query = validated_vectors(vector, "query vector", self._dimension, allow_single_row=True)
        if query.shape[0] != 1:
            raise ValueError(f"search takes one query vector, got {query.shape[0]}")
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        params = None
        limit = k
        if allowed_ids is not None:
            allowed = validated_ids(allowed_ids)
            limit = min(k, int(np.unique(allowed).size))
            if limit == 0:
                return []
            # IndexIDMap2 translates the selector to its internal positions, so the filter
            # applies inside the scan: k hits from the allowed ids, not k hits filtered after.
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBatch(allowed)
        with self._lock, self._omp_threads():
            # Asking FAISS for more than it holds only produces -1 padding.
            limit = min(limit, int(self._index.ntotal))
            if limit == 0:
                return []
            scores, labels = self._index.search(query, limit, params=params)
        return [
            Hit(id=int(label), score=float(score))
            for score, label in zip(scores[0], labels[0], strict=True)
            if label != -1
        ]

    def similarities(self, vector: NDArray[np.float32], ids: Collection[int]) -> dict[int, float]:
        query = validated_vectors(
            vector, "query vector", self._dimension, allow_single_row=True
        ).reshape(-1)
        found: dict[int, NDArray[np.float32]] = {}
        with self._lock:
            for chunk_id in validated_ids(ids).tolist():
                try:
                    found[chunk_id] = self._index.reconstruct(chunk_id)
                except RuntimeError:  # not in the index
                    continue
        return {chunk_id: float(np.dot(stored, query)) for chunk_id, stored in found.items()}

    def get_vectors(self, ids: Sequence[int]) -> tuple[list[int], NDArray[np.float32]]:
        found: list[int] = []
        rows: list[NDArray[np.float32]] = []
        with self._lock:
            for chunk_id in validated_ids(ids).tolist():
                try:
                    rows.append(self._index.reconstruct(chunk_id))
                except RuntimeError:  # not in the index
                    continue
                found.append(chunk_id)
        matrix = np.vstack(rows) if rows else np.empty((0, self._dimension), dtype=np.float32)
        return found, matrix.astype(np.float32, copy=False)

    def count(self) -> int:
        with self._lock:
            return int(self._index.ntotal)

    def ids(self) -> set[int]:
        with self._lock:
            id_map = faiss.vector_to_array(self._index.id_map)
        return {int(i) for i in id_map}

    def save(self) -> None:
        with self._lock:
            self._directory.mkdir(parents=True, exist_ok=True)

            def write_index(file: BinaryIO) -> None:
                faiss.write_index(self._index, PyCallbackIOWriter(file.write))

            signature = _replace_atomically(self._directory / INDEX_FILE, write_index)
            count = int(self._index.ntotal)
            meta = {"format_version": FORMAT_VERSION, "dimension": self._dimension}
            meta_bytes = json.dumps({**meta, "metric": METRIC, "count": count}).encode()
            _replace_atomically(self._directory / META_FILE, lambda file: file.write(meta_bytes))
            self._signature = signature
        logger.debug("Saved %d vectors to %s", count, self._directory)

    def drop(self) -> None:
        with self._lock:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self._dimension))
            self._signature = None

    def changed_on_disk(self) -> bool:
        """Whether ``index.faiss`` is no longer the file this store last loaded or saved."""
        return file_signature(self._directory / INDEX_FILE) != self._signature

    @contextmanager
    def _omp_threads(self) -> Iterator[None]:
        """FAISS's thread count for one call, then the caller's again.

        libgomp keeps the count per calling thread (a value set in one thread does not reach
        the server's worker threads), so it is set on every call, which is cheap. It is put
        back because torch shares it: left at 1, the next query embedding in this thread
        would run on one thread too.
        """
        if self._threads is None:
            yield
            return
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(self._threads)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(previous)


def _read_index(path: Path, dimension: int) -> Any:
    # Reading through a Python file object (not a path) keeps non-ASCII paths working everywhere.
    try:
        with path.open("rb") as file:
            index: Any = faiss.read_index(PyCallbackIOReader(file.read))
    except RuntimeError as exc:
        raise CorruptIndexError(f"cannot read FAISS index {path}: {exc}") from exc
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else None
    if not isinstance(inner, faiss.IndexFlatIP):
        raise CorruptIndexError(
            f"{path} holds a {type(index).__name__}, not an IndexIDMap2 over an IndexFlatIP"
        )
    if index.d != dimension:
        raise DimensionMismatchError(f"the index in {path}", dimension, int(index.d))
    return index


def _check_meta(path: Path) -> None:
    # The index file is the authority; meta.json only has to be a format this code understands.
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        logger.warning("Ignoring unreadable %s: %s", path, exc)
        return
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise CorruptIndexError(
            f"{path} has format version {version}; this version of kb_server reads up to "
            f"{FORMAT_VERSION}"
        )


def _replace_atomically(target: Path, write: Callable[[BinaryIO], object]) -> FileSignature:
    """Write ``target`` through ``write(binary_file)``; return the new file's signature."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        with os.fdopen(os.open(temp, flags, 0o666), "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
            # A rename keeps the inode and mtime, so this is the signature target will have.
            signature = FileSignature.of(os.fstat(file.fileno()))
        failpoint("faiss.before_rename")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return signature


def _fsync_directory(directory: Path) -> None:
    if os.name != "nt":  # Windows cannot open a directory to fsync it.
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_stale_temp_files(directory: Path) -> None:
    if not directory.is_dir():
        return
    for temp in directory.glob(f".*{TEMP_SUFFIX}"):
        try:
            if time.time() - temp.stat().st_mtime > STALE_TEMP_AGE_S:
                temp.unlink()
                logger.warning("Removed %s, left by an interrupted save", temp)
        except FileNotFoundError:
            continue
