"""Choosing the pg store on a server without PostgreSQL is a clear 4xx, and nothing is made."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_a_pg_kb_on_a_sqlite_only_server_is_refused_with_what_to_set(client: TestClient) -> None:
    response = client.post(
        "/knowledge_base/create_knowledge_base",
        json={"knowledge_base_name": "shared", "vector_store_type": "pg"},
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["code"] == "vector_store_unavailable"
    assert "KB_DATABASE_URL" in detail["message"]
    assert "shared" not in client.get("/knowledge_base/list_knowledge_bases").json()["data"]
