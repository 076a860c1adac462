"""Configured models, found offline: embedding, reranker, local LLMs and the OCR models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kb_server.doctor.base import CheckResult
from kb_server.embedding.export_manifest import export_folder, read_export
from kb_server.embedding.resolution import (
    ResolvedModel,
    how_to_provide,
    hub_access_allowed,
    resolve_model,
)
from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.settings import EmbeddingSettings, Settings

OCR_PACKAGE = "rapidocr_onnxruntime"


def find_offline(name: str, settings: EmbeddingSettings) -> str | None:
    """Where ``name`` is on this machine (as the embedder and reranker look), or None."""
    resolved = _resolve_offline(name, settings)
    return None if resolved is None else resolved.location


def _resolve_offline(name: str, settings: EmbeddingSettings) -> ResolvedModel | None:
    try:
        return resolve_model(name, settings, hub_allowed=False)
    except EmbeddingModelUnavailableError:
        return None


def missing_model_detail(name: str, settings: EmbeddingSettings) -> str:
    online = " (hub access is on: it would be downloaded at first use)"
    return (
        f"not found offline{online if hub_access_allowed() else ''}; fetch with: "
        f"{how_to_provide(name, settings)}"
    )


def check_embedding_model(settings: Settings) -> CheckResult:
    embedding = settings.embedding
    name = embedding.model
    check = f"embedding model {name}"
    resolved = _resolve_offline(name, embedding)
    if resolved is not None:
        return CheckResult(
            check, "ok", f"{resolved.location}; {_backend_detail(resolved, embedding)}"
        )
    missing = missing_model_detail(name, embedding)
    fallback = embedding.fallback_model
    fallback_resolved = _resolve_offline(fallback, embedding) if fallback else None
    if fallback_resolved is not None:
        return CheckResult(
            check,
            "warn",
            f"{missing.rstrip('.')}; meanwhile new KBs use {fallback} "
            f"({fallback_resolved.location}; {_backend_detail(fallback_resolved, embedding)})",
        )
    return CheckResult(check, "FAIL", missing)


def _backend_detail(resolved: ResolvedModel, settings: EmbeddingSettings) -> str:
    """The embedding backend, and for ONNX whether the export is made (and int8 accepted)."""
    backend = settings.backend
    if backend == "torch" or settings.export_dir is None:
        return f"backend {backend}"
    export = read_export(export_folder(resolved, settings.export_dir))
    if export is None:
        return f"backend {backend} (CPU; exported under {settings.export_dir} at first use)"
    if backend == "onnx-int8" and not export.manifest.int8_accepted:
        return (
            f"backend {backend}, but int8 was rejected at export "
            f"({export.manifest.int8_check.describe()}): runs as onnx from {export.folder}"
        )
    return f"backend {backend} (CPU; export {export.folder})"


def check_reranker(settings: Settings) -> CheckResult:
    name = settings.retrieval.reranker.model
    if name is None:
        return CheckResult("reranker", "ok", "off (retrieval.reranker.model is null)")
    check = f"reranker {name}"
    location = find_offline(name, settings.embedding)
    if location is not None:
        return CheckResult(check, "ok", location)
    # Search works without it: results keep their fused order.
    return CheckResult(
        check, "warn", f"reranking is off: {missing_model_detail(name, settings.embedding)}"
    )


def check_local_llms(settings: Settings) -> list[CheckResult]:
    results = []
    for name, model in settings.local_models.items():
        check = f"local LLM {name}"
        path = model.path.expanduser()
        problem = _model_directory_problem(path)
        if problem is None:
            results.append(CheckResult(check, "ok", str(path.absolute())))
            continue
        results.append(
            CheckResult(
                check,
                "FAIL",
                f"{problem}; fetch with: on a machine with internet access run `hf download "
                f"<hub id> --local-dir {path.name}`, copy the folder here and set "
                f"local_models.{name}.path to it",
            )
        )
    return results


def _model_directory_problem(path: Path) -> str | None:
    try:
        from kb_server.llm.local_model import ModelLoadError, check_model_directory
    except ImportError as error:
        return f"cannot check {path}: {error} (pip install 'kb-server[llm]')"
    try:
        check_model_directory(path)
    except ModelLoadError as error:
        return error.message
    return None


def check_ocr(settings: Settings) -> CheckResult:
    if not settings.ocr.enabled:
        return CheckResult("OCR models", "ok", "off (ocr.enabled: false)")
    spec = importlib.util.find_spec(OCR_PACKAGE)
    if spec is None or spec.origin is None:
        return CheckResult(
            "OCR models",
            "warn",
            "rapidocr-onnxruntime is not installed: images and scanned PDF pages give no "
            "text; pip install 'kb-server[ocr]' (or set ocr.enabled: false)",
        )
    models = Path(spec.origin).parent / "models"
    found = sorted(path.name for path in models.glob("*.onnx"))
    missing = [kind for kind in ("det", "rec") if not any(f"_{kind}_" in n for n in found)]
    if missing:
        return CheckResult(
            "OCR models",
            "warn",
            f"no {' or '.join(missing)} model in {models}: reinstall rapidocr-onnxruntime",
        )
    return CheckResult("OCR models", "ok", f"{models}: {', '.join(found)}")
