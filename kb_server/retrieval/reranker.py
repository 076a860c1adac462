"""An optional cross-encoder that rescores (question, chunk) pairs after fusion.

The model is found like the embedding model (embedding.models.<name>.path,
embedding.model_root, the Hugging Face cache, a package, the hub when online), loaded once per
process, and reranking is simply off when it cannot be had: the retriever keeps the fused order.

>>> from kb_server.settings import load_settings
>>> reranker = load_reranker(load_settings())  # doctest: +SKIP
>>> passages = ["向量检索把文本变成向量。", "今天天气很好。"]
>>> reranker.score("什么是向量检索？", passages)  # doctest: +SKIP
[0.97, 0.01]
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final, Protocol

from safetensors import SafetensorError

from kb_server.devices import torch_device
from kb_server.embedding.resolution import ResolvedModel, how_to_provide, resolve_model
from kb_server.embedding.sentence_transformer import _apply_cpu_threads
from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.settings import Settings

__all__ = [
    "CrossEncoderReranker",
    "Reranker",
    "RerankerCache",
    "clear_reranker_cache",
    "load_reranker",
]

logger = logging.getLogger(__name__)

# What a model that cannot be loaded raises (files missing or corrupt, unknown architecture,
# hub errors, which are OSErrors); anything else is a bug and propagates.
_LOAD_ERRORS: Final = (OSError, ValueError, RuntimeError, ImportError, SafetensorError)
# Distinct reranker configurations one process keeps loaded; the oldest is dropped beyond this.
_MAX_CACHED_RERANKERS: Final = 4

# (requested model, the reranker and the embedding settings as JSON): all the outcome depends on
_RerankerKey = tuple[str, str, str]


class Reranker(Protocol):
    """Scores how relevant each text is to a query, looking at both together."""

    @property
    def name(self) -> str: ...

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """Relevance of each text to the query in [0, 1] (higher = more relevant).

        One score per text, in the order of ``texts``; no texts give no scores.
        """
        ...


class _ModelUnavailable(Exception):
    """Internal: why the reranker model cannot be used; becomes one log line, never raised out."""


class CrossEncoderReranker:
    """A :class:`Reranker` over a loaded ``sentence_transformers.CrossEncoder`` with one output.

    Build it through :func:`load_reranker`, which loads each configuration once per process.
    """

    def __init__(self, model: Any, *, name: str, source: ResolvedModel, batch_size: int) -> None:
        import torch

        # sentence_transformers.CrossEncoder; the library ships no type information.
        self._model = model
        self._name = name
        self._source = source
        self._batch_size = batch_size
        # Passed on every call: a model's saved configuration may name another activation
        # (often Identity, giving raw logits), and scores must be probabilities.
        self._sigmoid = torch.nn.Sigmoid()
        # Hugging Face fast tokenizers fail ("Already borrowed") when two threads use one at once.
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def source(self) -> ResolvedModel:
        """Where the loaded weights came from."""
        return self._source

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """Sigmoid of the cross-encoder's logit for each (query, text) pair, in input order."""
        if isinstance(texts, str):
            raise TypeError("score takes a sequence of texts, not one string")
        if not texts:
            return []
        pairs = [(query, text) for text in texts]
        with self._lock:
            scores = self._model.predict(
                pairs,
                batch_size=self._batch_size,
                activation_fn=self._sigmoid,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [float(value) for value in scores]

    def __repr__(self) -> str:
        return f"CrossEncoderReranker(name={self._name!r}, source={self._source})"


class RerankerCache:
    """The rerankers one process has loaded, and the models it has reported unavailable.

    Thread-safe: one lock covers lookup and loading, so two threads asking for the same model
    at once load it once. An unavailable model is remembered as None (not looked for again)
    and reported once per model name.
    """

    def __init__(self, max_entries: int = _MAX_CACHED_RERANKERS) -> None:
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._rerankers: OrderedDict[_RerankerKey, CrossEncoderReranker | None] = OrderedDict()
        self._reported_unavailable: set[str] = set()

    def get(self, settings: Settings) -> Reranker | None:
        """The reranker that ``settings`` configure, or None when there is none to be had."""
        options = settings.retrieval.reranker
        if options.model is None:
            return None
        key = (
            options.model,
            options.model_dump_json(),
            settings.embedding.model_dump_json(),
        )
        with self._lock:
            if key in self._rerankers:
                self._rerankers.move_to_end(key)
                return self._rerankers[key]
            reranker = self._create(options.model, settings)
            self._rerankers[key] = reranker
            if len(self._rerankers) > self._max_entries:
                self._rerankers.popitem(last=False)
            return reranker

    def clear(self) -> None:
        """Forget every loaded reranker and every model reported unavailable."""
        with self._lock:
            self._rerankers.clear()
            self._reported_unavailable.clear()

    def _create(self, name: str, settings: Settings) -> CrossEncoderReranker | None:
        try:
            return _load(name, settings)
        except _ModelUnavailable as problem:
            if name not in self._reported_unavailable:
                self._reported_unavailable.add(name)
                logger.warning(
                    "RERANKING OFF: the reranker model %r is unavailable, so results keep "
                    "their fused order. %s",
                    name,
                    problem,
                )
            return None


def _load(name: str, settings: Settings) -> CrossEncoderReranker:
    options = settings.retrieval.reranker
    try:
        resolved = resolve_model(name, settings.embedding)
    except EmbeddingModelUnavailableError as error:
        # The reason already says where it looked and how to provide the model.
        raise _ModelUnavailable(error.reason) from error
    try:
        device = torch_device(options.device)
    except ValueError as error:
        raise _ModelUnavailable(
            f"retrieval.reranker.device: {error}; set it to auto or cpu"
        ) from None
    started = time.perf_counter()
    from sentence_transformers import CrossEncoder  # heavy: imported on first load

    if device == "cpu":
        _apply_cpu_threads(settings.embedding.cpu_threads)
    try:
        model = CrossEncoder(resolved.location, device=device, local_files_only=resolved.is_local)
    except _LOAD_ERRORS as error:
        raise _ModelUnavailable(
            f"loading it from {resolved.location} ({resolved.source}) failed: "
            f"{str(error).rstrip('.')}. "
            f"{how_to_provide(name, settings.embedding)}"
        ) from error
    if model.num_labels != 1:
        raise _ModelUnavailable(
            f"{resolved.location} has {model.num_labels} output labels; a reranker must give "
            f"one relevance score per pair. {how_to_provide(name, settings.embedding)}"
        )
    # Never longer than the model's own limit (its positions), never longer than configured.
    own_limit = model.max_seq_length
    model.max_seq_length = (
        options.max_length if own_limit is None else min(own_limit, options.max_length)
    )
    logger.info(
        "Loaded reranker model %s from %s %s on %s: max %d tokens, %.1f s",
        name,
        resolved.source,
        resolved.location,
        device,
        model.max_seq_length,
        time.perf_counter() - started,
    )
    return CrossEncoderReranker(model, name=name, source=resolved, batch_size=options.batch_size)


# The process-wide cache behind load_reranker; an explicit object, not a dict mutated elsewhere.
_PROCESS_RERANKERS = RerankerCache()


def load_reranker(settings: Settings) -> Reranker | None:
    """The configured reranker, loaded on first use and then cached for the process.

    None when ``retrieval.reranker.model`` is null, or when the model cannot be found or
    loaded (offline and not on disk, corrupt, not a single-score cross-encoder, a device torch
    cannot use): then one WARNING per model name says reranking is off and how to provide the
    model. Never raises for an unavailable model. ``retrieval.rerank`` is not consulted here:
    requests may turn reranking on even where the settings turn it off.
    """
    return _PROCESS_RERANKERS.get(settings)


def clear_reranker_cache() -> None:
    """Forget the process's loaded rerankers and unavailability reports (for tests)."""
    _PROCESS_RERANKERS.clear()
