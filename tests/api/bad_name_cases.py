"""The table of test_bad_names: bad knowledge-base names, file names, temporary-KB and
conversation ids in every route that takes one, and bad bodies. Requests are built by hand
(bodies, query strings, multipart) so that NULs and lone surrogates reach the server as sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

KB = "docs"
EARLIER = ("cats.txt", b"Cats are small pets. A cat purrs, sleeps all day and hunts mice.")
NFC_KB = "caf\u00e9"
NFC_FILE = "caf\u00e9.txt"
KB_ROUTE = "/knowledge_base"
CHAT = {"query": "cats", "model_name": "extractive"}
BOUNDARY = "bad-names-boundary"
SQL_INTEGER_MAX = 2**63 - 1


@dataclass(frozen=True)
class Case:
    """One request. ``failed``: a batch route's 200 with every named file failed. TEMP_ID and
    CONVERSATION_ID in the path stand for a real temporary KB and a real conversation."""

    method: str
    path: str
    body: bytes | None = None
    content_type: str = "application/json"
    status: int = 422
    failed: bool = False


def posted(path: str, body: Any, status: int = 422) -> Case:
    # ensure_ascii: a lone surrogate travels as its JSON escape, as a client may send it.
    return Case("POST", path, json.dumps(body).encode(), status=status, failed=status == 200)


def got(path: str, params: dict[str, str], status: int = 422) -> Case:
    return Case("GET", f"{path}?{urlencode(params, errors='surrogatepass')}", status=status)


def uploaded(path: str, fields: dict[str, str], file_name: str, status: int = 422) -> Case:
    """A multipart body as written by hand: httpx would refuse or rewrite some names."""
    head = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        for key, value in fields.items()
    )
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{file_name}"'
        "\r\nContent-Type: text/plain\r\n\r\n"
    )
    body = (
        head.encode("utf-8", "surrogatepass") + b"Dogs bark.\r\n" + f"--{BOUNDARY}--\r\n".encode()
    )
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return Case("POST", path, body, content_type, status=status, failed=status == 200)


BAD_KB_NAMES = {
    "dotdot-slash": "../x",
    "dotdot": "..",
    "nested-traversal": "a/../../b",
    "absolute": "/etc/passwd",
    "windows-drive": "C:\\Windows\\x",
    "unc-share": "\\\\server\\share",
    "nul": "a\x00b",
    "escape-char": "a\x1bb",
    "newline": "a\nb",
    "too-long": "k" * 65,
    "empty": "",
    "blank": " \t ",
    "hidden": ".hidden",
    "fullwidth-dots": "\uff0e\uff0e\uff0fx",
    "one-dot-leader": "\u2024\u2024",
    "rtl-override": "a\u202eb",
    "lone-surrogate": "\ud800",
}
KB_NAME_ROUTES: dict[str, Callable[[str], Case]] = {
    "create": lambda name: posted(
        f"{KB_ROUTE}/create_knowledge_base", {"knowledge_base_name": name}
    ),
    "delete-bare": lambda name: posted(f"{KB_ROUTE}/delete_knowledge_base", name),
    "delete": lambda name: posted(
        f"{KB_ROUTE}/delete_knowledge_base", {"knowledge_base_name": name}
    ),
    "update-info": lambda name: posted(
        f"{KB_ROUTE}/update_info", {"knowledge_base_name": name, "kb_info": "x"}
    ),
    "list-files": lambda name: got(f"{KB_ROUTE}/list_files", {"knowledge_base_name": name}),
    "upload": lambda name: uploaded(
        f"{KB_ROUTE}/upload_docs", {"knowledge_base_name": name}, "dogs.txt"
    ),
    "delete-docs": lambda name: posted(
        f"{KB_ROUTE}/delete_docs", {"knowledge_base_name": name, "file_names": [EARLIER[0]]}
    ),
    "update-docs": lambda name: posted(
        f"{KB_ROUTE}/update_docs", {"knowledge_base_name": name, "file_names": [EARLIER[0]]}
    ),
    "download": lambda name: got(
        f"{KB_ROUTE}/download_doc", {"knowledge_base_name": name, "file_name": EARLIER[0]}
    ),
    "search": lambda name: posted(
        f"{KB_ROUTE}/search_docs", {"knowledge_base_name": name, "query": "cats"}
    ),
    "list-chunks": lambda name: got(
        f"{KB_ROUTE}/list_file_chunks", {"knowledge_base_name": name, "file_name": EARLIER[0]}
    ),
    "update-chunk": lambda name: posted(
        f"{KB_ROUTE}/update_chunk", {"knowledge_base_name": name, "chunk_id": 1, "text": "x"}
    ),
    "recreate": lambda name: posted(
        f"{KB_ROUTE}/recreate_vector_store", {"knowledge_base_name": name}
    ),
    "kb-chat": lambda name: posted(f"{KB_ROUTE}/chat", {**CHAT, "knowledge_base_name": name}),
    "kb-chat-stream": lambda name: posted(
        f"{KB_ROUTE}/chat", {**CHAT, "knowledge_base_name": [KB, name], "stream": True}
    ),
    "chatchat-kb-chat": lambda name: posted(
        "/chat/knowledge_base_chat", {**CHAT, "knowledge_base_name": name}
    ),
    "openai": lambda name: posted(
        "/v1/chat/completions",
        {"model": f"kb/{name}", "messages": [{"role": "user", "content": "cats"}]},
    ),
}

BAD_FILE_NAMES = {
    "dotdot-slash": "../x.txt",
    "dotdot": "..",
    "nested-traversal": "a/../../b.txt",
    "absolute": "/etc/passwd",
    "windows-drive": "C:\\Windows\\x.txt",
    "unc-share": "\\\\server\\share\\x.txt",
    "nul": "a\x00b.txt",
    "escape-char": "a\x1b.txt",
    "c1-control": "a\x85.txt",
    "part-too-long": "f" * 256 + ".txt",
    "path-too-long": "d" * 100 + "/e" * 500 + "/x.txt",
    "blank": "   ",
    "hidden": ".hidden.txt",
    "hidden-folder": "a/.git/config.txt",
    "fullwidth-dots": "\uff0e\uff0e\uff0fx.txt",
    "fullwidth-backslash": "\uff0e\uff0e\uff3cx.txt",
    "one-dot-leader": "\u2024\u2024/x.txt",
    "rtl-override": "evil\u202etxt.md",
    "zero-width-space": "a\u200bb.txt",
    "lone-surrogate": "\ud800.txt",
}
# The multipart parser keeps what follows a name's last backslash (old browsers sent full
# Windows paths), and a header cannot carry a lone surrogate: those are left to JSON routes.
UPLOADABLE = {
    key: name
    for key, name in BAD_FILE_NAMES.items()
    if "\\" not in name and key != "lone-surrogate"
}
FILE_NAME_ROUTES: dict[str, Callable[[str], Case]] = {
    "delete-docs": lambda name: posted(
        f"{KB_ROUTE}/delete_docs", {"knowledge_base_name": KB, "file_names": [name]}, 200
    ),
    "update-docs": lambda name: posted(
        f"{KB_ROUTE}/update_docs", {"knowledge_base_name": KB, "file_names": [name]}, 200
    ),
    "download": lambda name: got(
        f"{KB_ROUTE}/download_doc", {"knowledge_base_name": KB, "file_name": name}
    ),
    "search-filter": lambda name: posted(
        f"{KB_ROUTE}/search_docs", {"knowledge_base_name": KB, "query": "cats", "file_name": name}
    ),
    "list-chunks": lambda name: got(
        f"{KB_ROUTE}/list_file_chunks", {"knowledge_base_name": KB, "file_name": name}
    ),
    "download-temp": lambda name: got(
        f"{KB_ROUTE}/download_temp_doc", {"knowledge_id": "TEMP_ID", "file_name": name}
    ),
}

BAD_TEMP_IDS = {
    "dotdot-slash": "../x",
    "nested-traversal": "a/../../b",
    "absolute": "/etc/passwd",
    "nul": "a\x00b",
    "short": "0" * 31,
    "long": "0" * 33,
    "uppercase": "A" * 32,
    "fullwidth-dots": "\uff0e\uff0e\uff0fx",
    "lone-surrogate": "\ud800",
    "kb-name": KB,
}
BAD_CONVERSATION_IDS = {
    "encoded-traversal": "..%2F..%2Fx",
    "nul": "%00",
    "too-long": "c" * 600,
    "rtl-override": "%E2%80%AE",
    "invalid-utf8": "%ED%A0%80",
}
CONVERSATION_ROUTES = {
    "messages": ("GET", "/messages", None),
    "rename": ("PATCH", "", {"name": "x"}),
    "delete": ("DELETE", "", None),
    "add-message": ("POST", "/messages", {"role": "user", "content": "x"}),
    "feedback": ("POST", "/messages/1/feedback", {"score": 1}),
}


def raw(path: str, body: bytes, status: int = 422) -> Case:
    return Case("POST", path, body, status=status)


def body_cases() -> dict[str, Case]:
    search = f"{KB_ROUTE}/search_docs"
    kb_chat = f"{KB_ROUTE}/chat"
    return {
        "create-syntax-error": raw(
            f"{KB_ROUTE}/create_knowledge_base", b'{"knowledge_base_name": '
        ),
        "search-syntax-error": raw(search, b'{"knowledge_base_name": "docs", "query": "x",}'),
        "chat-syntax-error": raw(kb_chat, b"{'knowledge_base_name': 'docs'}"),
        "openai-syntax-error": raw("/v1/chat/completions", b'{"model": "kb/docs"', 400),
        "create-array-body": posted(f"{KB_ROUTE}/create_knowledge_base", [KB]),
        "create-number-name": posted(
            f"{KB_ROUTE}/create_knowledge_base", {"knowledge_base_name": 7}
        ),
        "create-missing-name": posted(f"{KB_ROUTE}/create_knowledge_base", {}),
        "create-form-body": Case(
            "POST",
            f"{KB_ROUTE}/create_knowledge_base",
            b"knowledge_base_name=x",
            "application/x-www-form-urlencoded",
        ),
        "delete-number-name": posted(f"{KB_ROUTE}/delete_knowledge_base", 7),
        "search-number-name": posted(search, {"knowledge_base_name": 7, "query": "x"}),
        "search-list-top-k": posted(
            search, {"knowledge_base_name": KB, "query": "x", "top_k": [3]}
        ),
        "search-string-top-k": posted(
            search, {"knowledge_base_name": KB, "query": "x", "top_k": "three"}
        ),
        "search-missing-query": posted(search, {"knowledge_base_name": KB}),
        "search-surrogate-query": posted(search, {"knowledge_base_name": KB, "query": "\ud800"}),
        "chat-list-top-k": posted(kb_chat, {**CHAT, "knowledge_base_name": KB, "top_k": [3]}),
        "chat-string-top-k": posted(kb_chat, {**CHAT, "knowledge_base_name": KB, "top_k": "x"}),
        "chat-missing-query": posted(kb_chat, {"knowledge_base_name": KB}),
        "chat-missing-name": posted(kb_chat, CHAT),
        "chat-no-kb": posted(kb_chat, {**CHAT, "knowledge_base_name": []}),
        "openai-number-model": posted("/v1/chat/completions", {"model": 7, "messages": []}, 400),
        "delete-docs-string-names": posted(
            f"{KB_ROUTE}/delete_docs", {"knowledge_base_name": KB, "file_names": "../x.txt"}
        ),
        "delete-docs-missing-names": posted(f"{KB_ROUTE}/delete_docs", {"knowledge_base_name": KB}),
        "update-chunk-string-id": posted(
            f"{KB_ROUTE}/update_chunk", {"knowledge_base_name": KB, "chunk_id": "one", "text": "x"}
        ),
        "update-chunk-huge-id": posted(
            f"{KB_ROUTE}/update_chunk",
            {"knowledge_base_name": KB, "chunk_id": SQL_INTEGER_MAX + 1, "text": "x"},
            404,
        ),
        "update-info-surrogate": posted(
            f"{KB_ROUTE}/update_info", {"knowledge_base_name": KB, "kb_info": "\ud800"}
        ),
        "upload-missing-files": Case(
            "POST",
            f"{KB_ROUTE}/upload_docs",
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="knowledge_base_name"\r\n\r\n'
            f"{KB}\r\n--{BOUNDARY}--\r\n".encode(),
            f"multipart/form-data; boundary={BOUNDARY}",
        ),
        "upload-missing-name": uploaded(f"{KB_ROUTE}/upload_docs", {}, "dogs.txt"),
        "create-nfd-duplicate": posted(
            f"{KB_ROUTE}/create_knowledge_base", {"knowledge_base_name": "cafe\u0301"}, 409
        ),
        "upload-nfd-duplicate": uploaded(
            f"{KB_ROUTE}/upload_docs", {"knowledge_base_name": KB}, "cafe\u0301.txt", 200
        ),
        "feedback-huge-message-id": posted(
            f"/conversations/CONVERSATION_ID/messages/{SQL_INTEGER_MAX + 1}/feedback", {"score": 1}
        ),
        "feedback-string-message-id": posted(
            "/conversations/CONVERSATION_ID/messages/first/feedback", {"score": 1}
        ),
        "conversation-surrogate-name": posted("/conversations", {"name": "\ud800"}),
    }


def all_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for route, make in KB_NAME_ROUTES.items():
        cases |= {f"kb-{route}-{key}": make(name) for key, name in BAD_KB_NAMES.items()}
    for route, make in FILE_NAME_ROUTES.items():
        cases |= {f"file-{route}-{key}": make(name) for key, name in BAD_FILE_NAMES.items()}
        if route in ("download", "list-chunks", "download-temp"):
            # A query string cannot carry a lone surrogate: its UTF-8 bytes arrive as U+FFFD,
            # a valid name that no file has.
            cases[f"file-{route}-lone-surrogate"] = replace(
                cases[f"file-{route}-lone-surrogate"], status=404
            )
    for key, name in UPLOADABLE.items():
        fields = {"knowledge_base_name": KB}
        cases[f"file-upload-{key}"] = uploaded(f"{KB_ROUTE}/upload_docs", fields, name, 200)
        cases[f"file-upload-temp-{key}"] = uploaded(f"{KB_ROUTE}/upload_temp_docs", {}, name, 200)
    for key, temp_id in BAD_TEMP_IDS.items():
        cases[f"temp-chat-{key}"] = posted(
            "/chat/file_chat", {**CHAT, "knowledge_id": temp_id}, 404
        )
        cases[f"temp-download-{key}"] = got(
            f"{KB_ROUTE}/download_temp_doc", {"knowledge_id": temp_id, "file_name": "a.txt"}, 404
        )
        cases[f"temp-append-{key}"] = uploaded(
            f"{KB_ROUTE}/upload_temp_docs", {"prev_id": temp_id}, "dogs.txt", status=404
        )
    for route, (method, suffix, body) in CONVERSATION_ROUTES.items():
        for key, conversation_id in BAD_CONVERSATION_IDS.items():
            encoded = None if body is None else json.dumps(body).encode()
            path = f"/conversations/{conversation_id}{suffix}"
            cases[f"conversation-{route}-{key}"] = Case(method, path, encoded, status=404)
    return cases | body_cases()


CASES = all_cases()
