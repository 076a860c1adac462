"""The machine: Python, installed packages, torch devices and free disk."""

from __future__ import annotations

import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet

from kb_server.devices import torch_device
from kb_server.doctor.base import CheckResult, Status, worst
from kb_server.settings import Settings

DISTRIBUTION = "kb-server"
GIB = 1024**3
# Below this the next index build or model copy is likely to fail part-way.
DISK_FAIL_BELOW_GIB = 1.0
DISK_WARN_BELOW_GIB = 5.0


def check_python() -> CheckResult:
    version = platform.python_version()
    wanted = _requires_python()
    if wanted is not None and version not in wanted:
        return CheckResult("python", "FAIL", f"{version} at {sys.executable}; needs {wanted}")
    return CheckResult("python", "ok", f"{version} at {sys.executable}")


def _requires_python() -> SpecifierSet | None:
    try:
        specs = metadata.metadata(DISTRIBUTION).get_all("Requires-Python") or []
    except metadata.PackageNotFoundError:
        return None
    return SpecifierSet(specs[0]) if specs else None


def needed_extras(settings: Settings) -> dict[str, Status]:
    """The optional dependency groups this configuration uses, and how bad a missing one is."""
    extras: dict[str, Status] = {"ui": "warn"}
    if settings.ocr.enabled:
        extras["ocr"] = "warn"
    if settings.local_models:
        extras["llm"] = "FAIL"
    url = settings.database_url or ""
    if settings.vector_store.default_type == "pg" or url.startswith("postgresql"):
        extras["pg"] = "FAIL"
    return extras


def check_packages(settings: Settings) -> CheckResult:
    """Every dependency of kb-server installed at a version it accepts, extras in use too."""
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return CheckResult(
            "packages", "FAIL", f"{DISTRIBUTION} is not installed: run `pip install -e .`"
        )
    extras = needed_extras(settings)
    problems: list[tuple[Status, str]] = []
    checked = 0
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        severity = _severity(requirement, extras)
        if severity is None:
            continue
        checked += 1
        problem = _problem(requirement)
        if problem is not None:
            problems.append((severity, problem))
    if not problems:
        return CheckResult(
            "packages", "ok", f"{checked} packages (extras: {', '.join(extras)}) at versions met"
        )
    return CheckResult(
        "packages",
        worst(severity for severity, _ in problems),
        "; ".join(problem for _, problem in problems),
    )


def _severity(requirement: Requirement, extras: dict[str, Status]) -> Status | None:
    """FAIL for a core dependency, the extra's severity for one in use, None when unused."""
    marker = requirement.marker
    if marker is None:
        return "FAIL"
    if marker.evaluate({"extra": ""}):
        return "FAIL"
    for extra, severity in extras.items():
        if marker.evaluate({"extra": extra}):
            return severity
    return None


def _problem(requirement: Requirement) -> str | None:
    extra = _extra_of(requirement)
    hint = f" (pip install 'kb-server[{extra}]')" if extra else ""
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return f"{requirement.name} missing{hint}"
    if version not in requirement.specifier:
        return f"{requirement.name} {version} does not meet {requirement.specifier}{hint}"
    return None


def _extra_of(requirement: Requirement) -> str | None:
    marker = str(requirement.marker or "")
    if "extra ==" not in marker:
        return None
    return marker.split("extra ==", 1)[1].strip().strip("'\"")


def check_devices(settings: Settings) -> CheckResult:
    """The torch device each model part asks for, and whether torch can use it here."""
    try:
        import torch
    except ImportError as error:
        return CheckResult("torch device", "FAIL", f"torch cannot be imported: {error}")
    requested = {
        "embedding": settings.embedding.device,
        "reranker": settings.retrieval.reranker.device,
        **{f"LLM {name}": model.device for name, model in settings.local_models.items()},
    }
    found: list[str] = []
    failed: list[str] = []
    for part, device in requested.items():
        try:
            found.append(f"{part}: {torch_device(device)} ({device})")
        except ValueError:
            failed.append(f"{part}: {device} requested, not available")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    detail = f"torch {torch.__version__}, {gpu}; " + "; ".join(failed + found)
    return CheckResult("torch device", "FAIL" if failed else "ok", detail)


def check_disk(settings: Settings) -> CheckResult:
    """Free space where knowledge bases are written."""
    folder = _existing_parent(settings.kb_root)
    free_gib = shutil.disk_usage(folder).free / GIB
    detail = f"{free_gib:.1f} GiB free at {folder}"
    if free_gib < DISK_FAIL_BELOW_GIB:
        return CheckResult("free disk", "FAIL", f"{detail} (needs {DISK_FAIL_BELOW_GIB} GiB)")
    if free_gib < DISK_WARN_BELOW_GIB:
        return CheckResult("free disk", "warn", f"{detail} (less than {DISK_WARN_BELOW_GIB} GiB)")
    return CheckResult("free disk", "ok", detail)


def _existing_parent(path: Path) -> Path:
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
