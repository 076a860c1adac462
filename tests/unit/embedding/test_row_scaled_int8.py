"""Row-scaled int8 MatMuls: each input row (token) on its own scale, weights per column."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from kb_server.embedding.int8_selection import quantize_nodes
from kb_server.embedding.row_scaled_int8 import (
    quantize_weight_columns,
    rewrite_row_scaled,
    row_scalable,
)
from kb_server.onnx_sessions import cpu_session

INPUTS, OUTPUTS = 48, 16


def projection_model(weight: NDArray[np.float32], opset: int) -> onnx.ModelProto:
    """x [batch, tokens, INPUTS] -> MatMul "projection" -> Relu -> y [batch, tokens, OUTPUTS]."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "weight"], ["projected"], name="projection"),
            helper.make_node("Relu", ["projected"], ["y"], name="activation"),
        ],
        "projection",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", INPUTS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", OUTPUTS])],
        [numpy_helper.from_array(weight, "weight")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def with_float_twin(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with a second MatMul "float_twin" of x by the same weight, output "z"."""
    model.graph.node.append(helper.make_node("MatMul", ["x", "weight"], ["z"], name="float_twin"))
    model.graph.output.append(
        helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", "tokens", OUTPUTS])
    )
    return model


def run(model: onnx.ModelProto, x: NDArray[np.float32], tmp_path: Path) -> NDArray[np.float32]:
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    (output,) = cpu_session(path, 1).run(None, {"x": x})
    result: NDArray[np.float32] = output
    return result


def reference(x: NDArray[np.float32], weight: NDArray[np.float32]) -> NDArray[Any]:
    """The row-scaled product computed in numpy, then the graph's Relu."""
    quantized_weight, weight_scales = quantize_weight_columns(weight)
    row_range = np.maximum(np.abs(x).max(axis=-1, keepdims=True), 1e-12)
    # QuantizeLinear rounds halves to even, as np.round does.
    rows = np.clip(np.round(x * (np.float32(127.0) / row_range)), -127, 127)
    product = rows.astype(np.int64) @ quantized_weight.astype(np.int64)
    scaled = product.astype(np.float32) * weight_scales * (row_range / np.float32(127.0))
    activated: NDArray[Any] = np.maximum(scaled, 0.0)
    return activated


@pytest.fixture
def weight() -> NDArray[np.float32]:
    return np.random.default_rng(3).normal(0.0, 0.2, (INPUTS, OUTPUTS)).astype(np.float32)


@pytest.fixture
def tokens() -> NDArray[np.float32]:
    """Two texts of five tokens; the second text's third token has a few huge activations."""
    x = np.random.default_rng(4).normal(0.0, 1.0, (2, 5, INPUTS)).astype(np.float32)
    x[1, 2, :3] = [90.0, -120.0, 75.0]
    return x


@pytest.mark.parametrize("opset", [17, 18])
def test_the_rewritten_graph_computes_the_row_scaled_product(
    weight: NDArray[np.float32], tokens: NDArray[np.float32], opset: int, tmp_path: Path
) -> None:
    """Opset 18 moved ReduceMax's axes from an attribute to an input: both are written."""
    model = projection_model(weight, opset)

    rewrite_row_scaled(model, ["projection"])

    onnx.checker.check_model(model, full_check=True)
    operators = [node.op_type for node in model.graph.node]
    assert "MatMul" not in operators
    assert "MatMulInteger" in operators
    assert "weight" not in {tensor.name for tensor in model.graph.initializer}
    np.testing.assert_allclose(run(model, tokens, tmp_path), reference(tokens, weight), atol=1e-4)


def test_each_token_keeps_its_own_precision_beside_large_activations(
    weight: NDArray[np.float32], tokens: NDArray[np.float32], tmp_path: Path
) -> None:
    """A token's result does not depend on the other tokens' ranges, and stays within 2 % of
    the float product even next to a token with activations 100x larger. (The last lines
    check the fixture: with one scale for the whole input, as ONNX Runtime's dynamic
    quantization has, that outlier would cost the ordinary tokens more than 2 %.)"""
    float_result = run(projection_model(weight, 17), tokens, tmp_path)
    model = projection_model(weight, 17)
    rewrite_row_scaled(model, ["projection"])
    row_scaled = run(model, tokens, tmp_path)
    calm = tokens.copy()
    calm[1, 2] = 0.0

    calmed = run(model, calm, tmp_path)
    assert np.array_equal(calmed[0], row_scaled[0])
    assert np.array_equal(calmed[1, [0, 1, 3, 4]], row_scaled[1, [0, 1, 3, 4]])
    ordinary = [(0, 0), (0, 4), (1, 0), (1, 4)]
    for text, token in ordinary:
        error = np.abs(row_scaled[text, token] - float_result[text, token]).max()
        assert error <= 0.02 * np.abs(float_result[text, token]).max()
    one_scale = np.abs(tokens).max() / 127.0
    coarse = np.round(tokens / one_scale) * one_scale
    coarse_error = np.abs(np.maximum(coarse @ weight, 0.0) - float_result)[1, 0].max()
    assert coarse_error > 0.02 * np.abs(float_result[1, 0]).max()


def test_a_name_that_is_no_constant_matmul_is_refused_and_changes_nothing(
    weight: NDArray[np.float32],
) -> None:
    model = projection_model(weight, 17)
    before = model.SerializeToString()

    for names in (["projection", "activation"], ["projection", "missing"]):
        with pytest.raises(ValueError, match="not a uniquely named MatMul"):
            rewrite_row_scaled(model, names)

    assert model.SerializeToString() == before


def test_only_matmuls_of_an_activation_by_a_constant_weight_are_row_scalable(
    weight: NDArray[np.float32],
) -> None:
    """Attention's MatMuls multiply two activations; a name used twice is ambiguous."""
    model = projection_model(weight, 17)
    graph = model.graph
    graph.node.extend(
        [
            helper.make_node("Transpose", ["y"], ["y_t"], perm=[0, 2, 1], name="transpose"),
            helper.make_node("MatMul", ["y", "y_t"], ["scores"], name="scores"),
            helper.make_node("MatMul", ["x", "weight"], ["again"], name="twice"),
            helper.make_node("MatMul", ["again", "weight_b"], ["more"], name="twice"),
        ]
    )
    graph.initializer.append(numpy_helper.from_array(weight[:OUTPUTS], "weight_b"))

    assert row_scalable(model) == {"projection"}


def test_a_weight_another_matmul_still_reads_is_kept(
    weight: NDArray[np.float32], tokens: NDArray[np.float32], tmp_path: Path
) -> None:
    model = with_float_twin(projection_model(weight, 17))

    rewrite_row_scaled(model, ["projection"])

    assert "weight" in {tensor.name for tensor in model.graph.initializer}
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    y, z = cpu_session(path, 1).run(None, {"x": tokens})
    np.testing.assert_allclose(z, tokens @ weight, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, reference(tokens, weight), atol=1e-4)


def test_quantize_nodes_with_only_row_scaled_ones_quantizes_nothing_else(
    weight: NDArray[np.float32], tokens: NDArray[np.float32], tmp_path: Path
) -> None:
    """ONNX Runtime's quantize_dynamic reads an empty node list as "every node"."""
    model = with_float_twin(projection_model(weight, 17))
    float_path, int8_path = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    onnx.save(model, str(float_path))

    quantize_nodes(float_path, int8_path, [], ["projection"])

    operators = Counter(node.op_type for node in onnx.load(str(int8_path)).graph.node)
    assert (operators["MatMul"], operators["MatMulInteger"]) == (1, 1)
    assert operators["DynamicQuantizeLinear"] == 0
    y, z = cpu_session(int8_path, 1).run(None, {"x": tokens})
    np.testing.assert_allclose(y, reference(tokens, weight), atol=1e-4)
    np.testing.assert_allclose(z, tokens @ weight, rtol=1e-5, atol=1e-5)
