"""Stored conversations through HTTP: lifecycle, feedback, real statuses, a restart."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from kb_server.api.app import create_app
from kb_server.settings import Settings

pytestmark = pytest.mark.both_backends

DOCS = [{"number": 1, "source": "退款 政策.txt", "kb_name": "shop", "text": "十四天内退款"}]


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/conversations", json=body)
    assert response.status_code == 200
    created: dict[str, Any] = response.json()
    return created


def add(client: TestClient, conversation_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/conversations/{conversation_id}/messages", json=body)
    assert response.status_code == 200
    message: dict[str, Any] = response.json()
    return message


def feedback(client: TestClient, conversation_id: str, message_id: int, **body: Any) -> Any:
    path = f"/conversations/{conversation_id}/messages/{message_id}/feedback"
    return client.post(path, json=body)


def test_conversation_lifecycle(client: TestClient) -> None:
    first = create(client)
    assert first["name"] == "新对话"
    assert first["message_count"] == 0
    assert set(first) == {"id", "name", "created_at", "updated_at", "message_count"}
    second = create(client, name="发货")
    assert [c["id"] for c in client.get("/conversations").json()] == [second["id"], first["id"]]

    renamed = client.patch(f"/conversations/{first['id']}", json={"name": "退款问题"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "退款问题"

    question = add(client, first["id"], role="user", content="多久退款？")
    answer = add(
        client, first["id"], role="assistant", content="十四天 [1]", docs=DOCS, model="extractive"
    )
    assert set(answer) == {
        "id", "role", "content", "docs", "model", "feedback", "feedback_reason", "created_at"
    }  # fmt: skip
    listed = client.get("/conversations").json()
    assert [c["id"] for c in listed] == [first["id"], second["id"]]
    assert listed[0]["message_count"] == 2

    messages = client.get(f"/conversations/{first['id']}/messages").json()
    assert [m["id"] for m in messages] == [question["id"], answer["id"]]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["docs"] == DOCS
    assert messages[1]["model"] == "extractive"
    assert messages[1]["feedback"] is None

    liked = feedback(client, first["id"], answer["id"], score=1)
    assert liked.status_code == 200
    assert liked.json()["feedback"] == 1
    disliked = feedback(client, first["id"], answer["id"], score=-1, reason="来源不对").json()
    assert (disliked["feedback"], disliked["feedback_reason"]) == (-1, "来源不对")
    cleared = feedback(client, first["id"], answer["id"], score=0).json()
    assert (cleared["feedback"], cleared["feedback_reason"]) == (None, None)

    deleted = client.delete(f"/conversations/{first['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": first["id"]}
    assert client.get(f"/conversations/{first['id']}/messages").status_code == 404
    assert [c["id"] for c in client.get("/conversations").json()] == [second["id"]]


def test_feedback_on_a_user_message_returns_422(client: TestClient) -> None:
    conversation = create(client)
    question = add(client, conversation["id"], role="user", content="question")
    response = feedback(client, conversation["id"], question["id"], score=1)
    assert response.status_code == 422
    assert response.json()["detail"]["code"] == "invalid_input"


def test_invalid_bodies_return_422(client: TestClient) -> None:
    conversation = create(client)
    cid = conversation["id"]
    assert client.patch(f"/conversations/{cid}", json={"name": ""}).status_code == 422
    assert client.patch(f"/conversations/{cid}", json={"name": "  "}).status_code == 422
    bad_role = {"role": "system", "content": "x"}
    assert client.post(f"/conversations/{cid}/messages", json=bad_role).status_code == 422
    answer = add(client, cid, role="assistant", content="answer")
    assert feedback(client, cid, answer["id"], score=2).status_code == 422


def test_unknown_ids_return_404(client: TestClient) -> None:
    missing = "0" * 32
    assert client.patch(f"/conversations/{missing}", json={"name": "x"}).status_code == 404
    assert client.delete(f"/conversations/{missing}").status_code == 404
    response = client.get(f"/conversations/{missing}/messages")
    assert response.status_code == 404
    assert response.json()["detail"]["code"] == "conversation_not_found"
    message = {"role": "user", "content": "x"}
    assert client.post(f"/conversations/{missing}/messages", json=message).status_code == 404

    conversation = create(client)
    response = feedback(client, conversation["id"], 999_999, score=1)
    assert response.status_code == 404
    assert response.json()["detail"]["code"] == "message_not_found"


def test_conversations_survive_a_new_app(api_settings: Settings) -> None:
    with TestClient(create_app(api_settings)) as client:
        conversation = create(client, name="保留")
        add(client, conversation["id"], role="user", content="还在吗？")
    with TestClient(create_app(api_settings)) as client:
        assert [c["name"] for c in client.get("/conversations").json()] == ["保留"]
        messages = client.get(f"/conversations/{conversation['id']}/messages").json()
        assert [m["content"] for m in messages] == ["还在吗？"]
