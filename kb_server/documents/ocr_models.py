"""Faster copies of RapidOCR's detection and recognition models, made once per machine.

``ocr.model_variant`` picks what the OCR engine loads:
- ``original``: the ONNX files bundled with rapidocr-onnxruntime;
- ``optimized``: those graphs rewritten exactly (kb_server/documents/ocr_graph.py);
- ``int8`` (default): the optimized detector, and the optimized recognizer with its backbone's
  ungrouped convolutions in int8 (ONNX Runtime static quantization, per-channel weights).
  Activation ranges come from running the optimized float models over the committed images in
  ``ocr_calibration/`` (made by scripts/make_ocr_calibration.py), so no font or download is
  needed. It is used only when it reads those images as the float models do (character
  agreement at least ``MIN_INT8_AGREEMENT`` on each); otherwise the optimized pair is, with a
  warning. The detector stays in float: quantized, it lost whole text lines of a scanned page,
  and at the detector's limit (736 pixels first) it is the smaller cost.

The files live in ``<ocr.export_dir>/ocr-<fingerprint>/`` with a manifest; the fingerprint
covers the source models, the calibration images, the library versions and this module's
format, so a change to any of them makes a new folder; it is built once
(kb_server/model_exports.py: aside, then renamed into place under a file lock).
When anything goes wrong the engine runs the original models and a warning says why.
"""

from __future__ import annotations

import difflib
import logging
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
from filelock import Timeout
from numpy.typing import NDArray
from pydantic import BaseModel, ValidationError

from kb_server.fingerprints import digest, file_sha256, installed_versions
from kb_server.model_exports import build_once
from kb_server.settings import DEFAULT_KB_ROOT, OcrSettings, default_export_dir

logger = logging.getLogger(__name__)

# Bump when the files or the manifest change: older folders are then rebuilt.
FORMAT_VERSION: Final = 2  # 2: calibrated on text lines at their own width
CALIBRATION_DIR: Final = Path(__file__).resolve().parent / "ocr_calibration"
# int8 text vs float text on each calibration image (difflib ratio, 1.0 = identical).
MIN_INT8_AGREEMENT: Final = 0.98
BUILD_LOCK_TIMEOUT_S: Final = 300.0
MANIFEST_FILE: Final = "manifest.json"
DET_FILE: Final = "det_optimized.onnx"
REC_FILE: Final = "rec_optimized.onnx"
REC_INT8_FILE: Final = "rec_int8.onnx"
_VERSIONED_PACKAGES: Final = ("onnxruntime", "onnx", "rapidocr-onnxruntime")
_QUANTIZED_OPS: Final = ["Conv"]
# Recognizer inputs kept for calibration (evenly spaced over the recorded text lines).
_MAX_REC_CALIBRATION_INPUTS: Final = 96

Variant = Literal["original", "optimized", "int8"]
# RapidOCR's config.yaml sections of the models made here, by role.
_SECTIONS: Final = {"det": "Det", "rec": "Rec"}


class OcrEngine(Protocol):
    def __call__(self, img: NDArray[np.uint8]) -> tuple[list[list[Any]] | None, Any]: ...


# Builds an engine over a detection and a recognition model file (None: RapidOCR's own).
EngineFactory = Callable[[Path | None, Path | None], OcrEngine]


@dataclass(frozen=True)
class OcrModelFiles:
    """The model files an engine should load; None means RapidOCR's bundled file."""

    variant: Variant
    det: Path | None = None
    rec: Path | None = None


class OcrModelManifest(BaseModel):
    """manifest.json of one folder of built models."""

    format_version: int
    fingerprint: str
    sources: dict[str, str]
    versions: dict[str, str]
    rewrites: dict[str, str]
    calibration_inputs: dict[str, int]
    # Lowest int8-vs-float character agreement over the calibration images.
    int8_agreement: float
    int8_accepted: bool
    build_seconds: float
    created_at: str


class OcrModelBuildError(Exception):
    """The optimized or int8 models could not be made; the original ones still work."""


def source_models() -> dict[str, Path]:
    """RapidOCR's bundled detection and recognition model files, by role ("det", "rec")."""
    import rapidocr_onnxruntime
    import yaml

    package = Path(rapidocr_onnxruntime.__file__).resolve().parent
    config = yaml.safe_load((package / "config.yaml").read_text(encoding="utf-8"))
    return {role: package / config[section]["model_path"] for role, section in _SECTIONS.items()}


