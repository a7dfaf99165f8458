"""HTTP routes: parse, call the service, render. Sync functions run in the thread pool."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse

from api.errors import ERROR_RESPONSES
from api.schemas import MODE_DESCRIPTION, Health, SearchRequest, SearchResponse
from indexer.ranking import Mode
from indexer.service import SearchService

router = APIRouter()


def get_service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


Service = Annotated[SearchService, Depends(get_service)]


@router.get("/search", response_model=SearchResponse, responses=ERROR_RESPONSES, tags=["search"])
def search_get(
    service: Service,
    q: Annotated[str, Query(description="A question in German or English.")],
    k: Annotated[int | None, Query(description="How many passages to return.")] = None,
    mode: Annotated[Mode | None, Query(description=MODE_DESCRIPTION)] = None,
) -> dict[str, Any]:
    """Find the passages that best answer a German or English question.

    Each result is the best-matching sentence of one paragraph, with the paragraph as context.
    """
    return service.search(q, k, mode).to_json()


@router.post("/search", response_model=SearchResponse, responses=ERROR_RESPONSES, tags=["search"])
def search_post(service: Service, body: SearchRequest) -> dict[str, Any]:
    """Same as `GET /search`, with the question in a JSON body."""
    return service.search(body.query, body.k, body.mode).to_json()


@router.get("/info", responses=ERROR_RESPONSES, tags=["index"])
def info(service: Service) -> dict[str, Any]:
    """The index manifest: format version, model, dimension, counts, sources, checksums."""
    return service.info().to_json()


@router.get("/health", response_model=Health, tags=["operations"])
def health() -> Health:
    """Liveness: the process is up and answering."""
    return Health(status="ok")


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/docs")
