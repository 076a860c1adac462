"""Running an ONNX export with ONNX Runtime on the CPU, and using it as an :class:`Embedder`.

Nothing here imports torch or sentence-transformers: a process whose export exists loads
only ONNX Runtime, the tokenizers library and the exported files (transformers, and so torch,
only for a tokenizer the tokenizers library could not reproduce at export).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from kb_server.embedding.base import NamedEmbedder
from kb_server.embedding.export_manifest import (
    OUTPUT_NAME,
    OnnxBackendError,
    OnnxExport,
    TokenizerSpec,
)
from kb_server.embedding.onnx_tokenizer import TextTokenizer, load_tokenizer
from kb_server.embedding.probes import MIN_INT8_COSINE
from kb_server.embedding.resolution import ResolvedModel
from kb_server.onnx_sessions import cpu_session

logger = logging.getLogger(__name__)

OnnxVariant = Literal["onnx", "onnx-int8"]


def parallel_runs(cpu_threads: int) -> int:
    """``embedding.cpu_threads`` when set, else every core this process may run on."""
    if cpu_threads > 0:
        return cpu_threads
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class OnnxModel:
    """One ONNX Runtime session and its tokenizer, shared by every embedder that uses them.

    The session computes on the thread that calls it (one intra-op thread); a call with many
    texts spreads its runs over ``parallel_runs`` threads, each taking the next run when its
    last is done. Runs share no barrier, so a core taken for a while by other work (OCR in an
    ingest's reader thread) delays only the run on it, where a session's own thread pool would
    wait at every operator for its slowest thread. Concurrent requests likewise each compute
    on their own thread.
    """

    variant: OnnxVariant
    model_file: Path
    dimension: int
    # onnxruntime.InferenceSession; the library ships no type information.
    session: Any
    tokenizer: TextTokenizer
    input_names: tuple[str, ...]
    parallel_runs: int = 1
    # Hugging Face fast tokenizers fail ("Already borrowed") when two threads use one at once.
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """L2-normalized float32 vectors, one row per text, in the order given.

        Each text runs alone. int8 activations are quantized with one scale per input tensor,
        so in a batch a text's vector would depend on its neighbours (and their padding); and
        on a CPU batches were slower anyway (float, 1,911 corpus chunks on 2 cores: 48 s one
        text a run, 53 s four, 66 s thirty-two: the larger activations fall out of the cache).
        """
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)

        def run(index: int) -> None:
            with self.lock:
                features = self.tokenizer.encode([texts[index]])
            feed = {name: features[name] for name in self.input_names}
            (outputs,) = self.session.run([OUTPUT_NAME], feed)
            vectors[index] = outputs[0]

        # Longest first, so that the last runs, which may leave a thread idle, are short.
        order = sorted(range(len(texts)), key=lambda index: -len(texts[index]))
        workers = min(self.parallel_runs, len(order))
        if workers <= 1:
            for index in order:
                run(index)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="onnx-embed") as pool:
                # list() re-raises the first failure of a run here.
                list(pool.map(run, order))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalized: NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalized


def open_onnx_model(
    model_file: Path,
    tokenizer_folder: Path,
    tokenizer_spec: TokenizerSpec,
    *,
    dimension: int,
    variant: OnnxVariant,
    parallel_runs: int,
) -> OnnxModel:
    """A one-thread ONNX Runtime CPU session over ``model_file`` whose embed calls spread their
    runs over ``parallel_runs`` threads; OnnxBackendError when it cannot run."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise OnnxBackendError(f"onnxruntime is not installed ({error})") from error
    try:
        session = cpu_session(model_file, threads=1)
        tokenizer = load_tokenizer(tokenizer_folder, tokenizer_spec)
    # ONNX Runtime's errors derive from Exception alone, and a tokenizer file can fail to
    # parse in several ways; each means the same thing here: this export cannot run.
    except Exception as error:
        raise OnnxBackendError(f"cannot open {model_file}: {error}") from error
    input_names = tuple(node.name for node in session.get_inputs())
    unknown = set(input_names) - {"input_ids", "attention_mask", "token_type_ids"}
    if unknown:
        raise OnnxBackendError(f"{model_file} expects unsupported inputs {sorted(unknown)}")
    return OnnxModel(
        variant=variant,
        model_file=model_file,
        dimension=dimension,
        session=session,
        tokenizer=tokenizer,
        input_names=input_names,
        parallel_runs=parallel_runs,
    )


def load_onnx_model(export: OnnxExport, *, variant: OnnxVariant, parallel_runs: int) -> OnnxModel:
    """The export's int8 model when asked for and accepted at export, else its float model."""
    started = time.perf_counter()
    manifest = export.manifest
    if variant == "onnx-int8" and not manifest.int8_accepted:
        logger.warning(
            "ONNX INT8 REJECTED: int8 %s disagrees with its float model on the probe texts "
            "(%s; needed a min cosine >= %.2f and no nearest neighbour changed), so the "
            "float32 ONNX model is used. Export: %s",
            manifest.model,
            manifest.int8_check.describe(),
            MIN_INT8_COSINE,
            export.folder,
        )
        variant = "onnx"
    model_file = export.int8_model if variant == "onnx-int8" else export.float_model
    model = open_onnx_model(
        model_file,
        export.folder,
        manifest.tokenizer,
        dimension=manifest.dimension,
        variant=variant,
        parallel_runs=parallel_runs,
    )
    logger.info(
        "Loaded embedding model %s as %s from %s: dimension %d, %d texts at once, %.1f s",
        manifest.model,
        variant,
        model_file,
        manifest.dimension,
        parallel_runs,
        time.perf_counter() - started,
    )
    return model


class OnnxEmbedder(NamedEmbedder):
    """An :class:`~kb_server.embedding.base.Embedder` over an ONNX export (CPU).

    Several embedders may share one :class:`OnnxModel`; build them through
    :func:`kb_server.embedding.get_embedder`.
    """

    def __init__(
        self,
        model: OnnxModel,
        *,
        name: str,
        source: ResolvedModel,
        query_instruction: str,
    ) -> None:
        super().__init__(name=name, query_instruction=query_instruction)
        self._model = model
        self._source = source

    @property
    def dimension(self) -> int:
        return self._model.dimension

    @property
    def source(self) -> ResolvedModel:
        """Where the exported weights came from."""
        return self._source

    @property
    def backend(self) -> OnnxVariant:
        """What runs: "onnx-int8", or "onnx" (asked for, or int8 rejected at export)."""
        return self._model.variant

    def _embed(self, texts: list[str]) -> NDArray[np.float32]:
        return self._model.embed(texts)

    def __repr__(self) -> str:
        return (
            f"OnnxEmbedder(name={self._name!r}, backend={self.backend!r}, "
            f"file={self._model.model_file})"
        )
