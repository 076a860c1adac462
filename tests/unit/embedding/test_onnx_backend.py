"""The ONNX backends on the real MiniLM model: same vectors and rankings as torch, one export."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from filelock import FileLock
from numpy.typing import NDArray
from onnxruntime.quantization import QuantType, quantize_dynamic

from kb_server.embedding import (
    Embedder,
    EmbedderCache,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    get_embedder,
    resolve_model,
)
from kb_server.embedding.export_manifest import (
    MANIFEST_FILE,
    OnnxExport,
    export_folder,
    read_export,
)
from kb_server.embedding.int8_selection import MAX_MEAN_COSINE_DROP, quantize_nodes
from kb_server.embedding.onnx_embedder import OnnxVariant, load_onnx_model, open_onnx_model
from kb_server.embedding.onnx_export import ensure_export
from kb_server.embedding.probes import MIN_INT8_COSINE, PROBE_TEXTS, compare_embeddings
from kb_server.settings import EmbeddingSettings

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "The cat sat quietly on the warm windowsill.",
    "Interest rates were raised by the central bank this quarter.",
    "  Leading and trailing spaces, MiXeD CaSe and accents: café, naïve.  ",
    "向量检索把文本变成向量，再按相似度排序。",
    "退款需要在收到商品后七天内提出申请。",
    "公司的年假政策是每年十五天，可以分次休完。",
    "知识库问答系统把文档切分成片段，检索最相关的片段后交给大模型生成回答。" * 8,
    "A very long English text that runs past the model's 256 token limit. " * 30,
]
FILES_BY_VARIANT: list[tuple[OnnxVariant, str]] = [
    ("onnx", "model.onnx"),
    ("onnx-int8", "model_int8.onnx"),
]
# (question, the passage that answers it); every question's answer is a different passage.
QA_PAIRS = [
    (
        "How many days of paid leave do employees get?",
        "Employees receive 25 days of paid annual leave, plus public holidays.",
    ),
    (
        "When is the office open on Saturdays?",
        "On Saturdays the office opens from 9 am to 1 pm; it is closed on Sundays.",
    ),
    (
        "How long do I have to return a product for a refund?",
        "Products can be returned for a full refund within 30 days of delivery.",
    ),
    (
        "What is the Wi-Fi password for guests?",
        "Guests connect to the network 'Visitors' with "
        "the password printed on the reception desk card.",
    ),
    (
        "Who do I call when my laptop breaks?",
        "For broken laptops or other hardware faults, call the IT help desk on extension 4455.",
    ),
    (
        "How often is the database backed up?",
        "The production database is backed up every night "
        "at 2 am and the copies are kept for 90 days.",
    ),
    (
        "Can I bring my dog to work?",
        "Pets are not allowed in the building, except assistance dogs.",
    ),
    (
        "How are travel expenses reimbursed?",
        "Travel expenses are reimbursed monthly once the "
        "receipts are uploaded to the expense portal.",
    ),
    (
        "What should I do if there is a fire alarm?",
        "When the fire alarm sounds, leave by the "
        "nearest staircase and gather in the north car park.",
    ),
    (
        "Where can I park my bicycle?",
        "Bicycles can be parked in the covered rack next to the main entrance.",
    ),
]


def _settings(export_dir: Path, backend: str = "onnx-int8") -> EmbeddingSettings:
    return EmbeddingSettings.model_validate(
        {
            "model": MINILM,
            "fallback_model": None,
            "device": "cpu",
            "backend": backend,
            "export_dir": export_dir,
        }
    )


@pytest.fixture(scope="module")
def backends(model_export_dir: Path) -> dict[str, Embedder]:
    """MiniLM on each backend; torch first, so that an export still to make reuses its weights.

    The export goes to the folder the whole run shares: it is made once per session.
    """
    return {
        backend: get_embedder(_settings(model_export_dir, backend))
        for backend in ("torch", "onnx-int8", "onnx")
    }


@pytest.fixture(scope="module")
def minilm_export(backends: dict[str, Embedder], model_export_dir: Path) -> OnnxExport:
    export = read_export(
        export_folder(resolve_model(MINILM, _settings(model_export_dir)), model_export_dir)
    )
    assert export is not None
    return export


def _our_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    # ONNX Runtime's quantizer, run by a test itself, warns on the root logger.
    return [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name.startswith("kb_server")
    ]


def _cosines(left: NDArray[np.float32], right: NDArray[np.float32]) -> NDArray[np.float32]:
    cosines: NDArray[np.float32] = np.sum(left * right, axis=1)
    return cosines


def test_each_backend_is_the_one_asked_for(backends: dict[str, Embedder]) -> None:
    assert isinstance(backends["torch"], SentenceTransformerEmbedder)
    for backend in ("onnx", "onnx-int8"):
        embedder = backends[backend]
        assert isinstance(embedder, OnnxEmbedder)
        # For int8 this also says the export's int8 guard accepted MiniLM.
        assert embedder.backend == backend
        assert (embedder.name, embedder.dimension) == (MINILM, 384)


def test_onnx_vectors_match_torch_on_chinese_and_english(backends: dict[str, Embedder]) -> None:
    reference = backends["torch"].embed_documents(SENTENCES)
    float_vectors = backends["onnx"].embed_documents(SENTENCES)
    int8_vectors = backends["onnx-int8"].embed_documents(SENTENCES)

    assert float_vectors.dtype == int8_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8_vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(reference, float_vectors).min() >= 0.999
    assert _cosines(reference, int8_vectors).min() >= 0.98


def test_int8_vectors_do_not_depend_on_the_batch(backends: dict[str, Embedder]) -> None:
    int8 = backends["onnx-int8"]

    together = int8.embed_documents(SENTENCES)
    one_by_one = np.stack([int8.embed_documents([text])[0] for text in SENTENCES])

    np.testing.assert_allclose(together, one_by_one, atol=1e-6)


class _SessionMeetingItsTwin:
    """A session whose first two runs wait for each other: they finish only when in flight at
    the same time."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._meeting = threading.Barrier(2, timeout=10)
        self._guard = threading.Lock()
        self._arrivals = 0
        self.threads: set[str] = set()

    def run(self, *args: Any) -> Any:
        with self._guard:
            self._arrivals += 1
            arrival = self._arrivals
            self.threads.add(threading.current_thread().name)
        if arrival <= 2:
            self._meeting.wait()
        return self._session.run(*args)


