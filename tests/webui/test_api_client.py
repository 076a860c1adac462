"""The web UI's API client against the real API on loopback."""

from __future__ import annotations

import socket

import pytest

from tests.webui.conftest import HOURS, REFUNDS, SHOP_FILES
from webui.api_client import ApiClient
from webui.api_models import ChatDelta, ChatDocs, ChatParams
from webui.transport import ApiError


def test_health_and_models(api_client: ApiClient, shop_kb: str) -> None:
    health = api_client.health()
    assert health.status == "ok"
    assert health.knowledge_bases == 1
    models = api_client.list_models()
    assert "extractive" in models
    assert "tiny-qwen" in models
    assert not any(name.startswith("kb/") for name in models)


def test_knowledge_base_lifecycle(api_client: ApiClient, shop_kb: str) -> None:
    [kb] = api_client.list_knowledge_bases()
    assert (kb.name, kb.description, kb.file_count) == (shop_kb, "商店", 2)

    files = {item.file_name: item for item in api_client.list_files(shop_kb)}
    assert set(files) == set(SHOP_FILES)
    assert files["hours.txt"].status == "indexed"
    assert files["hours.txt"].chunk_count >= 1

    [chunk] = api_client.list_file_chunks(shop_kb, "hours.txt")
    edited = api_client.update_chunk(shop_kb, chunk.id, "The warehouse opens at ten.")
    assert edited.text == "The warehouse opens at ten."
    hits = api_client.search_docs(shop_kb, "When does the warehouse open?", top_k=1)
    assert hits[0].id == chunk.id

    assert api_client.download_doc(shop_kb, "hours.txt") == HOURS.encode()
    updated = api_client.update_docs(shop_kb, ["hours.txt"])
    assert [item.file_name for item in updated.files] == ["hours.txt"]

    deleted = api_client.delete_docs(shop_kb, ["hours.txt"])
    assert deleted.failed_files == {}
    assert [item.file_name for item in api_client.list_files(shop_kb)] == ["退款 政策.txt"]

    api_client.delete_knowledge_base(shop_kb)
    assert api_client.list_knowledge_bases() == []


def test_upload_reports_failed_files(api_client: ApiClient, shop_kb: str) -> None:
    result = api_client.upload_docs(shop_kb, [("hours.txt", b"again")])
    assert set(result.failed_files) == {"hours.txt"}
    assert result.files[0].status == "failed"


def test_recreate_vector_store_streams_progress(api_client: ApiClient, shop_kb: str) -> None:
    events = list(api_client.recreate_vector_store(shop_kb, force=True))
    progress = [event for event in events if event.summary is None]
    assert [event.finished for event in progress] == [1, 2]
    assert all(event.total == 2 for event in progress)
    assert events[-1].summary is not None
    assert events[-1].summary["indexed"] == 2


def test_kb_chat_stream_yields_deltas_then_docs(api_client: ApiClient, shop_kb: str) -> None:
    params = ChatParams(model_name="extractive", top_k=2)
    events = list(api_client.kb_chat("How long until refunds are paid?", shop_kb, params))
    answer = "".join(event.text for event in events if isinstance(event, ChatDelta))
    assert "fourteen days" in answer
    assert isinstance(events[-1], ChatDocs)
    assert events[-1].docs[0].source == "退款 政策.txt"
    assert REFUNDS.split(".")[0] in events[-1].docs[0].text
    assert events[-1].docs[0].url.startswith("/knowledge_base/download_doc?")


def test_kb_chat_sends_the_chosen_search_mode(api_client: ApiClient, shop_kb: str) -> None:
    def sources(mode: str) -> set[str]:
        params = ChatParams(model_name="extractive", top_k=3, search_mode=mode)
        events = list(api_client.kb_chat("fourteen days", shop_kb, params))
        assert isinstance(events[-1], ChatDocs)
        return {doc.source for doc in events[-1].docs}

    # Keyword search only returns chunks holding a word of the question; dense returns neighbours.
    assert sources("bm25") == {"退款 政策.txt"}
    assert len(sources("dense")) == 2


