"""Per-session objects kept in ``st.session_state``: the API client and one-shot notices."""

from __future__ import annotations

import os

import streamlit as st

from webui.api_client import ApiClient

# Set by the env var or by a test through st.session_state; wins over settings.yaml.
API_URL_ENV = "KB_WEBUI__API_BASE_URL"
API_URL_KEY = "api_base_url"
_CLIENT_KEY = "_api_client"
_NOTICE_KEY = "_notices"


def api_base_url() -> str:
    url = st.session_state.get(API_URL_KEY) or os.environ.get(API_URL_ENV)
    if url:
        return str(url).rstrip("/")
    from kb_server.settings import load_settings

    return load_settings().api_base_url()


def get_client() -> ApiClient:
    """One client per session, replaced when the API URL changes."""
    url = api_base_url()
    client = st.session_state.get(_CLIENT_KEY)
    if not isinstance(client, ApiClient) or client.base_url != url:
        if isinstance(client, ApiClient):
            client.close()
        client = ApiClient(url)
        st.session_state[_CLIENT_KEY] = client
    return client


def notify(kind: str, message: str) -> None:
    """Keep a message for the next run: callbacks and actions followed by st.rerun() use it."""
    st.session_state.setdefault(_NOTICE_KEY, []).append((kind, message))


def show_notices() -> None:
    for kind, message in st.session_state.pop(_NOTICE_KEY, []):
        if kind == "error":
            st.error(message)
        elif kind == "warning":
            st.warning(message)
        else:
            st.success(message)
