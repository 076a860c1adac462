"""The web UI and its client against an API with API keys on, over loopback."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.webui.conftest import REFUNDS, SHOP_FILES, SHOP_KB, UI_KEYS
from tests.webui.test_app import KB_PAGE, ask, texts
from tests.webui.test_app import app_test as keyless_app_test
from webui.api_client import ApiClient
from webui.api_models import ChatDocs, ChatParams
from webui.state import API_KEY_KEY
from webui.transport import ApiError


def app_test(api_url: str, key: str) -> AppTest:
    test = keyless_app_test(api_url)
    test.session_state[API_KEY_KEY] = key
    return test


@pytest.fixture
def keyed_shop(keyed_client: ApiClient) -> str:
    keyed_client.create_knowledge_base(SHOP_KB, description="商店")
    files = [(name, text.encode()) for name, text in SHOP_FILES.items()]
    assert keyed_client.upload_docs(SHOP_KB, files).failed_files == {}
    return SHOP_KB


def test_client_without_key_gets_401(keyed_api_url: str) -> None:
    client = ApiClient(keyed_api_url)
    try:
        assert client.health().status == "ok"
        with pytest.raises(ApiError) as failure:
            client.list_knowledge_bases()
        assert (failure.value.status, failure.value.code) == (401, "unauthorized")
        with pytest.raises(ApiError) as streamed:
            list(client.kb_chat("refunds?", SHOP_KB, ChatParams(model_name="extractive")))
        assert streamed.value.status == 401
    finally:
        client.close()


def test_client_sends_key_on_every_call_and_stream(
    keyed_client: ApiClient, keyed_shop: str
) -> None:
    assert [kb.name for kb in keyed_client.list_knowledge_bases()] == [keyed_shop]
    events = list(
        keyed_client.kb_chat("How long until refunds are paid?", keyed_shop, ChatParams())
    )
    [docs] = [event for event in events if isinstance(event, ChatDocs)]
    # A source's url is fetched with the key, as the UI's download button does.
    assert keyed_client.fetch(docs.docs[0].url) == REFUNDS.encode()
    with pytest.raises(ApiError):
        keyed_client.fetch(keyed_client.base_url + docs.docs[0].url)


def test_ui_lists_kbs_and_answers_with_keys_on(
    keyed_api_url: str, keyed_client: ApiClient, keyed_shop: str
) -> None:
    at = app_test(keyed_api_url, UI_KEYS[1]).run()
    assert not at.exception
    assert not at.error
    assert any("API 已连接" in str(caption.value) for caption in at.sidebar.caption)
    assert at.selectbox(key="chat_kb").value == keyed_shop

    ask(at, "extractive")
    assert not at.exception
    assert not at.error
    assert "Refunds are paid within fourteen days" in texts(at)
    labels = [button.label for button in at.download_button]
    assert "下载 退款 政策.txt" in labels
    [conversation] = keyed_client.list_conversations()
    assert len(keyed_client.list_messages(conversation.id)) == 2

    at.switch_page(KB_PAGE).run()
    at.multiselect(key=f"kb_file_select_{keyed_shop}").set_value(["hours.txt"]).run()
    assert not at.exception
    assert not at.error
    assert "hours.txt" in str(at.dataframe[0].value)
    assert "下载 hours.txt" in [button.label for button in at.download_button]


def test_ui_without_key_shows_401_not_traceback(keyed_api_url: str, keyed_shop: str) -> None:
    at = app_test(keyed_api_url, "").run()
    assert not at.exception
    assert any("API 密钥" in str(caption.value) for caption in at.sidebar.caption)
    assert any("API 密钥" in str(error.value) for error in at.error)
    assert not any(keyed_shop == str(box.value) for box in at.selectbox)
