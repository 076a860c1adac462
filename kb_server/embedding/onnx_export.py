"""Exporting a sentence-transformers model to ONNX (float32 and int8), once per fingerprint.

The graph is the whole SentenceTransformer (transformer, pooling, Dense, Normalize), traced
with torch.onnx; for BERT-family encoders (BERT, RoBERTa, XLM-R: MiniLM, BGE) ONNX Runtime's
transformer optimizer then fuses attention, embedding and layer norms, bias + GELU into its
own operators. The int8 file is ONNX Runtime's dynamic quantization of the projections that
the probes show to be safe for the model (kb_server/embedding/int8_selection.py). An export
is made once per folder (kb_server/model_exports.py: built aside, renamed into place under a
file lock).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import numpy as np
from filelock import Timeout
from numpy.typing import NDArray

from kb_server.embedding.export_manifest import (
    EXPORT_FORMAT_VERSION,
    FLOAT_MODEL_FILE,
    INT8_MODEL_FILE,
    MANIFEST_FILE,
    OUTPUT_NAME,
    ExportManifest,
    OnnxBackendError,
    OnnxExport,
    export_folder,
    package_versions,
    read_export,
)
from kb_server.embedding.int8_selection import write_int8_model
from kb_server.embedding.library_logs import quiet_logs_from
from kb_server.embedding.onnx_embedder import OnnxVariant, open_onnx_model, parallel_runs
from kb_server.embedding.onnx_tokenizer import tokenizer_spec_for
from kb_server.embedding.probes import (
    MIN_FLOAT_COSINE,
    MIN_INT8_COSINE,
    PROBE_TEXTS,
    compare_embeddings,
)
from kb_server.embedding.resolution import ResolvedModel
from kb_server.embedding.sentence_transformer import LoadedModel, load_model
from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.model_exports import build_once
from kb_server.settings import EmbeddingSettings

logger = logging.getLogger(__name__)

# Another process exporting the same model holds the lock this long at most (a large model
# takes a minute or two); after that the caller gives up and uses torch.
EXPORT_LOCK_TIMEOUT_S: Final = 600.0
_ONNX_OPSET: Final = 17
# The inputs a text encoder's tokenizer may produce, in the order the graph takes them.
_INPUT_CANDIDATES: Final = ("input_ids", "attention_mask", "token_type_ids")
_TRACE_TEXTS: Final = ["hello world", "知识库问答系统是什么？"]
# transformers config model_type values whose graphs ONNX Runtime's "bert" optimizer fuses.
_FUSABLE_MODEL_TYPES: Final = frozenset({"bert", "roberta", "xlm-roberta"})


def ensure_export(
    resolved: ResolvedModel,
    export_dir: Path,
    settings: EmbeddingSettings,
    *,
    loaded: LoadedModel | None = None,
) -> OnnxExport:
    """The export of ``resolved`` in ``export_dir``, made now if there is none yet.

    ``loaded``: the model's torch weights when this process has them on the CPU already.
    Raises OnnxBackendError when the model cannot be exported (the torch backend still
    works), EmbeddingModelUnavailableError when it cannot even be loaded.
    """
    if not resolved.is_local:
        raise OnnxBackendError(f"{resolved} is not on disk yet; it is exported once it is")
    folder = export_folder(resolved, export_dir)

    def write(staging: Path) -> OnnxExport:
        fingerprint = folder.name.rsplit("-", 1)[-1]
        manifest = _write_export(staging, resolved, fingerprint, settings, loaded)
        logger.info(
            "Exported embedding model %s to ONNX in %s (%.1f s). float32 vs torch: %s. int8 "
            "vs float32: %s: %s",
            resolved.name,
            folder,
            manifest.export_seconds,
            manifest.float_check.describe(),
            "accepted" if manifest.int8_accepted else "REJECTED",
            manifest.int8_check.describe(),
        )
        return OnnxExport(folder=folder, manifest=manifest)

    try:
        return build_once(folder, read_export, write, lock_timeout_s=EXPORT_LOCK_TIMEOUT_S)
    except Timeout as error:
        raise OnnxBackendError(
            f"another process held the export lock {error.lock_file} for over "
            f"{EXPORT_LOCK_TIMEOUT_S:.0f} s"
        ) from error
    except OSError as error:
        raise OnnxBackendError(f"cannot write the export under {export_dir}: {error}") from error


def _write_export(
    staging: Path,
    resolved: ResolvedModel,
    fingerprint: str,
    settings: EmbeddingSettings,
    loaded: LoadedModel | None,
) -> ExportManifest:
    started = time.perf_counter()
    if loaded is None or loaded.device != "cpu":
        loaded = load_model(resolved, "cpu", settings)
    try:
        # The weights may be shared with a torch embedder that other threads are using.
        with loaded.lock:
            return _write_files(staging, resolved, fingerprint, settings, loaded, started)
    except (OnnxBackendError, EmbeddingModelUnavailableError):
        raise
    # The exporter meets whatever a model's code does (custom modules, control flow, ops with
    # no ONNX form) and fails in as many ways; every one means "use torch", which still works.
    except Exception as error:
        raise OnnxBackendError(f"{type(error).__name__}: {error}") from error


def _write_files(
    staging: Path,
    resolved: ResolvedModel,
    fingerprint: str,
    settings: EmbeddingSettings,
    loaded: LoadedModel,
    started: float,
) -> ExportManifest:
    model = loaded.model
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or not callable(tokenizer):
        raise OnnxBackendError("the model has no text tokenizer (not a text encoder)")
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise OnnxBackendError("the model's tokenizer has no padding token")
    max_length = int(model.max_seq_length or tokenizer.model_max_length)
    sample = tokenizer(
        _TRACE_TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    input_names = [name for name in _INPUT_CANDIDATES if name in sample]
    if input_names[:2] != ["input_ids", "attention_mask"]:
        raise OnnxBackendError(f"the tokenizer gives {sorted(sample)}, not input ids and a mask")
    with _eager_attention(model):
        _export_graph(model, [sample[name] for name in input_names], input_names, staging)
    fused_operators = _fuse_transformer_operators(staging / FLOAT_MODEL_FILE, model)
    tokenizer.save_pretrained(str(staging))
    tokenizer_spec = tokenizer_spec_for(tokenizer, staging, input_names, max_length)
    runs_at_once = parallel_runs(settings.cpu_threads)

    def embed_probes(model_file: Path) -> NDArray[np.float32]:
        variant: OnnxVariant = "onnx" if model_file.name == FLOAT_MODEL_FILE else "onnx-int8"
        onnx_model = open_onnx_model(
            model_file,
            staging,
            tokenizer_spec,
            dimension=loaded.dimension,
            variant=variant,
            parallel_runs=runs_at_once,
        )
        return onnx_model.embed(PROBE_TEXTS)

    reference = np.asarray(
        model.encode(
            list(PROBE_TEXTS),
            batch_size=8,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ),
        dtype=np.float32,
    )
    float_probes = embed_probes(staging / FLOAT_MODEL_FILE)
    float_check = compare_embeddings(reference, float_probes)
    if not float_check.accepted(MIN_FLOAT_COSINE):
        raise OnnxBackendError(
            f"the float32 ONNX graph does not reproduce the torch model ({float_check.describe()})"
        )
    selection = write_int8_model(
        staging / FLOAT_MODEL_FILE,
        staging / INT8_MODEL_FILE,
        float_probes,
        embed_probes,
        budget_s=settings.int8_search_seconds,
    )
    int8_check = compare_embeddings(float_probes, embed_probes(staging / INT8_MODEL_FILE))
    manifest = ExportManifest(
        format_version=EXPORT_FORMAT_VERSION,
        fingerprint=fingerprint,
        model=resolved.name,
        source=resolved.source,
        location=resolved.location,
        dimension=loaded.dimension,
        max_seq_length=max_length,
        input_names=input_names,
        output_name=OUTPUT_NAME,
        tokenizer=tokenizer_spec,
        versions=package_versions(),
        export_seconds=round(time.perf_counter() - started, 2),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        float_check=float_check,
        int8_check=int8_check,
        int8_accepted=int8_check.accepted(MIN_INT8_COSINE),
        fused_operators=fused_operators,
        int8_kept_float=selection.kept_float + selection.untried,
        int8_row_scaled=selection.row_scaled,
    )
    (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest


def _export_graph(model: Any, inputs: list[Any], input_names: list[str], staging: Path) -> None:
    import torch

    class SentenceEmbeddingGraph(torch.nn.Module):
        """forward(input_ids, attention_mask[, token_type_ids]) -> sentence_embedding."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            features = dict(zip(input_names, tensors, strict=True))
            embedding: torch.Tensor = self.model(features)[OUTPUT_NAME]
            return embedding

    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    dynamic_axes[OUTPUT_NAME] = {0: "batch"}
    # Tracing warns about every Python branch on tensor shapes; the float check below is what
    # tells whether the traced graph is right.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SentenceEmbeddingGraph().eval(),
            tuple(inputs),
            str(staging / FLOAT_MODEL_FILE),
            dynamo=False,
            opset_version=_ONNX_OPSET,
            input_names=input_names,
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
        )


