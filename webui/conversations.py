"""The sidebar's conversation list: choose, create, rename and delete, all through the API."""

from __future__ import annotations

import streamlit as st

from webui.api_client import ApiClient
from webui.api_models import Conversation
from webui.chat_view import TURNS_KEY, Turn
from webui.state import notify
from webui.transport import ApiError

CONVERSATION_KEY = "conversation_id"
_SELECT_KEY = "conversation_select"
_LOADED_KEY = "_loaded_conversation"
_RENAME_KEY = "conversation_rename"


def current_conversation_id() -> str | None:
    value = st.session_state.get(CONVERSATION_KEY)
    return str(value) if value else None


def select_conversation(conversation_id: str | None) -> None:
    # The selectbox follows on the next run (its key cannot change once it is drawn).
    st.session_state[CONVERSATION_KEY] = conversation_id


def start_new(client: ApiClient, name: str | None = None) -> Conversation | None:
    try:
        conversation = client.create_conversation(name)
    except ApiError as exc:
        notify("error", exc.message)
        return None
    select_conversation(conversation.id)
    st.session_state[_LOADED_KEY] = conversation.id
    st.session_state[TURNS_KEY] = []
    return conversation


def _on_new(client: ApiClient) -> None:
    start_new(client)


def _on_select() -> None:
    st.session_state[CONVERSATION_KEY] = st.session_state.get(_SELECT_KEY)


def _rename(client: ApiClient, conversation_id: str) -> None:
    name = str(st.session_state.get(_RENAME_KEY, "")).strip()
    if not name:
        notify("warning", "会话名称不能为空")
        return
    try:
        client.rename_conversation(conversation_id, name)
    except ApiError as exc:
        notify("error", exc.message)


def _delete(client: ApiClient, conversation_id: str) -> None:
    try:
        client.delete_conversation(conversation_id)
    except ApiError as exc:
        notify("error", exc.message)
        return
    clear_current()


def clear_current() -> None:
    """Back to an unsaved new conversation; the next question creates it."""
    select_conversation(None)
    st.session_state[TURNS_KEY] = []
    st.session_state[_LOADED_KEY] = None


def load_turns(client: ApiClient) -> None:
    """Fetch the current conversation's messages when it changed since the last run."""
    conversation_id = current_conversation_id()
    if st.session_state.get(_LOADED_KEY) == conversation_id:
        return
    st.session_state[_LOADED_KEY] = conversation_id
    if conversation_id is None:
        st.session_state[TURNS_KEY] = []
        return
    try:
        messages = client.list_messages(conversation_id)
    except ApiError as exc:
        st.error(exc.message)
        messages = []
    st.session_state[TURNS_KEY] = [Turn.of(message) for message in messages]


def render_conversations(client: ApiClient) -> None:
    with st.sidebar:
        st.subheader("会话")
        try:
            conversations = client.list_conversations()
        except ApiError as exc:
            st.caption(f"会话记录不可用：{exc.message}")
            return
        names = {item.id: f"{item.name}（{item.message_count}）" for item in conversations}
        current = current_conversation_id()
        if current is not None and current not in names:
            select_conversation(None)
            current = None
        # Written before the widget is drawn: with no entry it would show the first option
        # while no conversation is current.
        if _SELECT_KEY not in st.session_state or st.session_state[_SELECT_KEY] != current:
            st.session_state[_SELECT_KEY] = current
        st.selectbox(
            "当前会话",
            options=list(names),
            format_func=lambda item: names.get(item, str(item)),
            key=_SELECT_KEY,
            on_change=_on_select,
            placeholder="（新会话，提问后保存）",
        )
        new_col, delete_col = st.columns(2)
        new_col.button(
            "新建会话", on_click=_on_new, args=(client,), width="stretch", key="conversation_new"
        )
        if current is not None:
            delete_col.button(
                "删除会话",
                on_click=_delete,
                args=(client, current),
                width="stretch",
                key="conversation_delete",
            )
            with st.popover("重命名", width="stretch"):
                st.text_input("新名称", key=_RENAME_KEY)
                st.button(
                    "保存名称",
                    on_click=_rename,
                    args=(client, current),
                    key="conversation_save_name",
                )
