"""The Streamlit app driven by Streamlit's AppTest against the real API on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kb_server.api.app import create_app
from kb_server.settings import LlmEndpointSettings, Settings
from tests.servers import serve_on_loopback
from webui.api_client import ApiClient
from webui.state import API_URL_KEY

APP_FILE = Path(__file__).resolve().parents[2] / "webui" / "app.py"
KB_PAGE = "pages/knowledge_base.py"
QUESTION = "How long until refunds are paid?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_test(api_url: str) -> AppTest:
    test = AppTest.from_file(str(APP_FILE), default_timeout=60)
    test.session_state[API_URL_KEY] = api_url
    return test


def texts(at: AppTest) -> str:
    return "\n".join(str(item.value) for item in at.markdown)


def ask(at: AppTest, model: str, question: str = QUESTION) -> None:
    at.selectbox(key="chat_model_知识库问答").set_value(model).run()
    at.chat_input[0].set_value(question).run()


@pytest.fixture
def down_llm_api_url(api_settings: Settings) -> Iterator[str]:
    """An API with an extra LLM "down" configured on a port nothing listens on."""
    endpoint = LlmEndpointSettings(base_url=f"http://127.0.0.1:{free_port()}/v1")
    settings = api_settings.model_copy(update={"llm_models": {"down": endpoint}})
    with serve_on_loopback(create_app(settings), name="kb-api-llm-down") as base:
        yield base


def test_both_pages_render_with_status_line(api_url: str, shop_kb: str) -> None:
    at = app_test(api_url).run()
    assert not at.exception
    status = " ".join(str(caption.value) for caption in at.sidebar.caption)
    assert "API 已连接" in status
    assert "知识库 1 个" in status
    assert at.selectbox(key="chat_kb").value == shop_kb

    at.switch_page(KB_PAGE).run()
    assert not at.exception
    assert at.selectbox(key="kb_select").value == shop_kb
    assert "hours.txt" in str(at.dataframe[0].value)


def test_creating_kb_through_form_selects_it(api_url: str, api_client: ApiClient) -> None:
    at = app_test(api_url).run()
    at.switch_page(KB_PAGE).run()
    at.text_input(key="kb_new_name").input("manuals")
    at.text_area(key="kb_new_description").input("说明书")
    next(button for button in at.button if button.label == "新建").click().run()
    assert not at.exception
    assert at.selectbox(key="kb_select").value == "manuals"
    assert "manuals" in at.selectbox(key="kb_select").options
    assert [kb.description for kb in api_client.list_knowledge_bases()] == ["说明书"]


def test_kb_question_shows_cited_answer_and_sources(
    api_url: str, api_client: ApiClient, shop_kb: str
) -> None:
    at = app_test(api_url).run()
    ask(at, "extractive")
    assert not at.exception
    assert not at.error
    assert "Refunds are paid within fourteen days" in texts(at)
    assert any(expander.label.startswith("出处") for expander in at.expander)

    [conversation] = api_client.list_conversations()
    question, answer = api_client.list_messages(conversation.id)
    assert question.content == QUESTION
    assert "fourteen days" in answer.content
    assert answer.model == "extractive"
    assert answer.source_docs()[0].source == "退款 政策.txt"

    at.feedback[0].set_value(1).run()
    assert not at.exception
    assert api_client.list_messages(conversation.id)[1].feedback == 1


def test_conversation_reloads_in_new_session(
    api_url: str, api_client: ApiClient, shop_kb: str
) -> None:
    at = app_test(api_url).run()
    ask(at, "extractive")
    [conversation] = api_client.list_conversations()
    later = app_test(api_url).run()
    assert "Refunds are paid within fourteen days" not in texts(later)
    later.selectbox(key="conversation_select").set_value(conversation.id).run()
    assert not later.exception
    assert "Refunds are paid within fourteen days" in texts(later)


def test_unreachable_api_shows_message_not_traceback() -> None:
    at = app_test(f"http://127.0.0.1:{free_port()}").run()
    assert not at.exception
    assert any("API 无法连接" in str(caption.value) for caption in at.sidebar.caption)
    assert any("API 无法连接" in str(error.value) for error in at.error)
    at.switch_page(KB_PAGE).run()
    assert not at.exception
    assert any("API 无法连接" in str(error.value) for error in at.error)


def test_llm_failure_during_kb_chat_shows_error_and_sources(down_llm_api_url: str) -> None:
    client = ApiClient(down_llm_api_url)
    client.create_knowledge_base("shop")
    client.upload_docs("shop", [("refunds.txt", b"Refunds are paid within fourteen days.")])
    at = app_test(down_llm_api_url).run()
    ask(at, "down")
    assert not at.exception
    assert at.error
    assert any(expander.label.startswith("出处") for expander in at.expander)
    client.close()


def test_uploading_files_on_kb_page_lists_them(api_url: str, api_client: ApiClient) -> None:
    api_client.create_knowledge_base("docs")
    at = app_test(api_url).run()
    at.switch_page(KB_PAGE).run()
    at.file_uploader(key="kb_files").set_value(
        [
            ("a.txt", b"Refunds are paid within fourteen days.", "text/plain"),
            ("b.txt", b"The warehouse opens at nine.", "text/plain"),
        ]
    ).run()
    at.button(key="kb_upload").click().run()
    assert not at.exception
    assert not at.error
    assert {item.file_name for item in api_client.list_files("docs")} == {"a.txt", "b.txt"}
    assert "b.txt" in str(at.dataframe[0].value)

    at.button(key="kb_rebuild").click().run()
    assert not at.exception
    assert any("重建完成" in str(item.value) for item in at.success)


def test_file_chat_answers_from_uploaded_file(api_url: str) -> None:
    at = app_test(api_url).run()
    at.radio(key="chat_mode").set_value("文件对话").run()
    at.file_uploader(key="chat_files").set_value(
        ("refunds.txt", b"Refunds are paid within fourteen days.", "text/plain")
    ).run()
    at.button(key="chat_upload").click().run()
    at.selectbox(key="chat_model_文件对话").set_value("extractive").run()
    at.chat_input[0].set_value(QUESTION).run()
    assert not at.exception
    assert not at.error
    assert "Refunds are paid within fourteen days" in texts(at)


def test_sidebar_creates_renames_and_deletes_conversations(
    api_url: str, api_client: ApiClient
) -> None:
    at = app_test(api_url).run()
    at.sidebar.button(key="conversation_new").click().run()
    [conversation] = api_client.list_conversations()
    assert at.selectbox(key="conversation_select").value == conversation.id

    at.text_input(key="conversation_rename").input("周报")
    at.button(key="conversation_save_name").click().run()
    assert [item.name for item in api_client.list_conversations()] == ["周报"]

    at.button(key="conversation_delete").click().run()
    assert not at.exception
    assert api_client.list_conversations() == []
    assert at.selectbox(key="conversation_select").value is None


def test_editing_a_chunk_and_deleting_the_kb(
    api_url: str, api_client: ApiClient, shop_kb: str
) -> None:
    at = app_test(api_url).run()
    at.switch_page(KB_PAGE).run()
    at.selectbox(key=f"chunk_file_{shop_kb}").set_value("hours.txt").run()
    [chunk] = api_client.list_file_chunks(shop_kb, "hours.txt")
    at.text_area(key=f"chunk_text_{chunk.id}").input("The warehouse opens at ten.")
    at.button(key="chunk_save").click().run()
    assert not at.exception
    assert not at.error
    [edited] = api_client.list_file_chunks(shop_kb, "hours.txt")
    assert edited.text == "The warehouse opens at ten."

    assert at.button(key="kb_delete").disabled
    at.checkbox(key=f"kb_delete_confirm_{shop_kb}").check().run()
    at.button(key="kb_delete").click().run()
    assert not at.exception
    assert api_client.list_knowledge_bases() == []
    assert at.selectbox(key="kb_select").value == "＋ 新建知识库"
