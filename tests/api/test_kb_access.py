"""Per-KB access through the real API: database keys with roles, and the 404 that makes a KB
a key may not read indistinguishable from a missing one, in every route that takes a KB."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from kb_server.access.keys import KeyStore
from kb_server.api.app import create_app
from kb_server.cli import keys as keys_cli
from kb_server.db.api_keys import ApiKeyRow
from kb_server.settings import load_settings
from tests.api.conftest import MINILM
from tests.api.test_chat_routes import ORBIT, REFUNDS_FILE, add_kbs, sse_events

# The reader's KB, a KB it has no grant on, and one that does not exist.
OWN, OTHER, MISSING = "shop", "space", "nowhere"
QUESTION = "How long until refunds are paid?"

# What TestClient returns (starlette's own httpx fork: typed loosely here, as in test_auth).
Reply = Any
Call = Callable[[TestClient, str, dict[str, str]], Reply]


def kb_chat(path: str, *, stream: bool) -> Call:
    def call(client: TestClient, kb: str, headers: dict[str, str]) -> Reply:
        body = {"query": QUESTION, "knowledge_base_name": kb, "model_name": "extractive"}
        return client.post(path, json={**body, "stream": stream}, headers=headers)

    return call


def openai_chat(*, stream: bool) -> Call:
    def call(client: TestClient, kb: str, headers: dict[str, str]) -> Reply:
        body = {
            "model": f"kb/{kb}",
            "llm_model": "extractive",
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": stream,
        }
        return client.post("/v1/chat/completions", json=body, headers=headers)

    return call


def get(path: str, **params: Any) -> Call:
    def call(client: TestClient, kb: str, headers: dict[str, str]) -> Reply:
        return client.get(path, params={"knowledge_base_name": kb, **params}, headers=headers)

    return call


def post(path: str, **body: Any) -> Call:
    def call(client: TestClient, kb: str, headers: dict[str, str]) -> Reply:
        return client.post(path, json={"knowledge_base_name": kb, **body}, headers=headers)

    return call


def upload(client: TestClient, kb: str, headers: dict[str, str]) -> Reply:
    return client.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": kb},
        files=[("files", ("new.txt", b"A new note about orbits.", "text/plain"))],
        headers=headers,
    )


def delete_kb(client: TestClient, kb: str, headers: dict[str, str]) -> Reply:
    return client.post("/knowledge_base/delete_knowledge_base", json=kb, headers=headers)


# Every route that takes a knowledge base, as a reader of OWN calls it on another KB.
KB_ROUTES: dict[str, Call] = {
    "list_files": get("/knowledge_base/list_files"),
    "upload_docs": upload,
    "delete_docs": post("/knowledge_base/delete_docs", file_names=["orbit.txt"]),
    "update_docs": post("/knowledge_base/update_docs", file_names=["orbit.txt"]),
    "update_docs_in_background": post(
        "/knowledge_base/update_docs?background=true", file_names=["orbit.txt"]
    ),
    "download_doc": get("/knowledge_base/download_doc", file_name="orbit.txt"),
    "search_docs": post("/knowledge_base/search_docs", query="orbit"),
    "list_file_chunks": get("/knowledge_base/list_file_chunks", file_name="orbit.txt"),
    "chunk_context": get("/knowledge_base/chunk_context", file_name="orbit.txt", chunk_id=1),
    "update_chunk": post("/knowledge_base/update_chunk", chunk_id=1, text="rewritten"),
    "recreate_vector_store": post("/knowledge_base/recreate_vector_store", allow_empty_kb=False),
    "recreate_in_background": post(
        "/knowledge_base/recreate_vector_store?background=true", allow_empty_kb=False
    ),
    "delete_knowledge_base": delete_kb,
    "update_info": post("/knowledge_base/update_info", kb_info="changed"),
    "list_jobs": get("/knowledge_base/jobs"),
    "kb_chat": kb_chat("/knowledge_base/chat", stream=False),
    "kb_chat_stream": kb_chat("/knowledge_base/chat", stream=True),
    "chatchat_kb_chat": kb_chat("/chat/knowledge_base_chat", stream=False),
    "chatchat_kb_chat_stream": kb_chat("/chat/knowledge_base_chat", stream=True),
    "v1_chat": openai_chat(stream=False),
    "v1_chat_stream": openai_chat(stream=True),
}
# Routes that change OWN: a reader of it gets 403, a writer gets through.
WRITES = [
    "upload_docs",
    "delete_docs",
    "update_docs",
    "update_docs_in_background",
    "update_chunk",
    "recreate_vector_store",
    "delete_knowledge_base",
    "update_info",
]
# Routes that only read (chunk_context needs a real chunk id: test_reader_reads_its_kb).
READS = [
    route
    for route in KB_ROUTES
    if route not in WRITES and route not in {"recreate_in_background", "chunk_context"}
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Keys:
    """The keys of the module's app, made through the real store."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.admin = store.create("admin", admin=True)[0]
        self.reader = store.create("shop-reader", admin=False, grants={OWN: "reader"})[0]
        self.writer = store.create("shop-writer", admin=False, grants={OWN: "writer"})[0]