def ocr_model_files(settings: OcrSettings, build_engine: EngineFactory) -> OcrModelFiles:
    """The files for ``settings.model_variant``, built now if this machine has none yet.

    Never raises for a failed build: it logs a warning and returns the original models.
    """
    if settings.model_variant == "original":
        return OcrModelFiles("original")
    try:
        folder, manifest = _ensure_built(settings, build_engine)
    except (OcrModelBuildError, OSError) as error:
        logger.warning(
            "OCR runs RapidOCR's original models (slower): the %s models could not be made: %s",
            settings.model_variant,
            error,
        )
        return OcrModelFiles("original")
    if settings.model_variant == "int8" and manifest.int8_accepted:
        return OcrModelFiles("int8", folder / DET_FILE, folder / REC_INT8_FILE)
    if settings.model_variant == "int8":
        logger.warning(
            "OCR runs the float models: the int8 ones read the calibration images differently "
            "(agreement %.3f < %.2f)",
            manifest.int8_agreement,
            MIN_INT8_AGREEMENT,
        )
    return OcrModelFiles("optimized", folder / DET_FILE, folder / REC_FILE)


def models_folder(settings: OcrSettings) -> Path:
    """``<export_dir>/ocr-<fingerprint>`` for the installed models and libraries."""
    export_dir = settings.export_dir or default_export_dir(DEFAULT_KB_ROOT)
    return export_dir / f"ocr-{_fingerprint()}"


def _fingerprint() -> str:
    description = {
        "format": FORMAT_VERSION,
        "sources": {role: file_sha256(path) for role, path in source_models().items()},
        "calibration": {path.name: file_sha256(path) for path in calibration_images()},
        "versions": installed_versions(_VERSIONED_PACKAGES),
    }
    return digest(description)


def calibration_images() -> list[Path]:
    return sorted(CALIBRATION_DIR.glob("*.png"))


def read_manifest(folder: Path) -> OcrModelManifest | None:
    """The manifest of a complete folder, or None when there is none or it is unusable."""
    try:
        manifest = OcrModelManifest.model_validate_json(
            (folder / MANIFEST_FILE).read_text(encoding="utf-8")
        )
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValidationError) as error:
        logger.warning("Ignoring the OCR models in %s: unreadable manifest (%s)", folder, error)
        return None
    if manifest.format_version != FORMAT_VERSION or not all(
        (folder / name).is_file() for name in (DET_FILE, REC_FILE, REC_INT8_FILE)
    ):
        logger.warning("Ignoring the OCR models in %s: outdated or incomplete", folder)
        return None
    return manifest


