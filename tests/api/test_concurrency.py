"""Concurrent uploads, chats, searches and a delete through a real uvicorn on loopback.

Four workers each upload three files (one request each), ask three KB-chat questions (streamed
and not) and search, while a fifth uploads two files and deletes one of them. Afterwards the
KB holds exactly the files that were not deleted, indexed, its vector index, keyword index and
database agree, and each file's sentence finds that file first with BM25.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from kb_server.api.app import create_app
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import Settings, load_settings
from tests.api.conftest import MINILM
from tests.conftest import BackendOptions
from tests.servers import serve_on_loopback

pytestmark = pytest.mark.both_backends

KB = "shared"
WORKERS = 4
FILES_PER_WORKER = 3
TIMEOUT = httpx.Timeout(30.0)
JOIN_TIMEOUT_S = 45.0
COLORS = ["amber", "cobalt", "crimson", "emerald", "ivory", "jade", "maroon", "ochre"]
COLORS += ["saffron", "scarlet", "teal", "umber", "violet", "azure"]
ANIMALS = ["otter", "falcon", "lynx", "walrus", "gecko", "heron", "badger", "ibex"]
ANIMALS += ["jackal", "koala", "marmot", "pelican", "narwhal", "quokka"]
PLACES = ["canyon", "orchard", "harbor", "meadow", "glacier", "lagoon", "quarry", "tundra"]
PLACES += ["volcano", "delta", "savanna", "fjord", "marsh", "dune"]
DOOMED = "doomed.txt"
KEPT = "kept.txt"
QUESTIONS = ["Where does the {animal} sleep?", "What colour is the {animal}?", "Tell me more"]


def sentence(index: int) -> str:
    """A sentence whose colour, animal and place no other file shares."""
    return f"The {COLORS[index]} {ANIMALS[index]} sleeps in the {PLACES[index]}."


def worker_files(worker: int) -> dict[str, int]:
    """File name -> sentence index of one worker's files."""
    first = worker * FILES_PER_WORKER
    return {f"w{worker}-f{i}.txt": first + i for i in range(FILES_PER_WORKER)}


DELETER_FILES = {KEPT: WORKERS * FILES_PER_WORKER, DOOMED: WORKERS * FILES_PER_WORKER + 1}
KEPT_FILES = {name: index for w in range(WORKERS) for name, index in worker_files(w).items()}
KEPT_FILES[KEPT] = DELETER_FILES[KEPT]


class Session:
    """One thread's client; problems (4xx/5xx, transport errors) go to a shared list."""

    def __init__(self, base: str, problems: list[str]) -> None:
        self.client = httpx.Client(base_url=base, timeout=TIMEOUT)
        self.problems = problems

    def check(self, what: str, response: httpx.Response) -> Any:
        if response.status_code != 200:
            self.problems.append(f"{what}: {response.status_code} {response.text[:300]}")
            return None
        return response.json()

    def upload(self, name: str, text: str) -> None:
        files = [("files", (name, text.encode()))]
        response = self.client.post(
            "/knowledge_base/upload_docs", data={"knowledge_base_name": KB}, files=files
        )
        body = self.check(f"upload {name}", response)
        if body is not None and body["data"]["files"][0]["status"] != "indexed":
            self.problems.append(f"upload {name}: {body['data']}")

    def chat(self, query: str, *, stream: bool) -> None:
        body: dict[str, Any] = {
            "knowledge_base_name": KB,
            "query": query,
            "model_name": "extractive",
            "stream": stream,
        }
        if not stream:
            answer = self.check(
                f"chat {query}", self.client.post("/knowledge_base/chat", json=body)
            )
            if answer is not None and not answer["answer"]:
                self.problems.append(f"chat {query}: empty answer")
            return
        with self.client.stream("POST", "/knowledge_base/chat", json=body) as response:
            text = response.read().decode()
        if response.status_code != 200:
            self.problems.append(f"stream {query}: {response.status_code} {text[:300]}")
        events = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
        if any("error" in event for event in events) or "docs" not in events[-1]:
            self.problems.append(f"stream {query}: {events}")

    def search(self, query: str, mode: str = "hybrid", top_k: int = 3) -> list[str]:
        body = {"knowledge_base_name": KB, "query": query, "search_mode": mode, "top_k": top_k}
        hits = self.check(
            f"search {query}", self.client.post("/knowledge_base/search_docs", json=body)
        )
        return [hit["metadata"]["source"] for hit in hits or []]

    def delete(self, name: str) -> None:
        body = {"knowledge_base_name": KB, "file_names": [name], "delete_content": True}
        deleted = self.check(
            f"delete {name}", self.client.post("/knowledge_base/delete_docs", json=body)
        )
        if deleted is not None and deleted["data"]["failed_files"]:
            self.problems.append(f"delete {name}: {deleted['data']}")


