"""The int8 file of an export: which projections run in int8, chosen per model on the probes.

ONNX Runtime's dynamic quantization (int8 weights per output channel, each call's activations
quantized per tensor) is cheap where a projection's input has a narrow range and damaging
where a few values dwarf the rest. Which projections those are differs by model and by
layer: in MiniLM the first layer's attention output and the first three layers'
feed-forward down-projections each cost 0.0006-0.003 of the probes' mean cosine to the float
model, every other projection 0.0003 at most (on 300 of the benchmark corpus's chunks: min
cosine 0.961 with every projection in int8, 0.990 with those four kept in float).

So the selection starts from what is safe in BERT-family graphs (the fused attention's Q/K/V
projections and the feed-forward up-projections, measured on CMRC 2018, see _base_selection)
and tries every other MatMul, deepest first, on top of what was accepted so far: first in
ONNX Runtime's int8, then, if that lowers the probes' mean cosine by more than
MAX_MEAN_COSINE_DROP, row-scaled (kb_server/embedding/row_scaled_int8.py: slower, but each
token quantized on its own scale); one that loses too much both ways stays in float.
Each try quantizes the whole graph (about 3 s for MiniLM on 2 cores), so the search stops
after ``budget_s``; what it did not reach stays in float.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from kb_server.embedding.library_logs import quiet_logs_from
from kb_server.embedding.probes import compare_embeddings
from kb_server.embedding.row_scaled_int8 import rewrite_row_scaled, row_scalable

logger = logging.getLogger(__name__)

# A projection stays in float when quantizing it lowers the probes' mean cosine to the float
# model by more than this. On the probes MiniLM's harmless projections cost 0.0003 at most,
# the harmful ones 0.0006-0.003.
MAX_MEAN_COSINE_DROP: Final = 0.0005

# BERT-family graphs (MiniLM, BGE) as torch exports them: each layer's feed-forward
# up-projection (hidden -> 4x hidden).
_FEED_FORWARD_INPUT = re.compile(r"/layer\.\d+/intermediate/dense/MatMul$")

# The probe texts' embeddings by the model in a file.
ProbeEmbedder = Callable[[Path], NDArray[np.float32]]


@dataclass
class Int8Selection:
    """What the int8 file holds in int8, and which candidates stayed in float and why."""

    quantized: list[str] = field(default_factory=list)
    # In int8 with one scale per token (row_scaled_int8): ONNX Runtime's int8 lost too much.
    row_scaled: list[str] = field(default_factory=list)
    # Tried and kept in float: either int8 form lowered the probes' agreement too much.
    kept_float: list[str] = field(default_factory=list)
    # Not tried: the search ran out of time first.
    untried: list[str] = field(default_factory=list)
    seconds: float = 0.0


def write_int8_model(
    float_model: Path,
    int8_model: Path,
    float_probes: NDArray[np.float32],
    embed_probes: ProbeEmbedder,
    *,
    budget_s: float,
) -> Int8Selection:
    """Write ``int8_model``: ``float_model`` with the projections chosen here in int8.

    ``float_probes``: the float model's embeddings of the probes; ``embed_probes`` embeds them
    with the model in a given file. ``budget_s``: seconds the search may take (0: only the
    base selection).
    """
    started = time.monotonic()
    names, row_scalable_names = _candidate_names(float_model)
    selection = Int8Selection(quantized=_base_selection(names))
    candidates = [name for name in reversed(names["MatMul"]) if name not in selection.quantized]
    on_disk = (selection.quantized, selection.row_scaled)
    quantize_nodes(float_model, int8_model, *on_disk)
    agreement = compare_embeddings(float_probes, embed_probes(int8_model)).mean_cosine

    def keep_if_close(quantized: list[str], row_scaled: list[str]) -> bool:
        """Write this selection; keep it if the probes' agreement drops little enough."""
        nonlocal agreement, on_disk
        on_disk = (quantized, row_scaled)
        quantize_nodes(float_model, int8_model, quantized, row_scaled)
        trial_agreement = compare_embeddings(float_probes, embed_probes(int8_model)).mean_cosine
        if agreement - trial_agreement > MAX_MEAN_COSINE_DROP:
            return False
        selection.quantized, selection.row_scaled = quantized, row_scaled
        agreement = trial_agreement
        return True

    for position, candidate in enumerate(candidates):
        if time.monotonic() - started >= budget_s:
            selection.untried = candidates[position:]
            break
        if not (
            keep_if_close([*selection.quantized, candidate], selection.row_scaled)
            or (
                candidate in row_scalable_names
                and keep_if_close(selection.quantized, [*selection.row_scaled, candidate])
            )
        ):
            selection.kept_float.append(candidate)
    if on_disk != (selection.quantized, selection.row_scaled):  # the last try was rejected
        quantize_nodes(float_model, int8_model, selection.quantized, selection.row_scaled)
    selection.seconds = round(time.monotonic() - started, 2)
    logger.info(
        "int8 selection: %d operators in int8, %d row-scaled, %d kept in float, %d not tried "
        "(%.1f s)",
        len(selection.quantized),
        len(selection.row_scaled),
        len(selection.kept_float),
        len(selection.untried),
        selection.seconds,
    )
    return selection


def _base_selection(names: dict[str, list[str]]) -> list[str]:
    """The fused Attention operators and, where the graph has them under BERT's names, the
    feed-forward up-projections.

    MiniLM's CMRC 2018 dense retrieval against the float model's MRR 0.187 / hit@5 0.283 /
    hit@10 0.373: the up-projections in int8, 0.186 / 0.290 / -; with the attention's
    projections too, 0.185 / 0.279 / 0.367 (probe min cosine 0.993) and 16 % less time.
    """
    up_projections = [name for name in names["MatMul"] if _FEED_FORWARD_INPUT.search(name)]
    return names["Attention"] + up_projections


def quantize_nodes(
    float_model: Path, int8_model: Path, nodes: list[str], row_scaled: Sequence[str] = ()
) -> None:
    """Write ``int8_model``: ``float_model`` with the MatMul and Attention ``nodes`` in ONNX
    Runtime's int8 and the MatMuls ``row_scaled`` in row-scaled int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic would take an empty node list for "every node": then it is not called.
    if nodes:
        with quiet_logs_from(str(Path("onnxruntime") / "quantization")):
            quantize_dynamic(
                str(float_model),
                str(int8_model),
                # Per-tensor int8 weights gave cosines of 0.89 with MiniLM.
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Attention"],
                nodes_to_quantize=nodes,
                # Shape inference knows no types for the fused operators' outputs; they are
                # float.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        if not row_scaled:
            return
    model = onnx.load(str(int8_model if nodes else float_model))
    rewrite_row_scaled(model, row_scaled)
    onnx.save(model, str(int8_model))


def _candidate_names(float_model: Path) -> tuple[dict[str, list[str]], set[str]]:
    """The names of the graph's MatMul and Attention nodes, in graph order, and of the
    MatMuls that can run row-scaled."""
    import onnx

    model = onnx.load(str(float_model), load_external_data=False)
    names: dict[str, list[str]] = {"MatMul": [], "Attention": []}
    for node in model.graph.node:
        if node.op_type in names:
            names[node.op_type].append(node.name)
    return names, row_scalable(model)
