"""The table of vector store types; a knowledge base records which one it uses (``vs_type``).

Each type comes with its keyword index: FAISS with tantivy files next to it, pgvector with
tables in the same PostgreSQL database, so a ``pg`` knowledge base needs no local files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from kb_server.errors import InvalidInputError, KbError
from kb_server.settings import Settings
from kb_server.stores.base import VectorLocation, VectorStore
from kb_server.stores.faiss_store import FaissStore
from kb_server.stores.keyword import KeywordIndex, KeywordLocation
from kb_server.stores.tantivy_keyword import TantivyKeywordIndex


class StoreTypeUnavailableError(InvalidInputError):
    code = "vector_store_unavailable"


VectorStoreOpener = Callable[[VectorLocation, Settings], VectorStore]
KeywordIndexOpener = Callable[[KeywordLocation, Settings], KeywordIndex]


def _open_faiss(location: VectorLocation, settings: Settings) -> VectorStore:
    return FaissStore.open(location.directory, location.dimension, settings.vector_store)


def _open_tantivy(location: KeywordLocation, _settings: Settings) -> KeywordIndex:
    return TantivyKeywordIndex.open(location.directory)


def _open_pg_vectors(location: VectorLocation, settings: Settings) -> VectorStore:
    # Imported when used: psycopg and pgvector are the optional "pg" extra.
    from kb_server.stores.pg_vector import PgVectorStore

    return PgVectorStore.open(location, settings)


def _open_pg_keywords(location: KeywordLocation, settings: Settings) -> KeywordIndex:
    from kb_server.stores.pg_keyword import PgKeywordIndex

    return PgKeywordIndex.open(location, settings)


VECTOR_STORES: Mapping[str, VectorStoreOpener] = MappingProxyType(
    {"faiss": _open_faiss, "pg": _open_pg_vectors}
)
KEYWORD_INDEXES: Mapping[str, KeywordIndexOpener] = MappingProxyType(
    {"faiss": _open_tantivy, "pg": _open_pg_keywords}
)


def check_store_type(vs_type: str, settings: Settings) -> None:
    """Raise StoreTypeUnavailableError when knowledge bases of ``vs_type`` cannot be served
    with these settings (before one is created, not at its first upload)."""
    if vs_type not in VECTOR_STORES:
        known = ", ".join(sorted(VECTOR_STORES))
        raise StoreTypeUnavailableError(f"unknown vector store type {vs_type!r}; known: {known}")
    if vs_type != "pg":
        return
    try:
        from kb_server.stores.pg_engine import pg_store_url
    except ImportError as exc:
        raise StoreTypeUnavailableError(
            f"vs_type 'pg' needs the PostgreSQL drivers ({exc.name} is missing): "
            "pip install -e '.[pg]'"
        ) from exc
    try:
        pg_store_url(settings)
    except KbError as exc:
        raise StoreTypeUnavailableError(exc.message) from exc


def open_vector_store(vs_type: str, location: VectorLocation, settings: Settings) -> VectorStore:
    """Open the ``vs_type`` store of ``location``; an empty one if nothing is saved."""
    opener = VECTOR_STORES.get(vs_type)
    if opener is None:
        known = ", ".join(sorted(VECTOR_STORES))
        raise ValueError(f"Unknown vector store type {vs_type!r}; known types: {known}")
    return opener(location, settings)


def open_keyword_index(vs_type: str, location: KeywordLocation, settings: Settings) -> KeywordIndex:
    """Open the keyword index that goes with a ``vs_type`` knowledge base."""
    opener = KEYWORD_INDEXES.get(vs_type)
    if opener is None:
        known = ", ".join(sorted(KEYWORD_INDEXES))
        raise ValueError(f"No keyword index for store type {vs_type!r}; known types: {known}")
    return opener(location, settings)