def test_llm_chat_stream_with_tiny_model(api_client: ApiClient) -> None:
    params = ChatParams(model_name="tiny-qwen", temperature=0.0, max_tokens=4)
    events = list(api_client.llm_chat("你好", params))
    assert events
    assert all(isinstance(event, ChatDelta) for event in events)


def test_refused_stream_raises_before_any_event(api_client: ApiClient) -> None:
    # extractive answers knowledge-base questions only: refused before streaming starts.
    with pytest.raises(ApiError) as caught:
        list(api_client.llm_chat("你好", ChatParams(model_name="extractive")))
    assert caught.value.status == 422


def test_unknown_kb_is_api_error_with_code(api_client: ApiClient) -> None:
    with pytest.raises(ApiError) as caught:
        api_client.list_files("nope")
    assert (caught.value.status, caught.value.code) == (404, "kb_not_found")
    with pytest.raises(ApiError) as caught:
        list(api_client.kb_chat("question", "nope", ChatParams(model_name="extractive")))
    assert (caught.value.status, caught.value.code) == (404, "kb_not_found")


def test_existing_kb_is_409(api_client: ApiClient, shop_kb: str) -> None:
    with pytest.raises(ApiError) as caught:
        api_client.create_knowledge_base(shop_kb)
    assert (caught.value.status, caught.value.code) == (409, "kb_exists")


def test_validation_error_carries_message(api_client: ApiClient, shop_kb: str) -> None:
    with pytest.raises(ApiError) as caught:
        api_client.search_docs(shop_kb, "question", top_k=0)
    assert (caught.value.status, caught.value.code) == (422, "invalid_request")
    assert "top_k" in caught.value.message


def test_refused_connection_is_api_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ApiClient(f"http://127.0.0.1:{port}")
    with pytest.raises(ApiError) as caught:
        client.health()
    assert (caught.value.status, caught.value.code) == (0, "api_unreachable")
    assert f"127.0.0.1:{port}" in caught.value.message
    with pytest.raises(ApiError):
        list(client.kb_chat("question", "shop", ChatParams()))


def test_conversation_lifecycle(api_client: ApiClient, shop_kb: str) -> None:
    conversation = api_client.create_conversation("退款问题")
    params = ChatParams(model_name="extractive")
    events = list(api_client.kb_chat("How long until refunds are paid?", shop_kb, params))
    assert isinstance(events[-1], ChatDocs)
    docs = events[-1].docs
    api_client.add_message(conversation.id, "user", "退款多久到账？")
    answer = api_client.add_message(
        conversation.id, "assistant", "fourteen days [1]", docs=docs, model="extractive"
    )
    assert answer.source_docs() == docs

    renamed = api_client.rename_conversation(conversation.id, "退款")
    assert (renamed.name, renamed.message_count) == ("退款", 2)
    [listed] = api_client.list_conversations()
    assert listed.id == conversation.id

    rated = api_client.set_feedback(conversation.id, answer.id, -1, "不准确")
    assert (rated.feedback, rated.feedback_reason) == (-1, "不准确")
    messages = api_client.list_messages(conversation.id)
    assert [message.role for message in messages] == ["user", "assistant"]
    assert messages[1].feedback == -1
    assert messages[1].model == "extractive"

    api_client.delete_conversation(conversation.id)
    assert api_client.list_conversations() == []
    with pytest.raises(ApiError) as caught:
        api_client.list_messages(conversation.id)
    assert caught.value.status == 404


def test_file_chat_over_temp_docs(api_client: ApiClient) -> None:
    temp = api_client.upload_temp_docs([("refunds.txt", REFUNDS.encode())])
    assert temp.failed_files == {}
    more = api_client.upload_temp_docs([("hours.txt", HOURS.encode())], prev_id=temp.id)
    assert more.id == temp.id

    params = ChatParams(model_name="extractive", top_k=2)
    events = list(api_client.file_chat("How long until refunds are paid?", temp.id, params))
    answer = "".join(event.text for event in events if isinstance(event, ChatDelta))
    assert "fourteen days" in answer
    assert isinstance(events[-1], ChatDocs)
    assert {doc.source for doc in events[-1].docs} == {"refunds.txt", "hours.txt"}

    with pytest.raises(ApiError) as caught:
        list(api_client.file_chat("question", "unknown-id", params))
    assert caught.value.status == 404
