"""The FastAPI application factory. The model and index are loaded once, in lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from api.errors import install_error_handlers
from api.observability import Metrics, ObservabilityMiddleware
from api.routes import STATIC_DIR, body_rules, reads, router, writes
from api.security import HeadCheckMiddleware
from indexer.catalog import Catalog, create_catalog
from indexer.errors import IndexNotFoundError
from indexer.settings import Settings
from indexer.versions import findling_version

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> FastAPI:
    """Build the app for ``settings`` (or a ready ``catalog`` of collections, as tests pass)."""
    settings = settings or Settings()
    catalog = catalog or create_catalog(settings)
    default = catalog.service(settings.collection)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        default.embedder.load()
        try:
            default.load()
        except IndexNotFoundError as exc:
            # serve anyway: /health answers and /search says how to build the index
            log.warning("%s", exc)
        yield

    app = FastAPI(
        title="findling",
        summary="Multilingual semantic search over German and English documents.",
        description=(
            "Ask a question in German or English and get the most similar sentences from the "
            "indexed documents, each with its paragraph as context, its source file and exact "
            "character offsets. An English question finds German text and vice versa."
        ),
        version=findling_version(),
        lifespan=lifespan,
    )
    app.state.catalog = catalog
    app.state.settings = settings
    app.state.default_collection = settings.collection
    app.state.metrics = Metrics()
    app.state.body_rules = body_rules(settings)
    install_error_handlers(app)
    app.include_router(reads)
    app.include_router(writes)
    app.include_router(router)
    # outermost last: the Host is checked before CORS, and metrics see every response
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(HeadCheckMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
