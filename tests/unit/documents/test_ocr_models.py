"""The optimized and int8 OCR models: exact graph rewrites, the once-per-machine build, the
int8 quality gate and the fallbacks, and the detector's size limit."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw, ImageFont

from kb_server.documents.ocr import RapidOcrReader
from kb_server.documents.ocr_graph import optimize_graph
from kb_server.documents.ocr_models import (
    MANIFEST_FILE,
    OcrModelFiles,
    models_folder,
    ocr_model_files,
    read_manifest,
    source_models,
)
from kb_server.settings import OcrSettings, load_settings
from tests.unit.documents.rendering import image_bytes, render_text_image

LINES = ["知识库问答系统", "Offline RAG 2024"]


def _run(model: onnx.ModelProto, inputs: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options)
    output: np.ndarray = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    return output


def _op_types(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node if node.op_type != "Constant"]


def _small_backbone() -> onnx.ModelProto:
    """conv (padded) -> affine -> spelled-out hard-swish -> affine -> 1x1 conv -> relu ->
    affine -> padded 3x3 conv, with PaddleOCR's scalar constants."""
    rng = np.random.default_rng(3)
    initializers = []

    def constant(name: str, value: Any) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def conv(name: str, source: str, kernel: int, pad: int) -> onnx.NodeProto:
        weights = constant(f"{name}_w", rng.normal(size=(4, 4, kernel, kernel)))
        bias = constant(f"{name}_b", rng.normal(size=4))
        return helper.make_node("Conv", [source, weights, bias], [name], name=name, pads=[pad] * 4)

    def scalar_affine(name: str, source: str, scale: float, shift: float) -> list[onnx.NodeProto]:
        return [
            helper.make_node("Mul", [constant(f"{name}_a", [scale]), source], [f"{name}_m"]),
            helper.make_node("Add", [f"{name}_m", constant(f"{name}_b", [shift])], [name]),
        ]

    nodes = [
        conv("conv1", "x", 3, 1),
        *scalar_affine("affine1", "conv1", 1.3, -0.2),
        helper.make_node("Add", ["affine1", constant("three", [3.0])], ["plus3"]),
        helper.make_node(
            "Clip", ["plus3", constant("zero", 0.0), constant("six", 6.0)], ["clipped"]
        ),
        helper.make_node("Mul", ["affine1", "clipped"], ["times"]),
        helper.make_node("Div", ["times", constant("six_divisor", [6.0])], ["swish"]),
        *scalar_affine("affine2", "swish", 0.7, 0.4),
        conv("conv2", "affine2", 1, 0),
        helper.make_node("Relu", ["conv2"], ["relu"]),
        *scalar_affine("affine3", "relu", 0.9, 0.5),
        conv("y", "affine3", 3, 1),
    ]
    graph = helper.make_graph(
        nodes,
        "backbone",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 9, 9])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])


def test_rewrites_fuse_hard_swish_and_fold_affines_without_changing_outputs() -> None:
    model = _small_backbone()
    inputs = np.random.default_rng(5).normal(size=(1, 4, 9, 9)).astype(np.float32)

    optimized, counts = optimize_graph(model)

    assert (counts.hard_swish, counts.affine_after_conv, counts.affine_before_conv) == (1, 1, 1)
    # The affine in front of the padded convolution stays: folding it would change the borders.
    assert _op_types(optimized) == ["Conv", "HardSwish", "Conv", "Relu", "Mul", "Add", "Conv"]
    np.testing.assert_allclose(_run(optimized, inputs), _run(model, inputs), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("role", "shape"), [("det", (1, 3, 320, 480)), ("rec", (1, 3, 48, 400))])
def test_rewritten_rapidocr_models_give_the_same_outputs(role: str, shape: tuple[int, ...]) -> None:
    original = onnx.load(str(source_models()[role]))
    inputs = np.random.default_rng(11).uniform(-1, 1, size=shape).astype(np.float32)

    optimized, counts = optimize_graph(original)

    assert counts.hard_swish > 0
    assert counts.affine_after_conv > 0
    assert "Clip" not in _op_types(optimized)
    assert len(optimized.graph.node) < len(original.graph.node) / 2
    np.testing.assert_allclose(_run(optimized, inputs), _run(original, inputs), atol=2e-3)


