"""FastAPI dependencies: the container and its services, typed for route signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kb_server.api.container import Container
from kb_server.chat.service import ChatService
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def get_kb_service(container: Annotated[Container, Depends(get_container)]) -> KnowledgeBaseService:
    return container.kb_service


def get_maintenance(container: Annotated[Container, Depends(get_container)]) -> KbMaintenance:
    return container.maintenance


def get_chat(container: Annotated[Container, Depends(get_container)]) -> ChatService:
    return container.chat


ContainerDep = Annotated[Container, Depends(get_container)]
KbServiceDep = Annotated[KnowledgeBaseService, Depends(get_kb_service)]
MaintenanceDep = Annotated[KbMaintenance, Depends(get_maintenance)]
ChatDep = Annotated[ChatService, Depends(get_chat)]
