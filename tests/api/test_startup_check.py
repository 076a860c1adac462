"""The API checks every knowledge base when it starts and reports problems on /health."""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient

from kb_server.api.app import create_app
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import Settings

pytestmark = pytest.mark.both_backends


def settled_health(client: TestClient) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        health: dict[str, object] = client.get("/health").json()
        if health["consistency"] != "checking" or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def test_a_broken_kb_is_reported_at_start_and_a_sound_one_is_not(
    api_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    service = KnowledgeBaseService(api_settings)
    for kb in ("sound", "broken"):
        service.create_kb(kb)
        service.save_file(kb, "notes.txt", b"Lava flows from volcanoes.", override=False)
        service.add_files(kb, ["notes.txt"])
    # A crash's leftover: the vector index of "broken" is gone (its files, or its table).
    service.drop_vectors(service.kb_row("broken"))
    service.db.dispose()

    caplog.set_level(logging.WARNING, logger="kb_server")
    with TestClient(create_app(api_settings)) as client:
        health = settled_health(client)
    assert health["consistency"] == "problems"
    assert health["inconsistent_knowledge_bases"] == ["broken"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "'broken' is inconsistent (1 chunks without vectors)" in line
        and "python init_database.py --check --repair -n broken" in line
        for line in warnings
    )
    assert not any("'sound'" in line for line in warnings)


def test_health_says_ok_when_every_kb_is_consistent(client: TestClient) -> None:
    health = settled_health(client)
    assert health["consistency"] == "ok"
    assert health["inconsistent_knowledge_bases"] == []
