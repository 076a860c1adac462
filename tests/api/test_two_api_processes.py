"""Two API processes on different ports, one PostgreSQL: what one writes, the other serves.

Each process has its own KB root, as on two machines: with the ``pg`` backend the chunks,
vectors and keyword index live in PostgreSQL, so the second process needs none of the first's
files to search, and writes to one KB from either are serialized by an advisory lock.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import MINILM
from tests.servers import api_process

KB = "shared"
LAVA = "# 火山\n\n熔岩来自地幔中熔化的岩石。Lava is molten rock that rises from the mantle."
VIOLIN = "# 小提琴\n\n小提琴有四根弦,用弓演奏。A violin has four strings and is played with a bow."


@contextmanager
def api_process_client(kb_root: Path, database_url: str, log: Path) -> Iterator[httpx.Client]:
    """An API process on the pg backend with its own KB root; a client for it until exit."""
    env = {
        "HF_HUB_OFFLINE": "1",
        "KB_KB_ROOT": str(kb_root),
        "KB_DATABASE_URL": database_url,
        "KB_VECTOR_STORE__DEFAULT_TYPE": "pg",
        "KB_EMBEDDING__MODEL": MINILM,
        "KB_OCR__ENABLED": "false",
    }
    with api_process(env, log) as (_, base), httpx.Client(base_url=base, timeout=120) as client:
        yield client


def upload(client: httpx.Client, name: str, text: str) -> None:
    response = client.post(
        "/knowledge_base/upload_docs",
        data={"knowledge_base_name": KB},
        files=[("files", (name, text.encode(), "text/markdown"))],
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["failed_files"] == {}


def sources(client: httpx.Client, query: str, **options: Any) -> list[str]:
    response = client.post(
        "/knowledge_base/search_docs",
        json={"knowledge_base_name": KB, "query": query, "top_k": 3, **options},
    )
    assert response.status_code == 200, response.text
    return [hit["metadata"]["file_name"] for hit in response.json()]


def test_an_upload_through_one_process_is_searchable_through_the_other(
    pg_url: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        first = stack.enter_context(api_process_client(tmp_path / "a", pg_url, tmp_path / "a.log"))
        second = stack.enter_context(api_process_client(tmp_path / "b", pg_url, tmp_path / "b.log"))

        created = first.post(
            "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": KB}
        )
        assert created.status_code == 200, created.text
        assert created.json()["data"]["vs_type"] == "pg"  # the servers' default_type
        listed = second.get("/knowledge_base/list_knowledge_bases").json()["data"]
        assert KB in listed

        upload(first, "lava.md", LAVA)
        assert sources(second, "熔岩从哪里来", search_mode="bm25")[:1] == ["lava.md"]
        assert sources(second, "熔岩从哪里来", search_mode="hybrid")[:1] == ["lava.md"]
        assert sources(second, "molten rock from the mantle", search_mode="dense")[:1] == [
            "lava.md"
        ]

        upload(second, "violin.md", VIOLIN)
        assert sources(first, "小提琴有几根弦", search_mode="bm25")[:1] == ["violin.md"]

        deleted = second.post(
            "/knowledge_base/delete_docs",
            json={"knowledge_base_name": KB, "file_names": ["lava.md"]},
        )
        assert deleted.status_code == 200, deleted.text
        assert "lava.md" not in sources(first, "熔岩从哪里来", search_mode="bm25")
        assert "lava.md" not in sources(first, "molten rock from the mantle", search_mode="dense")

    # The second process never wrote an index file: everything it served came from PostgreSQL.
    second_kb = tmp_path / "b" / KB
    assert not (second_kb / "vector_store").exists()
    assert not (second_kb / "keyword_index").exists()


def test_writes_from_two_processes_to_one_kb_keep_every_file(pg_url: str, tmp_path: Path) -> None:
    """Uploads to one KB through both processes at once: the advisory lock serializes them,
    and no file's chunks are lost or duplicated."""
    writers = 2
    with ExitStack() as stack:
        clients = [
            stack.enter_context(
                api_process_client(tmp_path / f"w{n}", pg_url, tmp_path / f"w{n}.log")
            )
            for n in range(writers)
        ]
        created = clients[0].post(
            "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": KB}
        )
        assert created.status_code == 200, created.text

        def write(n: int) -> None:
            for m in range(4):
                upload(
                    clients[n], f"w{n}-{m}.md", f"# 笔记 {n}-{m}\n\n第{n}号写入者的第{m}篇笔记。"
                )

        with concurrent.futures.ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writers)))

        files = clients[0].get("/knowledge_base/list_files", params={"knowledge_base_name": KB})
        names = set(files.json()["data"])
        assert names == {f"w{n}-{m}.md" for n in range(writers) for m in range(4)}
        chunks = [
            len(
                clients[1]
                .get(
                    "/knowledge_base/list_file_chunks",
                    params={"knowledge_base_name": KB, "file_name": name},
                )
                .json()["data"]
            )
            for name in sorted(names)
        ]
        assert all(count >= 1 for count in chunks)
