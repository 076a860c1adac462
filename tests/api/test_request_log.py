"""One structured log line per request and per ingested file; no document text in the logs."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

DOC_TEXT = "The warranty of the Zorblax 9000 lasts exactly seven years."
QUESTION = "How long is the Zorblax warranty?"


def test_requests_and_ingested_files_are_logged_without_their_text(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kb_server")
    client.post("/knowledge_base/create_knowledge_base", json={"knowledge_base_name": "docs"})
    client.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": "docs"},
        files=[("files", ("zorblax.txt", DOC_TEXT.encode(), "text/plain"))],
    )
    found = client.post(
        "/knowledge_base/search_docs", json={"knowledge_base_name": "docs", "query": QUESTION}
    )
    assert found.status_code == 200
    missing = client.post(
        "/knowledge_base/search_docs", json={"knowledge_base_name": "nope", "query": QUESTION}
    )
    assert missing.status_code == 404

    requests = [r.getMessage() for r in caplog.records if r.name == "kb_server.api.requests"]
    assert any(
        line.startswith("method=POST route=/knowledge_base/search_docs kb=docs status=200 ")
        for line in requests
    )
    assert any("route=/knowledge_base/search_docs kb=- status=404 " in line for line in requests)
    assert any("route=/knowledge_base/upload_docs kb=docs status=200" in line for line in requests)
    assert all("duration_ms=" in line for line in requests)
    ingested = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ingest ")]
    assert "ingest kb=docs file='zorblax.txt' status=indexed chunks=1" in ingested

    everything = "\n".join(record.getMessage() for record in caplog.records)
    assert "Zorblax 9000" not in everything
    assert "warranty" not in everything.lower()
