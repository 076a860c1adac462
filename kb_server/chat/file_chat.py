"""TempKnowledgeBases: the throwaway knowledge bases behind file chat.

Each upload batch becomes a KB named ``tmp_<id>`` in its own KnowledgeBaseService, rooted at
``<kb_root>/.temp_kbs`` with its own SQLite file, so it is never listed among the real KBs.
A temp KB is deleted once it is older than ``file_chat.ttl_s``; the sweep runs on every use
rather than on a timer, so no background thread outlives a request.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from kb_server.chat.prompts import PromptTemplates
from kb_server.chat.service import ChatService
from kb_server.db.conversations import as_utc
from kb_server.db.models import KnowledgeBase, utc_now
from kb_server.errors import KbError
from kb_server.knowledge.paths import InvalidNameError, validate_file_name
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.knowledge.types import KbNotFoundError
from kb_server.llm.base import LLMClient
from kb_server.settings import Settings, SplitterSettings

logger = logging.getLogger(__name__)

TEMP_KBS_FOLDER = ".temp_kbs"
TEMP_KB_PREFIX = "tmp_"
_TEMP_ID = re.compile(r"^[0-9a-f]{32}$")


class TempKbNotFoundError(KbError):
    code = "temp_kb_not_found"
    http_status = 404

    def __init__(self, temp_id: str) -> None:
        super().__init__(
            f"temporary knowledge base {temp_id!r} does not exist or has expired; "
            "upload the files again"
        )
        self.temp_id = temp_id


def temp_settings(settings: Settings) -> Settings:
    """The app's settings, rooted in ``<kb_root>/.temp_kbs`` with a SQLite file of its own and
    FAISS indexes: temporary KBs are local to this process even when KBs live in PostgreSQL."""
    vector_store = settings.vector_store.model_copy(update={"default_type": "faiss"})
    return settings.model_copy(
        update={
            "kb_root": settings.kb_root / TEMP_KBS_FOLDER,
            "database_url": None,
            "vector_store": vector_store,
        }
    )


class TempKnowledgeBases:
    def __init__(
        self,
        service: KnowledgeBaseService,
        chat: ChatService,
        *,
        ttl_s: int,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.service = service
        self.chat = chat
        self.ttl = timedelta(seconds=ttl_s)
        self.now = now

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        llm_clients: dict[str, LLMClient],
        templates: PromptTemplates,
        now: Callable[[], datetime] = utc_now,
    ) -> TempKnowledgeBases:
        """Temp KBs beside ``settings.kb_root``, answered with the app's LLMs and prompts."""
        # Any valid API key may use file chat: a temp KB's random id is what grants access.
        service = KnowledgeBaseService(temp_settings(settings), checks_access=False)
        chat = ChatService(service.settings, service, llm_clients=llm_clients, templates=templates)
        return cls(service, chat, ttl_s=settings.file_chat.ttl_s, now=now)

    @staticmethod
    def kb_name_of(temp_id: str) -> str:
        return f"{TEMP_KB_PREFIX}{temp_id}"

    def sweep(self) -> list[str]:
        """Delete the temp KBs older than the TTL; their ids."""
        deadline = self.now() - self.ttl
        expired = [
            kb.name
            for kb in self.service.list_kbs()
            if kb.name.startswith(TEMP_KB_PREFIX) and as_utc(kb.created_at) < deadline
        ]
        for name in expired:
            # Another request may have swept it meanwhile.
            with contextlib.suppress(KbNotFoundError):
                self.service.delete_kb(name)
            logger.info("file chat: deleted expired temporary knowledge base %s", name)
        return [name.removeprefix(TEMP_KB_PREFIX) for name in expired]

    def kb_name(self, temp_id: str) -> str:
        """The KB behind ``temp_id``, or TempKbNotFoundError when unknown or expired."""
        if not _TEMP_ID.match(temp_id):
            raise TempKbNotFoundError(temp_id)
        name = self.kb_name_of(temp_id)
        if not self.service.kb_exists(name):
            raise TempKbNotFoundError(temp_id)
        return name

    def create(self, splitter: SplitterSettings | None = None) -> str:
        temp_id = uuid.uuid4().hex
        name = self.kb_name_of(temp_id)
        self.service.create_kb(name, splitter=splitter)
        # Ages are measured with self.now, so the birth time must come from it too.
        with self.service.db.transaction() as session:
            row = session.scalars(select(KnowledgeBase).where(KnowledgeBase.name == name)).one()
            row.created_at = self.now()
        return temp_id

    def add_files(
        self,
        temp_id: str,
        uploads: Sequence[tuple[str, bytes]],
        splitter: SplitterSettings | None = None,
    ) -> dict[str, str]:
        """Save and index ``(file name, bytes)`` pairs; the failed ones with their reasons.

        A name uploaded again replaces the earlier file.
        """
        kb_name = self.kb_name(temp_id)
        failed: dict[str, str] = {}
        saved: list[str] = []
        for raw_name, data in uploads:
            try:
                name = validate_file_name(raw_name)
            except InvalidNameError as exc:
                failed[raw_name] = exc.message
                continue
            self.service.save_file(kb_name, name, data, override=True)
            saved.append(name)
        if saved:
            names = list(dict.fromkeys(saved))
            report = self.service.add_files(kb_name, names, splitter=splitter)
            failed.update(report.files_failed)
        return failed