@pytest.fixture(scope="module")
def access_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """No api.api_keys: the database keys alone turn authentication on. No cache, so a
    revoke shows at once."""
    settings = load_settings(
        kb_root=tmp_path_factory.mktemp("kb_root"),
        embedding={"model": MINILM},
        api={"key_cache_ttl_s": 0},
    )
    app = create_app(settings)
    add_kbs(app.state.container.kb_service)
    return app


@pytest.fixture(scope="module")
def keys(access_app: FastAPI) -> Keys:
    return Keys(KeyStore(access_app.state.container.kb_service.db))


@pytest.fixture(scope="module")
def client(access_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(access_app) as test_client:
        yield test_client


def error_of(response: Reply) -> Any:
    body = response.json()
    return body["error"] if response.url.path.startswith("/v1/") else body["detail"]


@pytest.mark.parametrize("route", KB_ROUTES)
def test_reader_gets_the_missing_kb_404_on_another_kb(
    client: TestClient, keys: Keys, route: str
) -> None:
    call = KB_ROUTES[route]
    denied = call(client, OTHER, bearer(keys.reader))
    missing = call(client, MISSING, bearer(keys.reader))
    assert denied.status_code == missing.status_code == 404
    assert error_of(denied)["code"] == "kb_not_found"
    # Byte for byte the same answer, but for the name asked about.
    assert denied.text == missing.text.replace(MISSING, OTHER)
    assert dict(denied.headers) == dict(missing.headers) | {
        "content-length": denied.headers["content-length"]
    }


@pytest.mark.parametrize("route", READS)
def test_admin_reads_the_other_kb(client: TestClient, keys: Keys, route: str) -> None:
    response = KB_ROUTES[route](client, OTHER, bearer(keys.admin))
    assert response.status_code == 200, response.text


def test_listings_hide_kbs_without_a_grant(client: TestClient, keys: Keys) -> None:
    listed = client.get("/knowledge_base/list_knowledge_bases", headers=bearer(keys.reader))
    assert listed.json()["data"] == [OWN]
    details = client.get("/knowledge_base/knowledge_bases", headers=bearer(keys.reader))
    assert [kb["name"] for kb in details.json()["data"]] == [OWN]
    models = client.get("/v1/models", headers=bearer(keys.reader)).json()["data"]
    assert f"kb/{OWN}" in [model["id"] for model in models]
    assert f"kb/{OTHER}" not in [model["id"] for model in models]
    everything = client.get("/knowledge_base/list_knowledge_bases", headers=bearer(keys.admin))
    assert everything.json()["data"] == [OWN, OTHER]


def test_multi_kb_chat_with_one_kb_denied_is_404(client: TestClient, keys: Keys) -> None:
    body = {"query": QUESTION, "knowledge_base_name": [OWN, OTHER], "model_name": "extractive"}
    response = client.post("/knowledge_base/chat", json=body, headers=bearer(keys.reader))
    assert response.status_code == 404
    assert error_of(response)["code"] == "kb_not_found"


def test_reader_reads_its_kb(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.reader)
    hits = KB_ROUTES["search_docs"](client, OWN, headers).json()
    assert REFUNDS_FILE in [hit["metadata"]["source"] for hit in hits]
    files = KB_ROUTES["list_files"](client, OWN, headers).json()["data"]
    assert REFUNDS_FILE in files
    download = get("/knowledge_base/download_doc", file_name=REFUNDS_FILE)(client, OWN, headers)
    assert download.status_code == 200
    chunks = get("/knowledge_base/list_file_chunks", file_name=REFUNDS_FILE)(client, OWN, headers)
    chunk_id = chunks.json()["data"][0]["id"]
    context = get("/knowledge_base/chunk_context", file_name=REFUNDS_FILE, chunk_id=chunk_id)
    assert context(client, OWN, headers).status_code == 200
    with client.stream(
        "POST",
        "/knowledge_base/chat",
        json={"query": QUESTION, "knowledge_base_name": OWN, "model_name": "extractive"}
        | {"stream": True},
        headers=headers,
    ) as streamed:
        events = sse_events(streamed.read().decode())
    assert any("docs" in event for event in events)


@pytest.mark.parametrize("route", WRITES)
def test_reader_gets_403_on_writes_to_its_kb(client: TestClient, keys: Keys, route: str) -> None:
    before = KB_ROUTES["list_files"](client, OWN, bearer(keys.admin)).json()
    response = KB_ROUTES[route](client, OWN, bearer(keys.reader))
    assert response.status_code == 403
    assert error_of(response)["code"] == "kb_read_only"
    assert KB_ROUTES["list_files"](client, OWN, bearer(keys.admin)).json() == before


def test_reader_cannot_create_any_kb(client: TestClient, keys: Keys) -> None:
    """The same 403 for a name taken by a KB it cannot see as for a free one."""
    answers = [
        client.post(
            "/knowledge_base/create_knowledge_base",
            json={"knowledge_base_name": name},
            headers=bearer(keys.reader),
        )
        for name in (OTHER, MISSING)
    ]
    # Chatchat's rebuild makes a missing KB (allow_empty_kb defaults to true): a create too.
    rebuild = post("/knowledge_base/recreate_vector_store")
    answers += [rebuild(client, name, bearer(keys.reader)) for name in (OTHER, MISSING)]
    assert [answer.status_code for answer in answers] == [403] * 4
    for denied, missing in (answers[:2], answers[2:]):
        assert denied.text == missing.text.replace(MISSING, OTHER)
        assert error_of(denied)["code"] == "access_denied"


def test_writer_uploads_to_its_kb_only(client: TestClient, keys: Keys) -> None:
    uploaded = upload(client, OWN, bearer(keys.writer))
    assert uploaded.status_code == 200, uploaded.text
    search = post("/knowledge_base/search_docs", query="new note about orbits", top_k=1)
    [hit] = search(client, OWN, bearer(keys.reader)).json()
    assert hit["metadata"]["source"] == "new.txt"
    assert upload(client, OTHER, bearer(keys.writer)).status_code == 404


def test_admin_creates_changes_and_deletes(client: TestClient, keys: Keys) -> None:
    headers = bearer(keys.admin)
    created = client.post(
        "/knowledge_base/create_knowledge_base",
        json={"knowledge_base_name": "scratch"},
        headers=headers,
    )
    assert created.status_code == 200
    assert upload(client, "scratch", headers).status_code == 200
    assert KB_ROUTES["update_info"](client, "scratch", headers).status_code == 200
    assert delete_kb(client, "scratch", headers).status_code == 200
    assert KB_ROUTES["list_files"](client, "scratch", headers).status_code == 404


def test_writer_grant_on_a_new_name_lets_it_create_that_kb(client: TestClient, keys: Keys) -> None:
    key = keys.store.create("drafts-writer", admin=False, grants={"drafts": "writer"})[0]
    created = client.post(
        "/knowledge_base/create_knowledge_base",
        json={"knowledge_base_name": "drafts"},
        headers=bearer(key),
    )
    assert created.status_code == 200
    listed = client.get("/knowledge_base/list_knowledge_bases", headers=bearer(key))
    assert listed.json()["data"] == ["drafts"]


def test_revoked_key_gets_401(client: TestClient, keys: Keys) -> None:
    key = keys.store.create("short-lived", admin=False, grants={OWN: "reader"})[0]
    assert KB_ROUTES["list_files"](client, OWN, bearer(key)).status_code == 200
    keys.store.revoke("short-lived")
    refused = KB_ROUTES["list_files"](client, OWN, bearer(key))
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "unauthorized"


def test_database_keys_alone_require_a_key(client: TestClient, keys: Keys) -> None:
    assert client.get("/knowledge_base/list_knowledge_bases").status_code == 401
    wrong = bearer("kb-" + "x" * 43)
    assert client.get("/knowledge_base/list_knowledge_bases", headers=wrong).status_code == 401
    assert client.get("/health").status_code == 200


def test_stored_row_holds_no_plaintext_key(access_app: FastAPI, keys: Keys) -> None:
    with access_app.state.container.kb_service.db.session() as session:
        row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.name == "shop-reader"))
        assert row is not None
        columns = [str(getattr(row, column.key)) for column in ApiKeyRow.__table__.columns]
    assert row.key_hash == hashlib.sha256(keys.reader.encode()).hexdigest()
    assert not any(keys.reader in value for value in columns)
    assert keys.reader.startswith(row.key_prefix)
    assert len(row.key_prefix) < 16