def run_worker(session: Session, start: threading.Barrier, worker: int) -> None:
    start.wait()
    files = worker_files(worker)
    for name, index in files.items():
        session.upload(name, sentence(index))
    for number, question in enumerate(QUESTIONS):
        session.chat(question.format(animal=ANIMALS[worker * FILES_PER_WORKER]), stream=number == 1)
    session.search(sentence(next(iter(files.values()))))


def run_deleter(session: Session, start: threading.Barrier) -> None:
    start.wait()
    for name, index in DELETER_FILES.items():
        session.upload(name, sentence(index))
    session.delete(DOOMED)


def guarded(problems: list[str], target: Callable[..., None], *args: Any) -> Callable[[], None]:
    def run() -> None:
        try:
            target(*args)
        except Exception as exc:  # a transport error or a timeout: reported, not lost
            problems.append(f"{target.__name__}: {type(exc).__name__}: {exc}")

    return run


def concurrency_settings(tmp_path: Path, backend_options: BackendOptions) -> Settings:
    return load_settings(
        kb_root=tmp_path / "kb_root",
        embedding={"model": MINILM},
        llm={"max_retries": 0},
        **backend_options,
    )


def test_concurrent_uploads_chats_and_a_delete_leave_a_consistent_kb(
    tmp_path: Path, backend_options: BackendOptions
) -> None:
    settings = concurrency_settings(tmp_path, backend_options)
    problems: list[str] = []
    started = time.monotonic()
    with serve_on_loopback(create_app(settings), name="kb-server-concurrency") as base:
        main = Session(base, problems)
        created = main.client.post(
            "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": KB}
        )
        assert created.status_code == 200, created.text
        start = threading.Barrier(WORKERS + 1, timeout=10)
        sessions = [Session(base, problems) for _ in range(WORKERS + 1)]
        targets = [guarded(problems, run_worker, sessions[w], start, w) for w in range(WORKERS)]
        targets.append(guarded(problems, run_deleter, sessions[WORKERS], start))
        threads = [threading.Thread(target=target, daemon=True) for target in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, JOIN_TIMEOUT_S - (time.monotonic() - started)))
        assert not any(thread.is_alive() for thread in threads), "a worker hung"
        for session in sessions:
            session.client.close()
        assert problems == []

        listed = main.client.get("/knowledge_base/list_files", params={"knowledge_base_name": KB})
        statuses = {item["file_name"]: item["status"] for item in listed.json()["files"]}
        assert statuses == dict.fromkeys(KEPT_FILES, "indexed")
        doomed = sentence(DELETER_FILES[DOOMED])
        assert DOOMED not in main.search(doomed, mode="bm25", top_k=20)
        assert DOOMED not in main.search(doomed, top_k=20)
        for name, index in KEPT_FILES.items():
            assert main.search(sentence(index), mode="bm25")[:1] == [name], name
        assert problems == []
        main.client.close()

    # A fresh service reads what the server left on disk.
    report = KbMaintenance(KnowledgeBaseService(settings)).check(KB)
    assert report.consistent, report
    assert not (settings.kb_root / KB / "content" / DOOMED).exists()
    assert time.monotonic() - started < 60
