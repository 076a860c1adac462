"""Text embedders: find the model, load it (or the fallback), one instance per process.

``embedding.backend`` picks what runs the model: torch, or an ONNX export of it (float32 or
int8) run by ONNX Runtime on the CPU, made on first use (kb_server/embedding/onnx_export.py).

>>> from kb_server.settings import load_settings
>>> embedder = get_embedder(load_settings().embedding)  # doctest: +SKIP
>>> embedder.embed_query("什么是向量检索？").shape  # doctest: +SKIP
(512,)
"""

from __future__ import annotations

from kb_server.embedding.base import Embedder
from kb_server.embedding.cache import EmbedderCache
from kb_server.embedding.onnx_embedder import OnnxEmbedder
from kb_server.embedding.resolution import (
    ResolvedModel,
    hub_access_allowed,
    resolve_model,
)
from kb_server.embedding.sentence_transformer import (
    SentenceTransformerEmbedder,
    query_instruction_for,
)
from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.settings import EmbeddingSettings

__all__ = [
    "Embedder",
    "EmbedderCache",
    "EmbeddingModelUnavailableError",
    "OnnxEmbedder",
    "ResolvedModel",
    "SentenceTransformerEmbedder",
    "get_embedder",
    "hub_access_allowed",
    "query_instruction_for",
    "resolve_model",
]

# The process-wide cache behind get_embedder; an explicit object, not a dict mutated elsewhere.
_PROCESS_EMBEDDERS = EmbedderCache()


def get_embedder(settings: EmbeddingSettings, model: str | None = None) -> Embedder:
    """The process's embedder for ``model`` (default: ``settings.model``).

    Loaded on first use, then cached; if the model cannot be found or loaded, the fallback
    model is used with one WARNING, or EmbeddingModelUnavailableError is raised when there is
    none (or it fails too). An ONNX backend that cannot serve the model (export failed, or a
    GPU device) gives way to torch, with one WARNING when it failed.
    """
    return _PROCESS_EMBEDDERS.get(settings, model)