def _ensure_built(
    settings: OcrSettings, build_engine: EngineFactory
) -> tuple[Path, OcrModelManifest]:
    folder = models_folder(settings)

    def write(staging: Path) -> OcrModelManifest:
        started = time.perf_counter()
        try:
            manifest = _write_models(staging, folder.name.removeprefix("ocr-"), build_engine)
        except OcrModelBuildError:
            raise
        except Exception as error:  # onnx / ONNX Runtime raise many kinds; none may break OCR
            raise OcrModelBuildError(f"{type(error).__name__}: {error}") from error
        manifest.build_seconds = round(time.perf_counter() - started, 2)
        (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
        logger.info(
            "Built OCR models in %s (%.1f s): rewrites %s; int8 %s (agreement %.3f)",
            folder,
            manifest.build_seconds,
            manifest.rewrites,
            "accepted" if manifest.int8_accepted else "REJECTED",
            manifest.int8_agreement,
        )
        return manifest

    try:
        manifest = build_once(folder, read_manifest, write, lock_timeout_s=BUILD_LOCK_TIMEOUT_S)
    except Timeout as error:
        raise OcrModelBuildError(
            f"another process held {error.lock_file} for over {BUILD_LOCK_TIMEOUT_S:.0f} s"
        ) from error
    return folder, manifest


def _write_models(staging: Path, fingerprint: str, build_engine: EngineFactory) -> OcrModelManifest:
    import onnx

    from kb_server.documents.ocr_graph import optimize_graph

    sources = source_models()
    rewrites = {}
    optimized: dict[str, onnx.ModelProto] = {}
    for role, source in sources.items():
        optimized[role], counts = optimize_graph(onnx.load(str(source)))
        rewrites[role] = counts.describe()
    det_path, rec_path = staging / DET_FILE, staging / REC_FILE
    onnx.save(optimized["det"], str(det_path))
    onnx.save(optimized["rec"], str(rec_path))

    images = [_decode(path) for path in calibration_images()]
    if not images:
        raise OcrModelBuildError(f"no calibration images in {CALIBRATION_DIR}")
    float_engine = build_engine(det_path, rec_path)
    recognizer_inputs = _record_recognizer_inputs(float_engine, images)
    _quantize(optimized["rec"], rec_path, staging / REC_INT8_FILE, recognizer_inputs)

    int8_engine = build_engine(det_path, staging / REC_INT8_FILE)
    agreement = min(
        _agreement(_read(float_engine, image), _read(int8_engine, image)) for image in images
    )
    return OcrModelManifest(
        format_version=FORMAT_VERSION,
        fingerprint=fingerprint,
        sources={role: str(path) for role, path in sources.items()},
        versions=installed_versions(_VERSIONED_PACKAGES),
        rewrites=rewrites,
        calibration_inputs={"rec": len(recognizer_inputs)},
        int8_agreement=round(agreement, 4),
        int8_accepted=agreement >= MIN_INT8_AGREEMENT,
        build_seconds=0.0,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


class _RecordingSession:
    """Stands in for one of RapidOCR's model sessions and keeps a copy of every input."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.inputs: list[NDArray[np.float32]] = []

    def __call__(self, batch: NDArray[np.float32]) -> Any:
        self.inputs.append(batch.copy())
        return self._session(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _record_recognizer_inputs(
    engine: Any, images: list[NDArray[np.uint8]]
) -> list[NDArray[np.float32]]:
    """The text-line batches the recognizer is given while ``engine`` reads ``images``."""
    try:
        recognizer = engine.text_rec
        session = recognizer.session
    except AttributeError as error:
        raise OcrModelBuildError(
            f"this rapidocr-onnxruntime is laid out differently than expected ({error})"
        ) from error
    recorder = _RecordingSession(session)
    recognizer.session = recorder
    try:
        for image in images:
            engine(image)
    finally:
        recognizer.session = session
    step = max(1, len(recorder.inputs) // _MAX_REC_CALIBRATION_INPUTS)
    return recorder.inputs[::step]


def _quantize(model: Any, source: Path, target: Path, inputs: list[NDArray[np.float32]]) -> None:
    """Quantize ``model`` (saved at ``source``) into ``target``, calibrated on ``inputs``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not inputs:
        raise OcrModelBuildError(f"no calibration inputs reached {source.name}")
    input_name = model.graph.input[0].name

    class _Inputs(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches: Iterator[NDArray[np.float32]] = iter(inputs)

        def get_next(self) -> dict[str, NDArray[np.float32]] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    quantize_static(
        str(source),
        str(target),
        _Inputs(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=_QUANTIZED_OPS,
        nodes_to_quantize=_backbone_convolutions(model),
        calibrate_method=CalibrationMethod.MinMax,
    )
    quantized = onnx.load(str(target))
    # The recognizer's character list lives in the model's metadata; quantization drops it.
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)
    onnx.save(quantized, str(target))


def _backbone_convolutions(model: Any) -> list[str]:
    """The recognizer's convolutions that run in int8: the ungrouped ones before its sequence
    encoder (the first MatMul), except the very first, which sees raw pixels.

    Measured on PP-OCRv4: the depthwise (grouped) convolutions in int8 made it read "一" as
    "—" in short words; kept in float with their activation fused, they also cost less than
    the conversions around an int8 version (the recognizer ran 15% faster without them).
    """
    names = []
    for node in model.graph.node:
        if node.op_type == "MatMul":
            break
        groups = next((attribute.i for attribute in node.attribute if attribute.name == "group"), 1)
        if node.op_type == "Conv" and groups == 1:
            names.append(node.name)
    return names[1:]


def _read(engine: OcrEngine, image: NDArray[np.uint8]) -> str:
    """The characters read, NFKC-normalized, without whitespace: the recognizer's spacing
    between words varies with tiny changes and the reading order puts its own spaces."""
    result, _ = engine(image)
    text = "".join(str(entry[1]) for entry in result or [])
    return "".join(unicodedata.normalize("NFKC", text).split())


def _agreement(expected: str, actual: str) -> float:
    if not expected and not actual:
        return 1.0
    return difflib.SequenceMatcher(None, expected, actual, autojunk=False).ratio()


def _decode(path: Path) -> NDArray[np.uint8]:
    from kb_server.documents.ocr import decode_image

    return decode_image(path.read_bytes())
