"""The web UI with a member key: it sees only its knowledge bases, and a write the key may
not make shows a clear message instead of a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from streamlit.testing.v1 import AppTest

from kb_server.access.keys import KeyStore
from kb_server.settings import Settings
from tests.servers import serve_on_loopback
from tests.webui.conftest import SHOP_FILES, SHOP_KB
from tests.webui.test_app import KB_PAGE
from tests.webui.test_auth_ui import app_test
from webui.api_client import ApiClient
from webui.transport import FORBIDDEN_MESSAGES

OTHER_KB = "space"


class MemberApi:
    def __init__(self, url: str, admin_key: str, reader_key: str) -> None:
        self.url = url
        self.admin_key = admin_key
        self.reader_key = reader_key


@pytest.fixture
def member_api(app: FastAPI, api_settings: Settings) -> Iterator[MemberApi]:
    """KBs "shop" and "space"; an admin key, and a key that may only read "shop"."""
    store = KeyStore(app.state.container.kb_service.db)
    admin_key, _ = store.create("admin", admin=True)
    reader_key, _ = store.create("shop-reader", admin=False, grants={SHOP_KB: "reader"})
    with serve_on_loopback(app, name="kb-api-members") as url:
        admin = ApiClient(url, api_key=admin_key, timeout_s=60)
        try:
            for kb in (SHOP_KB, OTHER_KB):
                admin.create_knowledge_base(kb)
            files = [(name, text.encode()) for name, text in SHOP_FILES.items()]
            assert admin.upload_docs(SHOP_KB, files).failed_files == {}
        finally:
            admin.close()
        yield MemberApi(url, admin_key, reader_key)


def kb_page(api: MemberApi, key: str) -> AppTest:
    at = app_test(api.url, key).run()
    at.switch_page(KB_PAGE).run()
    return at


def test_member_key_sees_only_its_kbs(member_api: MemberApi) -> None:
    at = kb_page(member_api, member_api.reader_key)
    assert not at.exception
    assert not at.error
    options = at.selectbox(key="kb_select").options
    assert SHOP_KB in options
    assert OTHER_KB not in options
    admin_options = kb_page(member_api, member_api.admin_key).selectbox(key="kb_select").options
    assert OTHER_KB in admin_options


def test_read_only_key_deleting_a_kb_sees_a_clear_refusal(member_api: MemberApi) -> None:
    at = kb_page(member_api, member_api.reader_key)
    at.selectbox(key="kb_select").set_value(SHOP_KB).run()
    at.checkbox(key=f"kb_delete_confirm_{SHOP_KB}").check().run()
    at.button(key="kb_delete").click().run()
    assert not at.exception
    assert [str(error.value) for error in at.error] == [FORBIDDEN_MESSAGES["kb_read_only"]]
    admin = ApiClient(member_api.url, api_key=member_api.admin_key)
    try:
        assert SHOP_KB in [kb.name for kb in admin.list_knowledge_bases()]
    finally:
        admin.close()