@pytest.fixture(scope="module")
def built_models() -> tuple[OcrSettings, OcrModelFiles]:
    """The run's shared build (tests/conftest.py points ocr.export_dir at one folder)."""
    settings = load_settings().ocr
    return settings, ocr_model_files(settings, RapidOcrReader(settings)._build_engine)


def test_int8_models_are_built_once_and_used_when_they_agree(
    built_models: tuple[OcrSettings, OcrModelFiles],
) -> None:
    settings, files = built_models
    folder = models_folder(settings)
    manifest_written = (folder / MANIFEST_FILE).stat().st_mtime_ns

    again = ocr_model_files(settings, RapidOcrReader(settings)._build_engine)

    manifest = read_manifest(folder)
    assert manifest is not None
    assert manifest.int8_accepted
    assert manifest.int8_agreement >= 0.98
    assert (
        files
        == again
        == OcrModelFiles("int8", folder / "det_optimized.onnx", folder / "rec_int8.onnx")
    )
    assert (folder / MANIFEST_FILE).stat().st_mtime_ns == manifest_written
    assert "DequantizeLinear" in _op_types(onnx.load(str(folder / "rec_int8.onnx")))
    # The recognizer's character list survives quantization.
    keys = {entry.key for entry in onnx.load(str(folder / "rec_int8.onnx")).metadata_props}
    assert "character" in keys


def test_rejected_int8_models_fall_back_to_the_optimized_ones(
    built_models: tuple[OcrSettings, OcrModelFiles],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, _ = built_models
    copied = tmp_path / models_folder(settings).name
    shutil.copytree(models_folder(settings), copied)
    manifest = json.loads((copied / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest.update(int8_accepted=False, int8_agreement=0.5)
    (copied / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    moved = settings.model_copy(update={"export_dir": tmp_path})

    with caplog.at_level(logging.WARNING):
        files = ocr_model_files(moved, RapidOcrReader(moved)._build_engine)

    assert files == OcrModelFiles(
        "optimized", copied / "det_optimized.onnx", copied / "rec_optimized.onnx"
    )
    assert "int8 ones read the calibration images differently" in caplog.text


def test_a_damaged_manifest_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text("{not json", encoding="utf-8")

    assert read_manifest(tmp_path) is None


def test_unwritable_export_dir_falls_back_to_the_original_models(
    tmp_path: Path, cjk_font_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_folder = tmp_path / "exports"
    not_a_folder.write_text("a file where the folder should be", encoding="utf-8")
    reader = RapidOcrReader(OcrSettings(export_dir=not_a_folder))
    png = image_bytes(render_text_image(LINES, cjk_font_path), "PNG")

    with caplog.at_level(logging.WARNING):
        text = reader.read_image(png)

    assert text.splitlines() == LINES
    assert reader.model_variant == "original"
    assert "original models" in caplog.text


def test_original_variant_reads_with_the_bundled_models_and_builds_nothing(
    tmp_path: Path, cjk_font_path: Path
) -> None:
    reader = RapidOcrReader(OcrSettings(model_variant="original", export_dir=tmp_path))
    png = image_bytes(render_text_image(LINES, cjk_font_path), "PNG")

    assert reader.read_image(png).splitlines() == LINES
    assert reader.model_variant == "original"
    assert list(tmp_path.iterdir()) == []


def test_detector_sees_images_scaled_to_the_limit_of_their_longer_side(
    built_models: tuple[OcrSettings, OcrModelFiles], cjk_font_path: Path
) -> None:
    settings, _ = built_models
    reader = RapidOcrReader(settings.model_copy(update={"det_limit_side_len": 960}))
    reader.warm_up()
    detector = reader._engine.text_det  # type: ignore[union-attr]
    shapes = []
    run_detector = detector.infer

    def recording(batch: np.ndarray) -> Any:
        shapes.append(batch.shape)
        return run_detector(batch)

    detector.infer = recording
    screen = Image.new("RGB", (1920, 1080), "white")
    draw = ImageDraw.Draw(screen)
    font = ImageFont.truetype(str(cjk_font_path), 30)
    for index, line in enumerate(LINES):
        draw.text((120, 200 + 80 * index), line, font=font, fill="black")

    text = reader.read_image(image_bytes(screen, "PNG"))

    assert text.splitlines() == LINES
    assert len(shapes) == 1
    assert max(shapes[0][2:]) <= 960