def test_parallel_runs_compute_at_once_and_give_the_same_vectors(
    minilm_export: OnnxExport,
) -> None:
    manifest = minilm_export.manifest
    models = {
        runs: open_onnx_model(
            minilm_export.int8_model,
            minilm_export.folder,
            manifest.tokenizer,
            dimension=manifest.dimension,
            variant="onnx-int8",
            parallel_runs=runs,
        )
        for runs in (1, 2)
    }
    texts = SENTENCES * 3
    session = _SessionMeetingItsTwin(models[2].session)
    parallel = dataclasses.replace(models[2], session=session)

    together = parallel.embed(texts)

    assert len(session.threads) == 2
    np.testing.assert_array_equal(together, models[1].embed(texts))


def test_every_backend_ranks_the_same_passage_first(backends: dict[str, Embedder]) -> None:
    passages = [passage for _, passage in QA_PAIRS]
    for backend, embedder in backends.items():
        scores = np.stack([embedder.embed_query(question) for question, _ in QA_PAIRS]) @ (
            embedder.embed_documents(passages).T
        )
        assert list(np.argmax(scores, axis=1)) == list(range(len(QA_PAIRS))), backend


def test_a_second_load_reuses_the_export(minilm_export: OnnxExport, model_export_dir: Path) -> None:
    manifest = minilm_export.folder / MANIFEST_FILE
    written = manifest.stat().st_mtime_ns
    settings = _settings(model_export_dir)

    again = ensure_export(resolve_model(MINILM, settings), model_export_dir, settings)
    fresh_cache_embedder = EmbedderCache().get(settings)

    assert again.folder == minilm_export.folder
    assert isinstance(fresh_cache_embedder, OnnxEmbedder)
    assert manifest.stat().st_mtime_ns == written
    assert not list(model_export_dir.glob(".*.partial"))


