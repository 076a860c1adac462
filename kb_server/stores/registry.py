"""The table of vector store types; a knowledge base records which one it uses (``vs_type``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from kb_server.settings import VectorStoreSettings
from kb_server.stores.base import VectorStore
from kb_server.stores.faiss_store import FaissStore
from kb_server.stores.keyword import KeywordIndex
from kb_server.stores.tantivy_keyword import TantivyKeywordIndex


class VectorStoreType(Protocol):
    """What a registry entry provides: a way to open (or start) one store."""

    def open(
        self, directory: Path, dimension: int, settings: VectorStoreSettings | None = None
    ) -> VectorStore: ...


class KeywordIndexType(Protocol):
    def open(self, directory: Path) -> KeywordIndex: ...


VECTOR_STORES: Mapping[str, VectorStoreType] = MappingProxyType({"faiss": FaissStore})
# The keyword index that goes with each vector store type (FAISS: tantivy files next to it).
KEYWORD_INDEXES: Mapping[str, KeywordIndexType] = MappingProxyType({"faiss": TantivyKeywordIndex})


def open_vector_store(
    vs_type: str,
    directory: Path,
    dimension: int,
    settings: VectorStoreSettings | None = None,
) -> VectorStore:
    """Open the ``vs_type`` store kept in ``directory``; an empty one if nothing is saved."""
    store_type = VECTOR_STORES.get(vs_type)
    if store_type is None:
        known = ", ".join(sorted(VECTOR_STORES))
        raise ValueError(f"Unknown vector store type {vs_type!r}; known types: {known}")
    return store_type.open(directory, dimension, settings)


def open_keyword_index(vs_type: str, directory: Path) -> KeywordIndex:
    """Open the keyword index of a ``vs_type`` knowledge base kept in ``directory``."""
    index_type = KEYWORD_INDEXES.get(vs_type)
    if index_type is None:
        known = ", ".join(sorted(KEYWORD_INDEXES))
        raise ValueError(f"No keyword index for store type {vs_type!r}; known types: {known}")
    return index_type.open(directory)
