"""Property-based requests to every operation of the app's own OpenAPI schema: none is a 5xx.

The app runs over a temp KB root. Before each operation is fuzzed, a small KB ("samples",
the name the schema's examples use) with one file, a temporary KB and a conversation with
one message exist; some generated requests name them, so that they get past the 404s. What
the fuzzer changes (deleting that KB, say) is fine. Chats answer with the default model,
"extractive"; a model the fuzzer names is unknown, which must be a 4xx.

Each operation runs as its own Hypothesis test inside one pytest test: schemathesis'
``from_fixture`` renames pytest nodes through an attribute that pytest 9 no longer has.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from kb_server.settings import Settings

KB_NAME = "samples"
FILE_NAME = "policy.txt"
DOC = "退货政策：商品签收后七天内可申请退货，退款在三个工作日内原路返回。".encode()
# Per operation, shared by the schema's examples and the generated valid and invalid requests.
MAX_EXAMPLES = 12
Case = schemathesis.Case[Any]


def seed(client: TestClient, temp_kb_id: str) -> dict[str, Any]:
    """Makes sure the KB and its file exist, adds a conversation with an answer in it;
    returns the values requests may name them by."""
    created = client.post(
        "/knowledge_base/create_knowledge_base", json={"knowledge_base_name": KB_NAME}
    )
    assert created.status_code in (200, 409), created.text
    listed = client.get("/knowledge_base/list_files", params={"knowledge_base_name": KB_NAME})
    if FILE_NAME not in listed.json()["data"]:
        uploaded = client.post(
            "/knowledge_base/upload_docs",
            data={"knowledge_base_name": KB_NAME, "override": "true"},
            files=[("files", (FILE_NAME, DOC, "text/plain"))],
        )
        assert uploaded.json()["data"]["failed_files"] == {}, uploaded.text
    chunks = client.get(
        "/knowledge_base/list_file_chunks",
        params={"knowledge_base_name": KB_NAME, "file_name": FILE_NAME},
    ).json()["data"]
    conversation = client.post("/conversations", json={}).json()["id"]
    message = client.post(
        f"/conversations/{conversation}/messages", json={"role": "assistant", "content": "你好"}
    ).json()["id"]
    return {
        "knowledge_base_name": KB_NAME,
        "file_name": FILE_NAME,
        "chunk_id": chunks[0]["id"],
        "model": f"kb/{KB_NAME}",
        "knowledge_id": temp_kb_id,
        "prev_id": temp_kb_id,
        "conversation_id": conversation,
        "message_id": message,
    }


@pytest.fixture
def hypothesis_home(tmp_path: Path) -> Iterator[None]:
    """Hypothesis caches constants and Unicode tables even without its database; in tmp."""
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture
def temp_kb_id(api_settings: Settings, client: TestClient) -> str:
    # Whatever the fuzzer creates stays under the temp KB root.
    assert api_settings.kb_root.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert api_settings.default_llm_model == "extractive"
    uploaded = client.post(
        "/knowledge_base/upload_temp_docs", files=[("files", (FILE_NAME, DOC, "text/plain"))]
    )
    assert uploaded.status_code == 200, uploaded.text
    temp_id: str = uploaded.json()["data"]["id"]
    return temp_id


def naming(known: dict[str, Any]) -> Callable[[Case], Case]:
    """A case mapper that swaps the fields and parameters ``known`` has for its values."""

    def named(case: Case) -> Case:
        body = case.body if isinstance(case.body, dict) else {}
        for values in (case.path_parameters, case.query, body):
            for key in known.keys() & values.keys():
                values[key] = known[key]
        return case

    return named


def checks_for(response: schemathesis.Response) -> list[schemathesis.CheckFunction]:
    """No 5xx, and a body as documented, except for the app's own 422s: FastAPI documents a
    422 as its list of validation errors only, while a service's InvalidInputError answers
    ``{"detail": {"code", "message"}}`` with that status."""
    checks: list[schemathesis.CheckFunction] = [schemathesis.checks.not_a_server_error]
    if response.status_code != 422 or not isinstance(response.json().get("detail"), dict):
        checks.append(schemathesis.checks.response_schema_conformance)
    return checks


def fuzz(
    schema: schemathesis.BaseSchema,
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    known: dict[str, Any],
) -> None:
    """Raises the failures of ``operation``: the schema's examples first, then generated
    requests, valid ones (some naming what exists) and invalid ones."""
    valid = operation.as_strategy(schemathesis.GenerationMode("positive"))
    cases = st.one_of(
        *schema.get_strategies_from_examples(operation),
        valid.map(naming(known)),
        valid,
        operation.as_strategy(schemathesis.GenerationMode("negative")),
    )

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        # No shrinking: a failure is reported as found, and a slow route cannot make it run long.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Case) -> None:
        response = case.call()
        case.validate_response(response, checks=checks_for(response))

    run()


@pytest.mark.usefixtures("hypothesis_home")
def test_no_operation_answers_a_server_error(
    app: FastAPI, client: TestClient, temp_kb_id: str
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        operations += 1
        try:
            fuzz(schema, operation, seed(client, temp_kb_id))
        # FailureGroup, the failed checks, is a BaseExceptionGroup.
        except (Exception, FailureGroup) as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert operations > 20
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
