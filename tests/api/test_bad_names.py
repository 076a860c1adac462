"""Bad names and bad bodies against every route that takes a name, through the real API.

Each request gets a 4xx; batch routes (upload, delete and update docs) answer a bad file name
with a per-file failure. Nothing changes outside the KB root, nor in the KB's content folder,
and a file uploaded before the table stays listed and searchable. The table itself is in
bad_name_cases.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kb_server.api.app import create_app
from kb_server.settings import load_settings
from tests.api.bad_name_cases import CASES, EARLIER, KB, KB_ROUTE, NFC_FILE, NFC_KB, Case
from tests.api.conftest import MINILM
from tests.fs_snapshot import tree_snapshot


@dataclass
class Server:
    client: TestClient
    root: Path
    kb_root: Path
    temp_id: str
    conversation_id: str
    outside_at_start: dict[str, tuple[int, int]]

    @property
    def content(self) -> Path:
        return self.kb_root / KB / "content"

    def outside(self) -> dict[str, tuple[int, int]]:
        return tree_snapshot(self.root, self.kb_root)

    def send(self, case: Case) -> tuple[int, str]:
        """The status and the body text of ``case``'s response."""
        path = case.path.replace("TEMP_ID", self.temp_id)
        path = path.replace("CONVERSATION_ID", self.conversation_id)
        headers = {} if case.body is None else {"content-type": case.content_type}
        response = self.client.request(case.method, path, content=case.body, headers=headers)
        return response.status_code, response.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One app for the whole table: KB "docs" holding EARLIER and NFC_FILE, KB "café", a
    temporary KB and a conversation. The KB root sits two folders deep in the watched tree, so
    that '..' escapes land where the snapshot sees them."""
    root = tmp_path_factory.mktemp("bad_names")
    kb_root = root / "outer" / "inner" / "kb_root"
    (root / "outer" / "secret.txt").parent.mkdir(parents=True)
    (root / "outer" / "secret.txt").write_text("not for clients")
    settings = load_settings(kb_root=kb_root, embedding={"model": MINILM}, llm={"max_retries": 0})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for name in (KB, NFC_KB):
            created = client.post(
                f"{KB_ROUTE}/create_knowledge_base", json={"knowledge_base_name": name}
            )
            assert created.status_code == 200, created.text
        files = [("files", EARLIER), ("files", (NFC_FILE, b"Coffee is brewed from roasted beans."))]
        upload = client.post(
            f"{KB_ROUTE}/upload_docs", data={"knowledge_base_name": KB}, files=files
        )
        assert [item["status"] for item in upload.json()["data"]["files"]] == ["indexed"] * 2
        temp = client.post(f"{KB_ROUTE}/upload_temp_docs", files=[("files", EARLIER)])
        conversation = client.post("/conversations", json={})
        yield Server(
            client,
            root,
            kb_root,
            temp.json()["data"]["id"],
            conversation.json()["id"],
            tree_snapshot(root, kb_root),
        )


def listed(client: TestClient) -> dict[str, str]:
    response = client.get(f"{KB_ROUTE}/list_files", params={"knowledge_base_name": KB})
    assert response.status_code == 200
    return {item["file_name"]: item["status"] for item in response.json()["files"]}


def searched(client: TestClient, query: str) -> list[str]:
    response = client.post(
        f"{KB_ROUTE}/search_docs", json={"knowledge_base_name": KB, "query": query}
    )
    assert response.status_code == 200, response.text
    return [hit["metadata"]["source"] for hit in response.json()]


def assert_every_file_failed(body: dict[str, Any]) -> None:
    data = body["data"]
    assert data["failed_files"], data
    assert all(item["status"] == "failed" for item in data.get("files", [])), data


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_name_or_body_gets_a_4xx_and_writes_nothing(server: Server, case: Case) -> None:
    outside = server.outside()
    content = tree_snapshot(server.content, server.content / "no such folder")

    status, text = server.send(case)

    assert status == case.status, text
    if case.failed:
        assert_every_file_failed(json.loads(text))
    assert tree_snapshot(server.content, server.content / "no such folder") == content
    assert server.outside() == outside


def test_after_the_table_nothing_moved_and_earlier_files_still_answer(server: Server) -> None:
    assert len(CASES) >= 30
    assert server.outside() == server.outside_at_start
    names = server.client.get(f"{KB_ROUTE}/list_knowledge_bases").json()["data"]
    assert sorted(names) == sorted([KB, NFC_KB])
    assert listed(server.client) == {EARLIER[0]: "indexed", NFC_FILE: "indexed"}
    assert searched(server.client, "Which pet purrs and hunts mice?")[0] == EARLIER[0]
