"""Per-session objects kept in ``st.session_state``: the API client and one-shot notices."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import streamlit as st

from webui.api_client import ApiClient

if TYPE_CHECKING:
    from kb_server.settings import Settings

# Set by the env var or by a test through st.session_state; wins over settings.yaml.
API_URL_ENV = "KB_WEBUI__API_BASE_URL"
API_URL_KEY = "api_base_url"
# The API key to send; set by a test through st.session_state ("" for none), else the
# settings' webui.api_key (env KB_WEBUI__API_KEY, e.g. a member key made with
# "python -m kb_server.cli keys create"), else the first of api.api_keys.
API_KEY_KEY = "api_key"
_SETTINGS_KEY = "_settings"
_CLIENT_KEY = "_api_client"
_NOTICE_KEY = "_notices"


def _settings() -> Settings:
    """The installation's settings, loaded once per session."""
    from kb_server.settings import Settings, load_settings

    settings = st.session_state.get(_SETTINGS_KEY)
    if not isinstance(settings, Settings):
        settings = load_settings()
        st.session_state[_SETTINGS_KEY] = settings
    return settings


def api_base_url() -> str:
    url = st.session_state.get(API_URL_KEY) or os.environ.get(API_URL_ENV)
    if url:
        return str(url).rstrip("/")
    return _settings().api_base_url()


def api_key() -> str | None:
    if API_KEY_KEY in st.session_state:
        return str(st.session_state[API_KEY_KEY] or "") or None
    settings = _settings()
    if settings.webui.api_key:
        return settings.webui.api_key
    keys = settings.api.api_keys
    return keys[0] if keys else None


def get_client() -> ApiClient:
    """One client per session, replaced when the API URL or key changes."""
    url, key = api_base_url(), api_key()
    client = st.session_state.get(_CLIENT_KEY)
    if not isinstance(client, ApiClient) or client.base_url != url or client.api_key != key:
        if isinstance(client, ApiClient):
            client.close()
        client = ApiClient(url, api_key=key)
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