def _transformers_in(model: Any) -> list[Any]:
    from transformers import PreTrainedModel

    return [module for module in model.modules() if isinstance(module, PreTrainedModel)]


@contextlib.contextmanager
def _eager_attention(model: Any) -> Iterator[None]:
    """Trace attention as plain matmul + softmax ("eager"): ONNX Runtime's optimizer fuses that
    pattern into its Attention operator, but not what scaled_dot_product_attention traces to."""
    switched = []
    for transformer in _transformers_in(model):
        previous = transformer.config._attn_implementation
        if previous == "eager":
            continue
        try:
            transformer.set_attn_implementation("eager")
        except (ValueError, NotImplementedError) as error:
            logger.info("Attention of %s traced as it is: %s", type(transformer).__name__, error)
            continue
        switched.append((transformer, previous))
    try:
        yield
    finally:
        for transformer, previous in reversed(switched):
            transformer.set_attn_implementation(previous)


def _fuse_transformer_operators(float_model: Path, model: Any) -> dict[str, int]:
    """Rewrite ``float_model`` in place with ONNX Runtime's fused transformer operators; the
    count of each fused operator, or {} where the model is no BERT-family encoder or the
    optimizer fails (the plain graph stays; the float check after this judges either).

    Measured on MiniLM over the benchmark corpus's chunks (2 cores): the float graph 17 %
    faster; the int8 one (see int8_selection) as fast as the unfused int8 graph and closer to the
    float model (probe min cosine 0.982 -> 0.996): the fused attention stays in float where
    the plain graph's attention products were quantized. Residual adds are left out of the
    layer norms (SkipLayerNormalization is slow on a CPU, see onnx_sessions): 7 % less time.
    """
    transformers = _transformers_in(model)
    config = transformers[0].config if transformers else None
    if config is None or getattr(config, "model_type", None) not in _FUSABLE_MODEL_TYPES:
        return {}
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        fusions = FusionOptions("bert")
        # Residual Add + LayerNormalization stay apart: see onnx_sessions.UNFUSED_PATTERNS.
        fusions.enable_skip_layer_norm = False
        with quiet_logs_from(str(Path("onnxruntime") / "transformers")):
            optimized = optimize_model(
                str(float_model),
                model_type="bert",
                num_heads=int(config.num_attention_heads),
                hidden_size=int(config.hidden_size),
                optimization_options=fusions,
                opt_level=0,  # fusions only: the file stays portable across CPUs
            )
            counts = optimized.get_fused_operator_statistics()
            optimized.save_model_to_file(str(float_model))
    # The optimizer fails in many ways on graphs it does not know; the plain graph still runs.
    except Exception as error:
        logger.info("Embedding graph left unfused (%s: %s)", type(error).__name__, error)
        return {}
    return {operator: count for operator, count in counts.items() if count}
