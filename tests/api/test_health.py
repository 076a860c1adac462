from __future__ import annotations

from fastapi.testclient import TestClient


def test_health_reports_status_and_default_model(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["default_model"] == "extractive"
    assert body["knowledge_bases"] == 0


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "kb-server"
