"""Row-scaled int8 projections: each token's activations quantized with a scale of its own.

ONNX Runtime's dynamic quantization gives a projection's whole input one scale, so a token
with a few large activations coarsens every other token's values too. That is what made some
of MiniLM's projections (the first layers' feed-forward down-projections) lose too much in
int8. Here each row of the input (one token) gets its own symmetric scale, the weights one per
output column, and the product runs as an integer MatMul:

    scale_row = max|x_row| / 127
    q_row     = round(x_row / scale_row) + 128            (uint8; the 128 is the zero point)
    w_q       = round(w / w_scale), w_scale = max|w_column| / 63
    y         = (MatMulInteger(q, w_q) with zero points 128 and 0) * w_scale * scale_row

The weights use 7 bits: on x86 CPUs without VNNI, ONNX Runtime multiplies uint8 by int8 with
an instruction that adds pairs of products into 16 bits and saturates (2 x 255 x 127 does not
fit; 2 x 255 x 63 does), which gave wrong values for 6 % of the outputs of the test's
projection with 8-bit weights.

The extra element-wise passes cost about half of what the integer MatMul saves on a 132-token
text, so it is the fallback for projections that lose too much with one scale per tensor, not
the rule. A token's vector no longer depends on the other tokens' ranges either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

_ACTIVATION_ZERO_POINT: Final = 128
_LEVELS: Final = 127.0
# 7-bit weights: see the module docstring.
_WEIGHT_LEVELS: Final = 63.0
# Rows of all zeros (padding) would divide by zero.
_MIN_RANGE: Final = 1e-12


def quantize_weight_columns(weight: NDArray[np.float32]) -> tuple[NDArray[np.int8], NDArray[Any]]:
    """Symmetric 7-bit weights (-63..63, stored as int8) with one scale per output column, and
    those scales."""
    scales = np.maximum(np.abs(weight).max(axis=0), _MIN_RANGE) / _WEIGHT_LEVELS
    quantized = np.clip(np.round(weight / scales), -_WEIGHT_LEVELS, _WEIGHT_LEVELS).astype(np.int8)
    return quantized, scales.astype(np.float32)


def row_scalable(model: Any) -> set[str]:
    """Names of the MatMuls in ``model`` (an onnx.ModelProto) that rewrite_row_scaled takes:
    an activation times a constant float 2-D weight, the name unique in the graph."""
    from onnx import TensorProto

    constants = {
        tensor.name
        for tensor in model.graph.initializer
        if tensor.data_type == TensorProto.FLOAT and len(tensor.dims) == 2
    }
    uses_of_name = Counter(node.name for node in model.graph.node)
    return {
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul"
        and len(node.input) == 2
        and node.input[1] in constants
        and node.input[0] not in constants
        and uses_of_name[node.name] == 1
    }


def rewrite_row_scaled(model: Any, node_names: Collection[str]) -> None:
    """Replace the float MatMuls named ``node_names`` (see row_scalable) in ``model`` (an
    onnx.ModelProto, changed in place) by their row-scaled int8 form.

    Raises ValueError, leaving ``model`` as it was, when a name is not one row_scalable gives.
    """
    from onnx import TensorProto, helper, numpy_helper

    if not node_names:
        return
    refused = set(node_names) - row_scalable(model)
    if refused:
        raise ValueError(
            f"not a uniquely named MatMul by a constant float 2-D weight: {sorted(refused)}"
        )
    graph = model.graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    shared = _shared_constants(graph, opset)
    rewritten: list[Any] = []
    replaced_weights: set[str] = set()
    for node in graph.node:
        if node.name not in node_names:
            rewritten.append(node)
            continue
        replaced_weights.add(node.input[1])
        quantized, scales = quantize_weight_columns(numpy_helper.to_array(constants[node.input[1]]))
        prefix = f"{node.name}/row_scaled/"
        graph.initializer.extend(
            [
                numpy_helper.from_array(quantized, prefix + "weight"),
                numpy_helper.from_array(scales, prefix + "weight_scale"),
            ]
        )
        rewritten.extend(
            _row_scaled_nodes(helper, TensorProto, node.input[0], node.output[0], prefix, shared)
        )
    del graph.node[:]
    graph.node.extend(rewritten)
    _drop_unused(graph, replaced_weights)


def _drop_unused(graph: Any, weights: set[str]) -> None:
    """Remove those of ``weights`` nothing reads any more (a node here or in a subgraph, a
    graph output), with their graph-input entries (older models list weights as inputs)."""
    unused = weights - _names_read(graph) - {output.name for output in graph.output}
    kept = [tensor for tensor in graph.initializer if tensor.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    inputs = [value for value in graph.input if value.name not in unused]
    del graph.input[:]
    graph.input.extend(inputs)


def _names_read(graph: Any) -> set[str]:
    from onnx import AttributeProto

    names: set[str] = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                names |= _names_read(attribute.g)
            elif attribute.type == AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    names |= _names_read(subgraph)
    return names


def _shared_constants(graph: Any, opset: int) -> dict[str, str]:
    """Scalars every rewritten node uses, added to the graph once."""
    from onnx import numpy_helper

    values: dict[str, NDArray[Any]] = {
        "levels": np.array(_LEVELS, np.float32),
        "inverse_levels": np.array(1.0 / _LEVELS, np.float32),
        "min_range": np.array(_MIN_RANGE, np.float32),
        "unit_scale": np.array(1.0, np.float32),
        "activation_zero_point": np.array(_ACTIVATION_ZERO_POINT, np.uint8),
        "weight_zero_point": np.array(0, np.int8),
    }
    if opset >= 18:  # ReduceMax takes its axes as an input from opset 18 on
        values["last_axis"] = np.array([-1], np.int64)
    names = {key: f"row_scaled_int8/{key}" for key in values}
    existing = {tensor.name for tensor in graph.initializer}
    graph.initializer.extend(
        numpy_helper.from_array(value, names[key])
        for key, value in values.items()
        if names[key] not in existing
    )
    return names


def _row_scaled_nodes(
    helper: Any, tensor_proto: Any, source: str, target: str, prefix: str, shared: dict[str, str]
) -> list[Any]:
    def name(part: str) -> str:
        return prefix + part

    if "last_axis" in shared:
        reduce_max = helper.make_node(
            "ReduceMax", [name("abs"), shared["last_axis"]], [name("row_max")], keepdims=1
        )
    else:
        reduce_max = helper.make_node(
            "ReduceMax", [name("abs")], [name("row_max")], axes=[-1], keepdims=1
        )
    nodes = [
        helper.make_node("Abs", [source], [name("abs")]),
        reduce_max,
        helper.make_node("Max", [name("row_max"), shared["min_range"]], [name("row_range")]),
        # x * (127 / range) lands in [-127, 127]; quantized with scale 1 and zero point 128.
        helper.make_node("Div", [shared["levels"], name("row_range")], [name("row_inverse")]),
        helper.make_node("Mul", [name("row_range"), shared["inverse_levels"]], [name("row_scale")]),
        helper.make_node("Mul", [source, name("row_inverse")], [name("scaled")]),
        helper.make_node(
            "QuantizeLinear",
            [name("scaled"), shared["unit_scale"], shared["activation_zero_point"]],
            [name("quantized")],
        ),
        helper.make_node(
            "MatMulInteger",
            [
                name("quantized"),
                name("weight"),
                shared["activation_zero_point"],
                shared["weight_zero_point"],
            ],
            [name("product")],
        ),
        helper.make_node("Cast", [name("product")], [name("product_float")], to=tensor_proto.FLOAT),
        helper.make_node(
            "Mul", [name("product_float"), name("weight_scale")], [name("column_scaled")]
        ),
        helper.make_node("Mul", [name("column_scaled"), name("row_scale")], [target]),
    ]
    for position, node in enumerate(nodes):
        node.name = name(f"{position}_{node.op_type}")
    return nodes
