"""An app over a temp KB root, the offline MiniLM embedder and the tiny Qwen2 worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kb_server.api.app import create_app
from kb_server.settings import Settings, load_settings
from tests.conftest import TINY_QWEN_MODEL_NAME, BackendOptions

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def api_settings(
    tmp_path: Path, tiny_qwen_dir: Path, llm_worker: str, backend_options: BackendOptions
) -> Settings:
    return load_settings(
        kb_root=tmp_path / "kb_root",
        embedding={"model": MINILM},
        local_models={
            TINY_QWEN_MODEL_NAME: {"path": tiny_qwen_dir, "port": urlparse(llm_worker).port}
        },
        llm={"max_retries": 0},
        **backend_options,
    )


@pytest.fixture
def app(api_settings: Settings) -> FastAPI:
    return create_app(api_settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client
