"""Exact rewrites of RapidOCR's PaddleOCR-exported ONNX graphs that ONNX Runtime runs faster.

PP-OCRv4's backbone (PP-LCNetV3) follows each convolution with a learnable scalar affine
(``Mul`` by one constant, ``Add`` of one constant), a hard-swish spelled out in four element-wise
ops, and another scalar affine. ONNX Runtime fuses none of these, so on a CPU about a third of
the recognizer's time went to element-wise passes over feature maps. Rewritten here:

- the graph is moved to opset 14, which has ``HardSwish``, and each spelled-out hard-swish
  ``x * clip(x + 3, 0, 6) / 6`` becomes one ``HardSwish`` node (ONNX Runtime fuses it into the
  convolution before it);
- ``Conv -> Mul(a) -> Add(b)`` becomes one ``Conv`` with weights ``a*W`` and bias ``a*B + b``;
- ``Mul(a) -> Add(b) -> Conv`` becomes one ``Conv`` with weights ``a*W`` and bias
  ``B + b*sum(W)`` where the convolution pads nothing (a padded one would see ``b`` at its
  borders, where it now sees 0, so those are left alone).

Each rewrite gives the same outputs up to float rounding (tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper, version_converter

# HardSwish arrived in opset 14; per-channel QuantizeLinear/DequantizeLinear (int8) need 13.
TARGET_OPSET: Final = 14
_TOLERANCE: Final = 1e-6


@dataclass(frozen=True)
class RewriteCounts:
    """How many patterns each rewrite replaced."""

    hard_swish: int
    affine_after_conv: int
    affine_before_conv: int

    def describe(self) -> str:
        return (
            f"{self.hard_swish} hard-swish, {self.affine_after_conv} affine after conv, "
            f"{self.affine_before_conv} affine before conv"
        )


def optimize_graph(model: onnx.ModelProto) -> tuple[onnx.ModelProto, RewriteCounts]:
    """A rewritten copy of ``model`` (see the module docstring) and what was rewritten."""
    if _opset(model) < TARGET_OPSET:
        model = version_converter.convert_version(model, TARGET_OPSET)
    else:
        copied = onnx.ModelProto()
        copied.CopyFrom(model)
        model = copied
    graph = _Graph(model.graph)
    counts = RewriteCounts(
        hard_swish=graph.fuse_hard_swish(),
        affine_after_conv=graph.fold_affine_after_conv(),
        affine_before_conv=graph.fold_affine_before_conv(),
    )
    graph.write_back()
    onnx.checker.check_model(model)
    return model, counts


def _opset(model: onnx.ModelProto) -> int:
    return next(
        (entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0
    )


class _Graph:
    """A mutable view of one graph: nodes, constants (initializers) and their users."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.constants: dict[str, NDArray[Any]] = {
            tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer
        }
        self.nodes: list[onnx.NodeProto] = []
        for node in graph.node:
            if node.op_type == "Constant" and _attributes(node).keys() == {"value"}:
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            else:
                self.nodes.append(node)
        self.graph_outputs = {output.name for output in graph.output}
        self._new_names = 0

    # -- the rewrites ----------------------------------------------------------------------

    def fuse_hard_swish(self) -> int:
        fused = 0
        for clip in [node for node in self.nodes if node.op_type == "Clip"]:
            add = self._producer(clip.input[0])
            if add is None or add.op_type != "Add" or not self._clips_to(clip, 0.0, 6.0):
                continue
            operand = self._scalar_operand(add, 3.0)
            multiply = self._only_user(clip.output[0])
            if operand is None or multiply is None or multiply.op_type != "Mul":
                continue
            if sorted(multiply.input) != sorted([operand, clip.output[0]]):
                continue
            divide = self._only_user(multiply.output[0])
            if divide is None or divide.op_type != "Div" or divide.input[0] != multiply.output[0]:
                continue
            if not self._is_scalar(divide.input[1], 6.0) or self._only_user(add.output[0]) is None:
                continue
            swish = helper.make_node(
                "HardSwish", [operand], [divide.output[0]], name=f"{divide.name}_hard_swish"
            )
            self._replace([add, clip, multiply, divide], swish)
            fused += 1
        return fused

    def fold_affine_after_conv(self) -> int:
        folded = 0
        for conv in [node for node in self.nodes if node.op_type == "Conv"]:
            affine = self._scalar_affine_after(conv.output[0])
            if affine is None or not self._has_constant_weights(conv):
                continue
            scale, shift, multiply, add = affine
            weights, bias = self._weights_and_bias(conv)
            self._set_weights(conv, conv.input[0], weights * scale, bias * scale + shift)
            conv.output[0] = add.output[0]
            self._remove([multiply, add])
            folded += 1
        return folded

    def fold_affine_before_conv(self) -> int:
        folded = 0
        for add in [node for node in self.nodes if node.op_type == "Add"]:
            affine = self._scalar_affine_ending_at(add)
            if affine is None:
                continue
            scale, shift, source, multiply = affine
            users = self._users(add.output[0])
            if not users or not all(
                self._foldable_conv_input(user, add.output[0]) for user in users
            ):
                continue
            for conv in users:
                weights, bias = self._weights_and_bias(conv)
                shifted_bias = bias + shift * weights.sum(axis=tuple(range(1, weights.ndim)))
                self._set_weights(conv, source, weights * scale, shifted_bias)
            self._remove([multiply, add])
            folded += 1
        return folded

    def write_back(self) -> None:
        used = {name for node in self.nodes for name in node.input}
        del self.graph.initializer[:]
        self.graph.initializer.extend(
            numpy_helper.from_array(value, name)
            for name, value in self.constants.items()
            if name in used or name in self.graph_outputs
        )
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)

    # -- pattern helpers -------------------------------------------------------------------

    def _scalar_affine_after(
        self, name: str
    ) -> tuple[float, float, onnx.NodeProto, onnx.NodeProto] | None:
        """``name -> Mul(a) -> Add(b)`` where each is the only user: (a, b, Mul, Add)."""
        multiply = self._only_user(name)
        if multiply is None or multiply.op_type != "Mul":
            return None
        add = self._only_user(multiply.output[0])
        if add is None or add.op_type != "Add":
            return None
        scale, shift = self._scalar_of(multiply, name), self._scalar_of(add, multiply.output[0])
        if scale is None or shift is None:
            return None
        return scale, shift, multiply, add

    def _scalar_affine_ending_at(
        self, add: onnx.NodeProto
    ) -> tuple[float, float, str, onnx.NodeProto] | None:
        """``source -> Mul(a) -> add(b)``, the Mul used by ``add`` alone: (a, b, source, Mul)."""
        if add.output[0] in self.graph_outputs:
            return None
        for middle in add.input:
            multiply = self._producer(middle)
            if multiply is None or multiply.op_type != "Mul" or self._only_user(middle) is None:
                continue
            shift = self._scalar_of(add, middle)
            source = next((name for name in multiply.input if name not in self.constants), None)
            scale = None if source is None else self._scalar_of(multiply, source)
            if shift is not None and scale is not None and source is not None:
                return scale, shift, source, multiply
        return None

    def _scalar_of(self, node: onnx.NodeProto, variable: str) -> float | None:
        """The one-element constant ``node`` combines with ``variable``, if that is all it does."""
        others = [name for name in node.input if name != variable]
        if len(node.input) != 2 or len(others) != 1 or others[0] not in self.constants:
            return None
        value = self.constants[others[0]]
        return float(value.reshape(-1)[0]) if value.size == 1 else None

    def _scalar_operand(self, node: onnx.NodeProto, constant: float) -> str | None:
        """The variable input of ``node`` when its other input is the scalar ``constant``."""
        for variable in node.input:
            value = None if variable in self.constants else self._scalar_of(node, variable)
            if value is not None and abs(value - constant) < _TOLERANCE:
                return str(variable)
        return None

    def _clips_to(self, clip: onnx.NodeProto, low: float, high: float) -> bool:
        return (
            len(clip.input) == 3
            and self._is_scalar(clip.input[1], low)
            and self._is_scalar(clip.input[2], high)
        )

    def _is_scalar(self, name: str, expected: float) -> bool:
        value = self.constants.get(name)
        return (
            value is not None
            and value.size == 1
            and abs(float(value.reshape(-1)[0]) - expected) < _TOLERANCE
        )

    def _foldable_conv_input(self, node: onnx.NodeProto, name: str) -> bool:
        if node.op_type != "Conv" or node.input[0] != name or not self._has_constant_weights(node):
            return False
        attributes = _attributes(node)
        pads = attributes.get("pads", [])
        padded = any(pads) or attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID")
        return not padded

    def _has_constant_weights(self, conv: onnx.NodeProto) -> bool:
        return all(name in self.constants for name in conv.input[1:]) and (
            self.constants[conv.input[1]].dtype == np.float32
        )

    def _weights_and_bias(self, conv: onnx.NodeProto) -> tuple[NDArray[Any], NDArray[Any]]:
        weights = self.constants[conv.input[1]]
        if len(conv.input) > 2 and conv.input[2]:
            return weights, self.constants[conv.input[2]]
        return weights, np.zeros(weights.shape[0], dtype=weights.dtype)

    def _set_weights(
        self, conv: onnx.NodeProto, source: str, weights: NDArray[Any], bias: NDArray[Any]
    ) -> None:
        # New names: the old tensors may be shared with other nodes.
        weight_name, bias_name = self._new_name(f"{conv.name}_W"), self._new_name(f"{conv.name}_B")
        self.constants[weight_name] = weights.astype(np.float32)
        self.constants[bias_name] = bias.astype(np.float32)
        del conv.input[:]
        conv.input.extend([source, weight_name, bias_name])

    def _new_name(self, stem: str) -> str:
        self._new_names += 1
        return f"{stem}_folded_{self._new_names}"

    # -- graph bookkeeping -----------------------------------------------------------------

    def _producer(self, name: str) -> onnx.NodeProto | None:
        return next((node for node in self.nodes if name in node.output), None)

    def _users(self, name: str) -> list[onnx.NodeProto]:
        return [node for node in self.nodes if name in node.input]

    def _only_user(self, name: str) -> onnx.NodeProto | None:
        users = self._users(name)
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0]

    def _replace(self, old: list[onnx.NodeProto], new: onnx.NodeProto) -> None:
        position = min(self.nodes.index(node) for node in old)
        self._remove(old)
        # The replacement's input comes before all of the old nodes, so this keeps the order.
        self.nodes.insert(position, new)

    def _remove(self, nodes: list[onnx.NodeProto]) -> None:
        removed = {id(node) for node in nodes}
        self.nodes = [node for node in self.nodes if id(node) not in removed]


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