def test_an_export_under_way_elsewhere_is_waited_for_and_reused(
    minilm_export: OnnxExport, tmp_path: Path
) -> None:
    export_dir = tmp_path / "exports"
    export_dir.mkdir()
    folder = export_dir / minilm_export.folder.name
    settings = _settings(export_dir)
    results: list[OnnxExport] = []

    def export() -> None:
        results.append(ensure_export(resolve_model(MINILM, settings), export_dir, settings))

    waiter = threading.Thread(target=export)
    # The lock another process holds while it exports this model into export_dir.
    with FileLock(f"{folder}.lock"):
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive()
        assert not folder.exists()
        shutil.copytree(minilm_export.folder, folder)
        finished = (folder / MANIFEST_FILE).stat().st_mtime_ns
    waiter.join(timeout=60)

    assert [result.folder for result in results] == [folder]
    assert (folder / MANIFEST_FILE).stat().st_mtime_ns == finished
    assert not list(export_dir.glob(".*.partial"))


def test_manifest_records_the_model_and_the_int8_check(minilm_export: OnnxExport) -> None:
    manifest = json.loads((minilm_export.folder / MANIFEST_FILE).read_text(encoding="utf-8"))

    assert (manifest["model"], manifest["dimension"], manifest["max_seq_length"]) == (
        MINILM,
        384,
        256,
    )
    assert manifest["input_names"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["int8_accepted"] is True
    assert manifest["int8_check"]["min_cosine"] >= MIN_INT8_COSINE
    assert manifest["float_check"]["min_cosine"] >= 0.999
    assert set(manifest["versions"]) >= {"torch", "onnxruntime", "sentence-transformers"}


def test_minilm_graph_runs_on_fused_transformer_operators(minilm_export: OnnxExport) -> None:
    """MiniLM's 6 layers each become one Attention and one BiasGelu operator of ONNX Runtime;
    the residual adds stay apart from their LayerNormalization (SkipLayerNormalization is
    slower on a CPU). The int8 file runs the attention as QAttention."""
    fused = minilm_export.manifest.fused_operators
    assert fused["Attention"] == 6
    assert fused["BiasGelu"] == 6
    assert fused["LayerNormalization"] == 12
    assert "SkipLayerNormalization" not in fused
    graphs = {
        path: onnx.load(str(path)).graph
        for path in (minilm_export.float_model, minilm_export.int8_model)
    }
    for graph in graphs.values():
        operators = {node.op_type for node in graph.node}
        assert {"BiasGelu", "LayerNormalization"} <= operators
        assert not {"Softmax", "SkipLayerNormalization"} & operators
    float_graph = graphs[minilm_export.float_model]
    assert "Attention" in {node.op_type for node in float_graph.node}
    int8_operators = Counter(node.op_type for node in graphs[minilm_export.int8_model].node)
    assert int8_operators["QAttention"] == 6
    assert int8_operators["Attention"] == 0


def test_int8_search_row_scales_or_keeps_in_float_only_the_damaging_projections(
    minilm_export: OnnxExport, tmp_path: Path
) -> None:
    """Of MiniLM's 12 projections beside the attention and the up-projections, the search puts
    those whose ONNX Runtime int8 lowers the probes' agreement with the float model too much
    in row-scaled int8, or keeps them in float when that loses too much as well. The manifest
    names both, and they are the int8 file's only float and row-scaled MatMuls; a row-scaled
    one put in ONNX Runtime's int8 instead costs more than the allowed drop."""
    kept = minilm_export.manifest.int8_kept_float
    row_scaled = minilm_export.manifest.int8_row_scaled
    int8_graph = onnx.load(str(minilm_export.int8_model)).graph
    float_matmuls = {node.name for node in int8_graph.node if node.op_type == "MatMul"}
    row_scaled_products = {
        node.name.split("/row_scaled/")[0]
        for node in int8_graph.node
        if node.op_type == "MatMulInteger" and "/row_scaled/" in node.name
    }
    assert set(kept) == float_matmuls
    assert set(row_scaled) == row_scaled_products
    assert row_scaled, "MiniLM has projections that lose too much with one scale per tensor"
    assert len(row_scaled) + len(kept) < 12
    operators = Counter(node.op_type for node in int8_graph.node)
    assert operators["MatMulInteger"] == 18 - len(kept)

    float_model = load_onnx_model(minilm_export, variant="onnx", parallel_runs=2)
    float_probes = float_model.embed(PROBE_TEXTS)

    def agreement(model_file: Path) -> float:
        spec = minilm_export.manifest.tokenizer
        onnx_model = open_onnx_model(
            model_file,
            minilm_export.folder,
            spec,
            dimension=384,
            variant="onnx-int8",
            parallel_runs=2,
        )
        return compare_embeddings(float_probes, onnx_model.embed(PROBE_TEXTS)).mean_cosine

    quantized = [
        node.name
        for node in onnx.load(str(minilm_export.float_model)).graph.node
        if node.op_type in ("MatMul", "Attention") and node.name not in [*kept, *row_scaled]
    ]
    chosen = agreement(minilm_export.int8_model)
    widened = tmp_path / "widened.onnx"
    quantize_nodes(minilm_export.float_model, widened, [*quantized, row_scaled[0]], row_scaled[1:])
    assert chosen - agreement(widened) > MAX_MEAN_COSINE_DROP


def test_exporting_loaded_weights_leaves_their_attention_as_it_was(
    backends: dict[str, Embedder], tmp_path: Path
) -> None:
    """The export traces attention in its "eager" form; the torch model it borrowed keeps
    its own (faster) attention for the torch embedder that shares it."""
    loaded = backends["torch"]._loaded  # type: ignore[attr-defined]
    transformer = loaded.model[0].auto_model
    before = transformer.config._attn_implementation
    settings = _settings(tmp_path)

    settings.int8_search_seconds = 0  # no search: the attention and up-projections in int8

    export = ensure_export(resolve_model(MINILM, settings), tmp_path, settings, loaded=loaded)

    assert export.manifest.fused_operators["Attention"] == 6
    assert transformer.config._attn_implementation == before != "eager"
    assert len(export.manifest.int8_kept_float) == 12
    assert export.manifest.int8_row_scaled == []
    int8_operators = Counter(node.op_type for node in onnx.load(str(export.int8_model)).graph.node)
    assert (int8_operators["MatMulInteger"], int8_operators["QAttention"]) == (6, 6)


def test_an_export_dir_that_is_a_file_falls_back_to_torch_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_folder = tmp_path / "exports"
    not_a_folder.write_text("a file, not a folder", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="kb_server.embedding"):
        embedder = EmbedderCache().get(_settings(not_a_folder))

    assert isinstance(embedder, SentenceTransformerEmbedder)
    warnings = _our_warnings(caplog)
    assert len(warnings) == 1
    assert MINILM in warnings[0].getMessage()
    assert embedder.embed_query("Where did the cat sit?").shape == (384,)


def test_a_rejected_int8_model_runs_as_float_with_one_warning(
    minilm_export: OnnxExport, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A copy of the export whose int8 file is per-tensor quantized everywhere (the setting
    # that gave cosines of 0.89), judged by the same guard as at export.
    export_dir = tmp_path / "exports"
    folder = export_dir / minilm_export.folder.name
    shutil.copytree(minilm_export.folder, folder)
    quantize_dynamic(
        str(folder / "model.onnx"),
        str(folder / "model_int8.onnx"),
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused operators' outputs
    )
    manifest = minilm_export.manifest
    probe_vectors = [
        open_onnx_model(
            folder / file_name,
            folder,
            manifest.tokenizer,
            dimension=manifest.dimension,
            variant=variant,
            parallel_runs=2,
        ).embed(PROBE_TEXTS)
        for variant, file_name in FILES_BY_VARIANT
    ]
    check = compare_embeddings(*probe_vectors)
    assert not check.accepted(MIN_INT8_COSINE)
    rejected = manifest.model_copy(update={"int8_check": check, "int8_accepted": False})
    (folder / MANIFEST_FILE).write_text(rejected.model_dump_json(), encoding="utf-8")
    assert read_export(folder) is not None

    with caplog.at_level(logging.WARNING, logger="kb_server.embedding"):
        embedder = EmbedderCache().get(_settings(export_dir))

    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.backend == "onnx"
    warnings = _our_warnings(caplog)
    assert len(warnings) == 1
    assert MINILM in warnings[0].getMessage()


def test_a_process_loading_an_existing_export_never_imports_torch(
    minilm_export: OnnxExport, model_export_dir: Path
) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from kb_server.embedding import get_embedder\n"
        "from kb_server.settings import EmbeddingSettings\n"
        f"settings = EmbeddingSettings(model={MINILM!r}, fallback_model=None, device='cpu',\n"
        f"    export_dir=Path({str(model_export_dir)!r}))\n"
        "embedder = get_embedder(settings)\n"
        "assert embedder.embed_query('hello').shape == (384,)\n"
        "print(type(embedder).__name__, 'torch' in sys.modules, 'sentence_transformers' in "
        "sys.modules)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["OnnxEmbedder", "False", "False"]
