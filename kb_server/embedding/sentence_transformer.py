"""Loading a sentence-transformers model and using it as an :class:`Embedder`."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError

from kb_server.devices import torch_device
from kb_server.embedding.base import NamedEmbedder
from kb_server.embedding.resolution import ResolvedModel, how_to_provide, model_short_name
from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.settings import EmbeddingSettings

logger = logging.getLogger(__name__)

BGE_ZH_QUERY_INSTRUCTION: Final = "为这个句子生成表示以用于检索相关文章："
BGE_EN_QUERY_INSTRUCTION: Final = "Represent this sentence for searching relevant passages: "

# Model families whose queries need a prefix, matched against the last part of the model name;
# the first match wins, no match means no prefix.
QUERY_INSTRUCTIONS: Final = (
    # BAAI's "noinstruct" variants were trained to be used without a prefix.
    (re.compile(r"bge-.*noinstruct", re.IGNORECASE), ""),
    (re.compile(r"bge-[a-z0-9]+-zh", re.IGNORECASE), BGE_ZH_QUERY_INSTRUCTION),
    (re.compile(r"bge-[a-z0-9]+-en(-v1\.5)?$", re.IGNORECASE), BGE_EN_QUERY_INSTRUCTION),
)

# What a model that cannot be loaded raises (files missing or corrupt, unknown architecture,
# hub errors, which are OSErrors); anything else is a bug and propagates.
_LOAD_ERRORS: Final = (OSError, ValueError, RuntimeError, ImportError, SafetensorError)


def query_instruction_for(name: str, settings: EmbeddingSettings) -> str:
    """The prefix for queries to ``name``: the configured override, else the family default."""
    options = settings.models.get(name)
    if options is not None and options.query_instruction is not None:
        return options.query_instruction
    short_name = model_short_name(name)
    for pattern, instruction in QUERY_INSTRUCTIONS:
        if pattern.match(short_name):
            return instruction
    return ""


def resolve_device(requested: str, model: str) -> str:
    try:
        return torch_device(requested)
    except ValueError as exc:
        raise EmbeddingModelUnavailableError(
            model, f"embedding.device: {exc}; set it to auto or cpu"
        ) from None


@dataclass(frozen=True)
class LoadedModel:
    """One set of model weights on one device, shared by every embedder that uses them."""

    resolved: ResolvedModel
    device: str
    dimension: int
    # sentence_transformers.SentenceTransformer; the library ships no type information.
    model: Any
    # Hugging Face fast tokenizers fail ("Already borrowed") when two threads use one at once.
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)


def load_model(resolved: ResolvedModel, device: str, settings: EmbeddingSettings) -> LoadedModel:
    """Load the weights; a model that cannot be loaded raises EmbeddingModelUnavailableError.

    ``settings.cpu_threads`` applies on CPU; ``settings.model_root`` shapes the how-to hint.

    A hub download (source "hub") cannot hang: every request huggingface_hub makes gives up
    after HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT seconds (10 by default).
    """
    started = time.perf_counter()
    from sentence_transformers import SentenceTransformer  # heavy: imported on first load

    if device == "cpu":
        _apply_cpu_threads(settings.cpu_threads)
    try:
        model = SentenceTransformer(
            resolved.location, device=device, local_files_only=resolved.is_local
        )
        dimension = _embedding_dimension(model)
    except _LOAD_ERRORS as error:
        raise EmbeddingModelUnavailableError(
            resolved.name,
            f"loading it from {resolved.location} ({resolved.source}) failed: {error}. "
            f"{how_to_provide(resolved.name, settings)}",
        ) from error
    logger.info(
        "Loaded embedding model %s from %s %s on %s: dimension %d, %.1f s",
        resolved.name,
        resolved.source,
        resolved.location,
        device,
        dimension,
        time.perf_counter() - started,
    )
    return LoadedModel(resolved=resolved, device=device, dimension=dimension, model=model)


class SentenceTransformerEmbedder(NamedEmbedder):
    """An :class:`~kb_server.embedding.base.Embedder` over loaded sentence-transformers weights.

    Several embedders may share one :class:`LoadedModel` (same weights reached under two names,
    or two query instructions); build them through :func:`kb_server.embedding.get_embedder`.
    """

    def __init__(
        self, loaded: LoadedModel, *, name: str, query_instruction: str, batch_size: int
    ) -> None:
        super().__init__(name=name, query_instruction=query_instruction)
        self._batch_size = batch_size
        self._loaded = loaded

    @property
    def dimension(self) -> int:
        return self._loaded.dimension

    @property
    def source(self) -> ResolvedModel:
        """Where the loaded weights came from."""
        return self._loaded.resolved

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        with self._loaded.lock:
            vectors = self._loaded.model.encode(
                texts,
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self._name!r}, source={self._loaded.resolved})"


def _apply_cpu_threads(count: int) -> None:
    import torch

    # torch's thread count is process-wide: it applies to every torch model in this process.
    if count > 0 and torch.get_num_threads() != count:
        torch.set_num_threads(count)
        logger.info("torch CPU threads set to %d (process-wide)", count)


def _embedding_dimension(model: Any) -> int:
    # sentence-transformers 6 renamed get_sentence_embedding_dimension (the old name warns).
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:
        getter = model.get_sentence_embedding_dimension
    dimension = getter()
    if dimension is None:
        # Some custom pipelines cannot tell without running; one probe text settles it.
        dimension = len(model.encode(["dimension probe"], convert_to_numpy=True)[0])
    return int(dimension)
