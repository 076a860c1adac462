"""The CPU sessions every ONNX model of the project runs in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from kb_server.onnx_sessions import cpu_session

HIDDEN = 8


def _residual_layer_norm(path: Path) -> Path:
    """x + skip, then LayerNormalization: the pattern ONNX Runtime fuses into
    SkipLayerNormalization by default."""
    rng = np.random.default_rng(3)
    scale = numpy_helper.from_array(rng.random(HIDDEN, dtype=np.float32), "scale")
    shift = numpy_helper.from_array(rng.random(HIDDEN, dtype=np.float32), "shift")
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "skip"], ["sum"]),
            helper.make_node("LayerNormalization", ["sum", "scale", "shift"], ["y"], axis=-1),
        ],
        "residual",
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4, HIDDEN])
            for name in ("x", "skip")
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, HIDDEN])],
        [scale, shift],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _operators(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_residual_layer_norms_run_unfused_and_give_the_layer_norm(tmp_path: Path) -> None:
    model = _residual_layer_norm(tmp_path / "residual.onnx")
    # ONNX Runtime's own defaults fuse the pair (so the check below can tell).
    defaults = onnxruntime.SessionOptions()
    defaults.optimized_model_filepath = str(tmp_path / "default.onnx")
    onnxruntime.InferenceSession(str(model), defaults, providers=["CPUExecutionProvider"])
    assert "SkipLayerNormalization" in _operators(tmp_path / "default.onnx")

    session = cpu_session(model, threads=1, graph_copy=tmp_path / "ours.onnx")

    assert _operators(tmp_path / "ours.onnx") == {"Add", "LayerNormalization"}
    rng = np.random.default_rng(4)
    x, skip = (rng.standard_normal((1, 4, HIDDEN)).astype(np.float32) for _ in range(2))
    (got,) = session.run(None, {"x": x, "skip": skip})
    total = x + skip
    normalized = (total - total.mean(-1, keepdims=True)) / np.sqrt(
        total.var(-1, keepdims=True) + 1e-5
    )
    scale, shift = (
        numpy_helper.to_array(tensor) for tensor in onnx.load(str(model)).graph.initializer
    )
    np.testing.assert_allclose(got, normalized * scale + shift, rtol=1e-4, atol=1e-5)
