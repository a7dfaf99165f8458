"""HTTP routes: parse, call the service, render. Sync functions run in the thread pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from api.errors import ERROR_RESPONSES
from api.schemas import (
    FILTER_DESCRIPTION,
    MODE_DESCRIPTION,
    CollectionInfo,
    Health,
    SearchRequest,
    SearchResponse,
)
from indexer.catalog import Catalog
from indexer.filters import parse_filters
from indexer.ranking import Mode
from indexer.service import SearchService

router = APIRouter()

STATIC_DIR = Path(__file__).resolve().parent / "static"  # the search page; mounted at /static
# the page loads nothing from elsewhere; the policy also stops injected markup from running
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
}


def get_service(
    request: Request,
    collection: Annotated[
        str | None, Query(description="The collection to use (default: the server's default).")
    ] = None,
) -> SearchService:
    catalog: Catalog = request.app.state.catalog
    return catalog.service(collection or request.app.state.default_collection)


Service = Annotated[SearchService, Depends(get_service)]


@router.get("/search", response_model=SearchResponse, responses=ERROR_RESPONSES, tags=["search"])
def search_get(
    service: Service,
    q: Annotated[str, Query(description="A question in German or English.")],
    k: Annotated[int | None, Query(description="How many passages to return.")] = None,
    mode: Annotated[Mode | None, Query(description=MODE_DESCRIPTION)] = None,
    filter: Annotated[list[str] | None, Query(description=FILTER_DESCRIPTION)] = None,
) -> dict[str, Any]:
    """Find the passages that best answer a German or English question.

    Each result is the best-matching sentence of one paragraph, with the paragraph as context.
    """
    return service.search(q, k, mode, parse_filters(filter or [])).to_json()


@router.post("/search", response_model=SearchResponse, responses=ERROR_RESPONSES, tags=["search"])
def search_post(service: Service, body: SearchRequest) -> dict[str, Any]:
    """Same as `GET /search`, with the question in a JSON body."""
    return service.search(body.query, body.k, body.mode, body.filters).to_json()


@router.get("/info", responses=ERROR_RESPONSES, tags=["index"])
def info(service: Service) -> dict[str, Any]:
    """The index manifest: format version, model, dimension, counts, sources, checksums."""
    return service.info().to_json()


@router.get("/collections", response_model=list[CollectionInfo], tags=["index"])
def collections(request: Request) -> list[CollectionInfo]:
    """The collections (named indexes) this server can search, with their sizes."""
    catalog: Catalog = request.app.state.catalog
    infos = []
    for name in catalog.names():
        manifest = catalog.service(name).info()
        infos.append(
            CollectionInfo(
                name=name,
                documents=manifest.documents,
                passages=manifest.passages,
                model=manifest.model,
                created_at=manifest.created_at,
            )
        )
    return infos


@router.get("/health", response_model=Health, tags=["operations"])
def health() -> Health:
    """Liveness: the process is up and answering."""
    return Health(status="ok")


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The search page: static HTML whose script calls `/search`, `/info` and `/openapi.json`."""
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)
