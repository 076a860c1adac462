"""``create_app(settings)``: the HTTP API over the knowledge-base and chat services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel, Field

from kb_server import __version__
from kb_server.access.authenticator import Authenticator
from kb_server.access.keys import KeyStore
from kb_server.api.auth import ApiKeyMiddleware, warn_if_exposed
from kb_server.api.consistency import ConsistencyState, StartupConsistencyCheck
from kb_server.api.container import Container
from kb_server.api.error_handlers import install_error_handlers
from kb_server.api.request_log import RequestLogMiddleware
from kb_server.api.routers import ROUTERS
from kb_server.settings import Settings, load_settings


class Health(BaseModel):
    status: str
    version: str
    knowledge_bases: int
    default_model: str
    consistency: ConsistencyState = Field(
        description="the check of every KB run at start: checking, ok or problems"
    )
    inconsistent_knowledge_bases: list[str] = Field(
        description="KBs to mend with python init_database.py --check --repair -n NAME"
    )


def create_app(settings: Settings, container: Container | None = None) -> FastAPI:
    services = container or Container.from_settings(settings)
    consistency = StartupConsistencyCheck(services.maintenance)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        consistency.start()
        services.jobs.start()
        try:
            yield
        finally:
            # Running jobs go back to the queue at their next check; the next start resumes.
            await anyio.to_thread.run_sync(services.jobs.stop)

    app = FastAPI(
        title="kb-server",
        version=__version__,
        description="Offline-first knowledge-base question answering (Langchain-Chatchat "
        "compatible routes, OpenAI-compatible chat).",
        lifespan=lifespan,
    )
    app.state.container = services
    app.state.consistency = consistency
    install_error_handlers(app)
    key_store = KeyStore(services.kb_service.db)
    warn_if_exposed(settings.api.host, settings.api.api_keys, stored_keys=key_store.has_keys())
    # add_middleware puts each one outside the ones before it: CORS must be outermost, so
    # that it answers preflights itself and adds its headers to the 401s of the key check.
    # Always installed: keys made with the CLI while the API runs turn authentication on.
    authenticator = Authenticator(
        settings.api.api_keys, key_store, ttl_s=settings.api.key_cache_ttl_s
    )
    app.add_middleware(ApiKeyMiddleware, authenticator=authenticator)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # Outermost: every request is logged, refused ones included.
    app.add_middleware(RequestLogMiddleware, routes_of=app)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/health", tags=["health"])
    def health() -> Health:
        state: Container = app.state.container
        return Health(
            status="ok",
            version=__version__,
            knowledge_bases=len(state.kb_service.list_kbs()),
            default_model=state.settings.default_llm_model,
            consistency=consistency.state,
            inconsistent_knowledge_bases=consistency.inconsistent_kbs(),
        )

    return app


def create_app_from_environment() -> FastAPI:
    """The app with settings from the settings file and ``KB_*`` variables: the factory each
    uvicorn worker process calls (``python -m kb_server.api --workers N``)."""
    return create_app(load_settings())
