"""Text embedders: find the model, load it (or the fallback), one instance per process.

>>> from kb_server.settings import load_settings
>>> embedder = get_embedder(load_settings().embedding)  # doctest: +SKIP
>>> embedder.embed_query("什么是向量检索？").shape  # doctest: +SKIP
(512,)
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from kb_server.embedding.base import Embedder
from kb_server.embedding.resolution import (
    ResolvedModel,
    hub_access_allowed,
    resolve_model,
)
from kb_server.embedding.sentence_transformer import (
    LoadedModel,
    SentenceTransformerEmbedder,
    load_model,
    query_instruction_for,
    resolve_device,
)
from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.settings import EmbeddingSettings

__all__ = [
    "Embedder",
    "EmbedderCache",
    "EmbeddingModelUnavailableError",
    "ResolvedModel",
    "SentenceTransformerEmbedder",
    "get_embedder",
    "hub_access_allowed",
    "query_instruction_for",
    "resolve_model",
]

logger = logging.getLogger(__name__)

# (requested model, device, the embedding settings as JSON): everything the outcome depends on
_EmbedderKey = tuple[str, str, str]
# (real path of the weights, or the hub id; device)
_WeightsKey = tuple[str, str]


class EmbedderCache:
    """The embedders one process has loaded; each set of weights is loaded once per device.

    Thread-safe: one lock covers lookup and loading, so two threads asking for the same model
    at once load it once (the second waits, then gets the same object).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._embedders: dict[_EmbedderKey, SentenceTransformerEmbedder] = {}
        self._weights: dict[_WeightsKey, LoadedModel] = {}

    def get(self, settings: EmbeddingSettings, model: str | None = None) -> Embedder:
        """The embedder for ``model`` (default ``settings.model``), falling back if need be."""
        requested = model or settings.model
        device = resolve_device(settings.device, requested)
        key = (requested, device, settings.model_dump_json())
        with self._lock:
            embedder = self._embedders.get(key)
            if embedder is None:
                embedder = self._create(requested, device, settings)
                self._embedders[key] = embedder
            return embedder

    def _create(
        self, requested: str, device: str, settings: EmbeddingSettings
    ) -> SentenceTransformerEmbedder:
        try:
            return self._embedder_for(resolve_model(requested, settings), device, settings)
        except EmbeddingModelUnavailableError as error:
            problem = error
        fallback = settings.fallback_model
        if fallback is None or fallback == requested:
            raise problem
        try:
            embedder = self._embedder_for(resolve_model(fallback, settings), device, settings)
        except EmbeddingModelUnavailableError as fallback_error:
            raise EmbeddingModelUnavailableError(
                requested,
                f"{problem.reason} The fallback model {fallback!r} is unavailable too: "
                f"{fallback_error.reason}",
            ) from fallback_error
        logger.warning(
            "EMBEDDING FALLBACK: the configured model %r is unavailable, so the fallback model "
            "%r (%s: %s) is used instead; retrieval quality will be much lower, and its vectors "
            "go to separate indexes. Reason: %s",
            requested,
            fallback,
            embedder.source.source,
            embedder.source.location,
            problem.reason,
        )
        return embedder

    def _embedder_for(
        self, resolved: ResolvedModel, device: str, settings: EmbeddingSettings
    ) -> SentenceTransformerEmbedder:
        return SentenceTransformerEmbedder(
            self._weights_for(resolved, device, settings),
            name=resolved.name,
            query_instruction=query_instruction_for(resolved.name, settings),
            batch_size=settings.batch_size,
        )

    def _weights_for(
        self, resolved: ResolvedModel, device: str, settings: EmbeddingSettings
    ) -> LoadedModel:
        key = (_weights_location(resolved), device)
        loaded = self._weights.get(key)
        if loaded is None:
            loaded = load_model(resolved, device, settings)
            self._weights[key] = loaded
        else:
            logger.debug("Embedding model %s shares the weights loaded for %s", resolved, key)
        return loaded


def _weights_location(resolved: ResolvedModel) -> str:
    if not resolved.is_local:
        return resolved.location
    # The same folder reached through a symlink or another name is the same weights.
    return str(Path(resolved.location).resolve())


# The process-wide cache behind get_embedder; an explicit object, not a dict mutated elsewhere.
_PROCESS_EMBEDDERS = EmbedderCache()


def get_embedder(settings: EmbeddingSettings, model: str | None = None) -> Embedder:
    """The process's embedder for ``model`` (default: ``settings.model``).

    Loaded on first use, then cached; if the model cannot be found or loaded, the fallback
    model is used with one WARNING, or EmbeddingModelUnavailableError is raised when there is
    none (or it fails too).
    """
    return _PROCESS_EMBEDDERS.get(settings, model)
