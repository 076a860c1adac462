"""One router per area; ``ROUTERS`` is the list create_app() includes."""

from __future__ import annotations

from fastapi import APIRouter

from kb_server.api.routers import (
    chat,
    citations,
    conversations,
    file_chat,
    jobs,
    knowledge_base,
    openai_compat,
)

ROUTERS: list[APIRouter] = [
    knowledge_base.router,
    jobs.router,
    citations.router,
    chat.router,
    file_chat.router,
    conversations.router,
    openai_compat.router,
]