def test_key_made_by_the_cli_is_accepted_with_its_grants(
    access_app: FastAPI, client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = access_app.state.container.settings
    monkeypatch.setenv("KB_KB_ROOT", str(settings.kb_root))
    out = io.StringIO()
    assert keys_cli.main(["create", "--name", "cli-bot", "--read", OTHER], stdout=out) == 0
    key = out.getvalue().strip()
    assert KB_ROUTES["search_docs"](client, OTHER, bearer(key)).status_code == 200
    assert KB_ROUTES["search_docs"](client, OWN, bearer(key)).status_code == 404


def test_file_chat_works_for_a_member_key(client: TestClient, keys: Keys) -> None:
    """Temporary KBs are not named KBs: their random id is the grant."""
    headers = bearer(keys.reader)
    uploaded = client.post(
        "/knowledge_base/upload_temp_docs",
        files=[("files", ("orbit.txt", ORBIT.encode(), "text/plain"))],
        headers=headers,
    )
    assert uploaded.status_code == 200, uploaded.text
    temp_id = uploaded.json()["data"]["id"]
    answer = client.post(
        "/chat/file_chat",
        json={"query": "What is an orbit?", "knowledge_id": temp_id, "stream": False}
        | {"model_name": "extractive"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert json.loads(answer.text)["docs"]


def test_no_key_at_all_keeps_the_api_open(tmp_path: Path) -> None:
    """With no key at all the API stays open (today's local mode)."""
    app = create_app(load_settings(kb_root=tmp_path / "kb_root", embedding={"model": MINILM}))
    with TestClient(app) as open_client:
        assert open_client.get("/knowledge_base/list_knowledge_bases").status_code == 200


def queue_job(client: TestClient, kb: str, key: str) -> str:
    """A background update of the KB's files, queued by ``key``; its job id."""
    file_name = REFUNDS_FILE if kb == OWN else "orbit.txt"
    queued = post("/knowledge_base/update_docs?background=true", file_names=[file_name])
    response = queued(client, kb, bearer(key))
    assert response.status_code == 202, response.text
    return str(response.json()["data"]["job_id"])


def test_jobs_of_another_kb_are_unknown_to_a_reader(client: TestClient, keys: Keys) -> None:
    job_id = queue_job(client, OTHER, keys.admin)
    unknown_id = "0" * len(job_id)
    reader = bearer(keys.reader)
    for method, suffix in [
        ("GET", ""),
        ("GET", "/events"),
        ("POST", "/cancel"),
        ("POST", "/retry"),
    ]:
        denied = client.request(method, f"/knowledge_base/jobs/{job_id}{suffix}", headers=reader)
        missing = client.request(
            method, f"/knowledge_base/jobs/{unknown_id}{suffix}", headers=reader
        )
        assert denied.status_code == missing.status_code == 404
        assert denied.text == missing.text.replace(unknown_id, job_id)
    listed = client.get("/knowledge_base/jobs", headers=reader).json()["data"]
    assert job_id not in [job["id"] for job in listed]
    everything = client.get("/knowledge_base/jobs", headers=bearer(keys.admin)).json()["data"]
    assert job_id in [job["id"] for job in everything]


def test_reader_follows_but_cannot_change_jobs_of_its_kb(client: TestClient, keys: Keys) -> None:
    job_id = queue_job(client, OWN, keys.writer)
    reader = bearer(keys.reader)
    assert client.get(f"/knowledge_base/jobs/{job_id}", headers=reader).status_code == 200
    for action in ("cancel", "retry"):
        refused = client.post(f"/knowledge_base/jobs/{job_id}/{action}", headers=reader)
        assert refused.status_code == 403
        assert error_of(refused)["code"] == "kb_read_only"
