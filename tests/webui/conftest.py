"""A real API (temp KB root, MiniLM, extractive answerer, tiny Qwen2) served on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from kb_server.api.app import create_app
from kb_server.settings import Settings

# The API suite's fixtures, reused: the same settings and app the API tests run against.
from tests.api.conftest import api_settings, app  # noqa: F401
from tests.servers import serve_on_loopback
from webui.api_client import ApiClient

REFUNDS = "Refunds are paid within fourteen days of the return. Returns need the receipt."
HOURS = "The warehouse opens at nine in the morning. Deliveries arrive by truck."
SHOP_FILES = {"退款 政策.txt": REFUNDS, "hours.txt": HOURS}
SHOP_KB = "shop"
UI_KEYS = ("ui-test-key-one-7d1e", "ui-test-key-two-3a94")


@pytest.fixture
def api_url(app: FastAPI) -> Iterator[str]:  # noqa: F811
    with serve_on_loopback(app, name="kb-api") as base:
        yield base


@pytest.fixture
def api_client(api_url: str) -> Iterator[ApiClient]:
    client = ApiClient(api_url, timeout_s=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def shop_kb(api_client: ApiClient) -> str:
    """A knowledge base "shop" holding two small indexed text files."""
    api_client.create_knowledge_base(SHOP_KB, description="商店")
    files = [(name, text.encode()) for name, text in SHOP_FILES.items()]
    result = api_client.upload_docs(SHOP_KB, files)
    assert result.failed_files == {}
    return SHOP_KB


@pytest.fixture
def keyed_api_url(api_settings: Settings) -> Iterator[str]:  # noqa: F811
    """The same API with API keys on; the web UI is given the second one."""
    api = api_settings.api.model_copy(update={"api_keys": list(UI_KEYS)})
    keyed_app = create_app(api_settings.model_copy(update={"api": api}))
    with serve_on_loopback(keyed_app, name="kb-api-keyed") as base:
        yield base


@pytest.fixture
def keyed_client(keyed_api_url: str) -> Iterator[ApiClient]:
    client = ApiClient(keyed_api_url, api_key=UI_KEYS[1], timeout_s=60)
    try:
        yield client
    finally:
        client.close()
