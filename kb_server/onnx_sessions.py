"""ONNX Runtime sessions on the CPU, set up one way for every model the project runs itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def cpu_session(model_file: Path, threads: int) -> Any:
    """A CPU session over ``model_file`` on ``threads`` intra-op threads (onnxruntime's
    InferenceSession; the library ships no type information).

    Idle worker threads sleep instead of spinning: an ingest runs OCR and the embedder side by
    side, and spinning threads would take the core the other needs. Everything else keeps ONNX
    Runtime's defaults (memory arena on, every graph optimization).
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(
        str(model_file), options, providers=["CPUExecutionProvider"]
    )
