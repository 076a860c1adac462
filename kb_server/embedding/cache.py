"""The embedders one process has loaded: backend choice, fallbacks, one copy of each model."""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

from kb_server.embedding.base import Embedder
from kb_server.embedding.export_manifest import OnnxBackendError, OnnxExport
from kb_server.embedding.onnx_embedder import (
    OnnxEmbedder,
    OnnxModel,
    load_onnx_model,
    parallel_runs,
)
from kb_server.embedding.onnx_export import ensure_export
from kb_server.embedding.resolution import ResolvedModel, resolve_model, weights_location
from kb_server.embedding.sentence_transformer import (
    LoadedModel,
    SentenceTransformerEmbedder,
    load_model,
    query_instruction_for,
    resolve_device,
)
from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.settings import EmbeddingSettings

logger = logging.getLogger(__name__)

# (requested model, device, the embedding settings as JSON but export_dir): what the outcome
# depends on
_EmbedderKey = tuple[str, str, str]
# (real path of the weights, or the hub id; device)
_WeightsKey = tuple[str, str]
# (real path of the weights, or the hub id; ONNX variant asked for): ONNX runs on the CPU only
_OnnxKey = tuple[str, str]
# An ONNX key and the export folder that failed for it
_OnnxFailureKey = tuple[str, str, str]


class EmbedderCache:
    """The embedders one process has loaded; each model is loaded once per backend and device.

    Thread-safe: one lock covers lookup and loading, so two threads asking for the same model
    at once load it once (the second waits, then gets the same object).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._embedders: dict[_EmbedderKey, Embedder] = {}
        self._weights: dict[_WeightsKey, LoadedModel] = {}
        self._onnx_models: dict[_OnnxKey, OnnxModel] = {}
        self._onnx_failures: set[_OnnxFailureKey] = set()
        self._temporary_export_dir: tempfile.TemporaryDirectory[str] | None = None

    def get(self, settings: EmbeddingSettings, model: str | None = None) -> Embedder:
        """The embedder for ``model`` (default ``settings.model``), falling back if need be."""
        requested = model or settings.model
        device = resolve_device(settings.device, requested)
        # The export folder is only where ONNX files are kept: it changes no vector.
        key = (requested, device, settings.model_dump_json(exclude={"export_dir"}))
        with self._lock:
            embedder = self._embedders.get(key)
            if embedder is None:
                embedder = self._create(requested, device, settings)
                self._embedders[key] = embedder
            return embedder

    def _create(self, requested: str, device: str, settings: EmbeddingSettings) -> Embedder:
        try:
            return self._embedder_for(resolve_model(requested, settings), device, settings)
        except EmbeddingModelUnavailableError as error:
            problem = error
        fallback = settings.fallback_model
        if fallback is None or fallback == requested:
            raise problem
        try:
            resolved_fallback = resolve_model(fallback, settings)
            embedder = self._embedder_for(resolved_fallback, device, settings)
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
            resolved_fallback.source,
            resolved_fallback.location,
            problem.reason,
        )
        return embedder

    def _embedder_for(
        self, resolved: ResolvedModel, device: str, settings: EmbeddingSettings
    ) -> Embedder:
        query_instruction = query_instruction_for(resolved.name, settings)
        onnx_model = self._onnx_model_for(resolved, device, settings)
        if onnx_model is not None:
            return OnnxEmbedder(
                onnx_model,
                name=resolved.name,
                source=resolved,
                query_instruction=query_instruction,
            )
        return SentenceTransformerEmbedder(
            self._weights_for(resolved, device, settings),
            name=resolved.name,
            query_instruction=query_instruction,
            batch_size=settings.batch_size,
        )

    def _onnx_model_for(
        self, resolved: ResolvedModel, device: str, settings: EmbeddingSettings
    ) -> OnnxModel | None:
        """The ONNX session for ``settings.backend``, or None when torch is to run the model."""
        variant = settings.backend
        if variant == "torch":
            return None
        if device != "cpu":
            logger.info(
                "embedding.backend %s runs on the CPU only: %s runs on torch on %s",
                variant,
                resolved.name,
                device,
            )
            return None
        key = (weights_location(resolved), variant)
        onnx_model = self._onnx_models.get(key)
        if onnx_model is not None:
            return onnx_model
        export_dir = settings.export_dir or self._temporary_export_dir_path()
        failure_key = (*key, str(export_dir))
        if failure_key in self._onnx_failures:
            return None
        try:
            export = self._export_for(resolved, export_dir, settings)
            onnx_model = load_onnx_model(
                export, variant=variant, parallel_runs=parallel_runs(settings.cpu_threads)
            )
        except OnnxBackendError as error:
            self._onnx_failures.add(failure_key)
            logger.warning(
                "ONNX FALLBACK: embedding model %s cannot run on embedding.backend %s, so it "
                "runs on torch (slower). Reason: %s",
                resolved,
                variant,
                error.reason,
            )
            return None
        self._onnx_models[key] = onnx_model
        return onnx_model

    def _export_for(
        self, resolved: ResolvedModel, export_dir: Path, settings: EmbeddingSettings
    ) -> OnnxExport:
        loaded = self._weights.get((weights_location(resolved), "cpu"))
        if not resolved.is_local:
            # A hub model is on disk once loaded (downloaded into the hub cache); it is
            # exported from there, and later runs find it there first.
            if loaded is None:
                loaded = load_model(resolved, "cpu", settings)
            try:
                resolved = resolve_model(resolved.name, settings, hub_allowed=False)
            except EmbeddingModelUnavailableError as error:
                raise OnnxBackendError(f"not found on disk after loading: {error.reason}") from None
        return ensure_export(resolved, export_dir, settings, loaded=loaded)

    def _weights_for(
        self, resolved: ResolvedModel, device: str, settings: EmbeddingSettings
    ) -> LoadedModel:
        key = (weights_location(resolved), device)
        loaded = self._weights.get(key)
        if loaded is None:
            loaded = load_model(resolved, device, settings)
            self._weights[key] = loaded
        else:
            logger.debug("Embedding model %s shares the weights loaded for %s", resolved, key)
        return loaded

    def _temporary_export_dir_path(self) -> Path:
        if self._temporary_export_dir is None:
            self._temporary_export_dir = tempfile.TemporaryDirectory(prefix="kb-model-exports-")
            logger.info(
                "embedding.export_dir is not set: ONNX exports go to %s, removed at exit",
                self._temporary_export_dir.name,
            )
        return Path(self._temporary_export_dir.name)
