"""ONNX Runtime sessions on the CPU, set up one way for every model the project runs itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

# Load-time graph rewrites of ONNX Runtime that make the CPU slower. SkipLayerNormalization's
# CPU kernel took 3x as long as the Add + LayerNormalization it replaces (ONNX Runtime 1.32:
# 350 vs 115 us for 132 x 384 floats), 7 % of a MiniLM embedding.
UNFUSED_PATTERNS: Final = ("SkipLayerNormFusion",)


def cpu_session(model_file: Path, threads: int, *, graph_copy: Path | None = None) -> Any:
    """A CPU session over ``model_file`` on ``threads`` intra-op threads (onnxruntime's
    InferenceSession; the library ships no type information). ``graph_copy``: where to save
    the graph as ONNX Runtime rewrote it, to see what actually runs.

    Idle worker threads sleep instead of spinning: an ingest runs OCR and the embedder side by
    side, and spinning threads would take the core the other needs. Everything else keeps ONNX
    Runtime's defaults (memory arena on, every graph optimization but UNFUSED_PATTERNS).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if graph_copy is not None:
        options.optimized_model_filepath = str(graph_copy)
    return onnxruntime.InferenceSession(
        str(model_file),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(UNFUSED_PATTERNS),
    )
