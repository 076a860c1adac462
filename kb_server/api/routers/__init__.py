"""One router per area; ``ROUTERS`` is the list create_app() includes."""

from __future__ import annotations

from fastapi import APIRouter

from kb_server.api.routers import chat, conversations, file_chat, knowledge_base, openai_compat

ROUTERS: list[APIRouter] = [
    knowledge_base.router,
    chat.router,
    file_chat.router,
    conversations.router,
    openai_compat.router,
]
