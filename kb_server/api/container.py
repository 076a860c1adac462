"""What the API's routes share, built once per app from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from kb_server.chat.service import ChatService
from kb_server.knowledge.jobs import JobRunner, JobStore
from kb_server.knowledge.maintenance import KbMaintenance
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.settings import Settings


@dataclass
class Container:
    settings: Settings
    kb_service: KnowledgeBaseService
    maintenance: KbMaintenance
    chat: ChatService
    # Started and stopped with the app (its lifespan); routes queue jobs into it.
    jobs: JobRunner

    @classmethod
    def from_settings(cls, settings: Settings) -> Container:
        kb_service = KnowledgeBaseService(settings)
        maintenance = KbMaintenance(kb_service)
        return cls(
            settings=settings,
            kb_service=kb_service,
            maintenance=maintenance,
            chat=ChatService(settings, kb_service),
            jobs=JobRunner(JobStore(kb_service.db), kb_service, maintenance, settings.jobs),
        )
