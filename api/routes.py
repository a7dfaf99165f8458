"""HTTP routes: parse, call the service, render. Sync functions run in the thread pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.convertors import Convertor, register_url_convertor

from api.errors import ERROR_RESPONSES, READY_RESPONSES, WRITE_RESPONSES, error_response
from api.observability import observe_index
from api.routing import BodyRules, OpenRoute, ReadRoute, WriteRoute
from api.schemas import (
    ALLOW_PARTIAL_DESCRIPTION,
    FILTER_DESCRIPTION,
    GROUP_DESCRIPTION,
    MAX_ID_CHARS,
    MIN_SCORE_DESCRIPTION,
    MODE_DESCRIPTION,
    OFFSET_DESCRIPTION,
    BatchSearchRequest,
    BatchSearchResponse,
    CollectionInfo,
    DocumentIn,
    DocumentListResponse,
    DocumentsRequest,
    EmbeddingsRequest,
    EmbeddingsResponse,
    Health,
    Ready,
    SearchRequest,
    SearchResponse,
    SimilarRequest,
    WriteResult,
)
from indexer.catalog import Catalog
from indexer.defaults import (
    DOCUMENTS_PAGE,
    MAX_DOCUMENTS_PAGE,
    MAX_FILTER_CHARS,
    MAX_FILTER_VALUES,
    MAX_FILTERS,
    MAX_OFFSET,
    Group,
    Mode,
)
from indexer.documents import Document, make_document
from indexer.errors import FindlingError, InvalidRequestError, PayloadTooLargeError
from indexer.filters import parse_filters
from indexer.schemas import DocumentResponse
from indexer.service import BuildSummary, SearchService
from indexer.settings import Settings

# the route class checks the caller's key before the body is read (see api.routing)
router = APIRouter(route_class=OpenRoute)
reads = APIRouter(route_class=ReadRoute, responses=ERROR_RESPONSES)
writes = APIRouter(route_class=WriteRoute, responses=WRITE_RESPONSES)

STATIC_DIR = Path(__file__).resolve().parent / "static"  # the search page; mounted at /static
# the page loads nothing from elsewhere; the policy also stops injected markup from running
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
}


# JSON may write any character as \\uXXXX: a body of N characters is at most 6N bytes
JSON_BYTES_PER_CHAR = 6


def body_rules(settings: Settings) -> BodyRules:
    """The largest body each route takes: what its largest valid request needs, so that a
    list or a filter map is never parsed far past what the settings allow."""
    # every key and value of the largest filter as long as allowed, and room for the operators
    # and the $and/$or brackets around each condition
    strings = (MAX_FILTERS + MAX_FILTER_VALUES) * MAX_FILTER_CHARS
    filters = strings * JSON_BYTES_PER_CHAR + MAX_FILTERS * 256
    query = JSON_BYTES_PER_CHAR * settings.max_query_chars + filters + 1024
    embedding_input = JSON_BYTES_PER_CHAR * settings.max_embedding_chars + 16
    return BodyRules(
        max_body_bytes=settings.max_body_bytes,
        limits={
            "/search": query,
            "/search/batch": settings.max_batch * query,
            "/similar": query + JSON_BYTES_PER_CHAR * MAX_ID_CHARS,
            "/v1/embeddings": settings.max_batch * embedding_input + 1024,
        },
        lists={"/search/batch": "queries", "/v1/embeddings": "input", "/documents": "documents"},
        max_items=settings.max_batch,
    )


def get_service(
    request: Request,
    collection: Annotated[
        str | None, Query(description="The collection to use (default: the server's default).")
    ] = None,
) -> SearchService:
    catalog: Catalog = request.app.state.catalog
    return catalog.service(collection or request.app.state.default_collection)


Service = Annotated[SearchService, Depends(get_service)]


# `shards` only where a Ray cluster answered: left out, not null, everywhere else
@reads.get(
    "/search", response_model=SearchResponse, response_model_exclude_unset=True, tags=["search"]
)
def search_get(
    service: Service,
    q: Annotated[str, Query(min_length=1, description="A question in German or English.")],
    k: Annotated[int | None, Query(ge=1, description="How many passages to return.")] = None,
    mode: Annotated[Mode | None, Query(description=MODE_DESCRIPTION)] = None,
    filter: Annotated[list[str] | None, Query(description=FILTER_DESCRIPTION)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=OFFSET_DESCRIPTION)] = 0,
    min_score: Annotated[float | None, Query(description=MIN_SCORE_DESCRIPTION)] = None,
    group: Annotated[Group, Query(description=GROUP_DESCRIPTION)] = "paragraph",
    allow_partial: Annotated[bool, Query(description=ALLOW_PARTIAL_DESCRIPTION)] = False,
) -> dict[str, Any]:
    """Find the passages that best answer a German or English question.

    Each result is the best-matching sentence of one paragraph, with the paragraph as context.
    """
    where = parse_filters(filter or [])
    answer = service.search(
        q,
        k,
        mode,
        where,
        offset=offset,
        min_score=min_score,
        group=group,
        allow_partial=allow_partial,
    )
    return answer.to_json()


@reads.post(
    "/search", response_model=SearchResponse, response_model_exclude_unset=True, tags=["search"]
)
def search_post(service: Service, body: SearchRequest) -> dict[str, Any]:
    """Same as `GET /search`, with the question in a JSON body."""
    return _search(service, body)


def _search(service: SearchService, body: SearchRequest) -> dict[str, Any]:
    answer = service.search(
        body.query,
        body.k,
        body.mode,
        body.filters,
        offset=body.offset,
        min_score=body.min_score,
        group=body.group,
        allow_partial=body.allow_partial,
    )
    return answer.to_json()


@reads.post(
    "/similar", response_model=SearchResponse, response_model_exclude_unset=True, tags=["search"]
)
def similar(service: Service, body: SimilarRequest) -> dict[str, Any]:
    """More like this: the passages most like a document (`document_id`), a text (`text`) or a
    sentence (`sentence_id`), best first; give exactly one. The document itself (a sentence's
    document) is left out. Ranked by meaning alone (mode dense), across languages; `k`,
    `filters`, `offset`, `min_score` and `group` work as in `POST /search`."""
    answer = service.similar(
        document_id=body.document_id,
        text=body.text,
        sentence_id=body.sentence_id,
        k=body.k,
        filters=body.filters,
        offset=body.offset,
        min_score=body.min_score,
        group=body.group,
    )
    return answer.to_json()


@reads.get("/info", tags=["index"])
def info(service: Service) -> dict[str, Any]:
    """The collection's manifest (format, model, dimension, recipe, counts, segments) and its
    first 1,000 sources."""
    return {**service.info().to_json(), "sources": [s.to_json() for s in service.sources()]}


@reads.get("/collections", response_model=list[CollectionInfo], tags=["index"])
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


@reads.post(
    "/search/batch",
    response_model=BatchSearchResponse,
    response_model_exclude_unset=True,
    tags=["search"],
)
def search_batch(service: Service, body: BatchSearchRequest) -> dict[str, Any]:
    """Several searches in one call, answered in order (at most FINDLING_MAX_BATCH)."""
    # the route class has counted the queries before they were parsed (see body_rules)
    return {"responses": [_search(service, query) for query in body.queries]}


@reads.post("/v1/embeddings", response_model=EmbeddingsResponse, tags=["embeddings"])
def embeddings(request: Request, service: Service, body: EmbeddingsRequest) -> dict[str, Any]:
    """Embeddings of the loaded model in the shape of OpenAI's embeddings API.

    Vectors are L2-normalised; `input_type` picks e5's `query: ` or `passage: ` prompt.
    """
    texts = [body.input] if isinstance(body.input, str) else body.input
    settings = request.app.state.settings
    if not texts:
        raise InvalidRequestError("no input to embed", "send a text or a list of texts")
    if body.model is not None and body.model != service.embedder.name:
        raise InvalidRequestError(
            f"this server embeds with {service.embedder.name!r}, not {body.model[:100]!r}",
            f"leave out model, or send {service.embedder.name!r}",
        )
    limit = settings.max_embedding_chars
    if any(len(t) > limit for t in texts):
        raise PayloadTooLargeError(
            f"an input is longer than {limit} characters",
            "send shorter inputs: the model reads 512 tokens at most "
            "(FINDLING_MAX_EMBEDDING_CHARS)",
        )
    vectors = service.embed(texts, body.input_type)
    tokens = sum(len(t.split()) for t in texts)  # whitespace words: an estimate, no tokenizer
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in enumerate(vectors)
        ],
        "model": service.embedder.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@reads.get("/documents", response_model=DocumentListResponse, tags=["documents"])
def list_documents(
    service: Service,
    offset: Annotated[int, Query(ge=0, description="Documents to skip, from 0.")] = 0,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_DOCUMENTS_PAGE, description="How many documents to list at most."),
    ] = DOCUMENTS_PAGE,
) -> dict[str, Any]:
    """The collection's documents (id, title, source), a page at a time, and their number."""
    return service.documents(offset, limit).to_json()


class _AnyPath(Convertor[str]):
    """Starlette's ``path`` with line breaks too: an id ending in one would otherwise match
    PUT /documents/{doc_id} only, and a GET would get 405 instead of 404."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anypath", _AnyPath())


@reads.get("/documents/{doc_id:anypath}", response_model=DocumentResponse, tags=["documents"])
def get_document(
    service: Service,
    # no max_length: an id past it would be past the 16 KiB request line first (431)
    doc_id: Annotated[str, PathParam(description="The id, URL-encoded (/ as %2F).")],
) -> DocumentResponse:
    """A whole document: its text, title, source, metadata, modification time, language,
    sentence count and (PDFs) where its pages start. Its id is a search hit's `document_id`."""
    return DocumentResponse.of(service.document(doc_id))


@writes.put("/documents/{doc_id}", response_model=WriteResult, tags=["documents"])
def put_document(
    request: Request,
    service: Service,
    doc_id: Annotated[str, PathParam(max_length=500)],
    body: DocumentIn,
) -> dict[str, Any]:
    """Add a document under your id, or replace it (re-embedded only if it changed)."""
    return _write_result(service.upsert([_document(request, doc_id, body)]))


@writes.post("/documents", response_model=WriteResult, tags=["documents"])
def post_documents(request: Request, service: Service, body: DocumentsRequest) -> dict[str, Any]:
    """Add or replace several documents at once, as one new index generation."""
    documents = [_document(request, d.id, d) for d in body.documents]
    return _write_result(service.upsert(documents))


@writes.delete("/documents/{doc_id}", response_model=WriteResult, tags=["documents"])
def delete_document(
    service: Service, doc_id: Annotated[str, PathParam(max_length=500)]
) -> dict[str, Any]:
    """Remove a document by id; its sentences can never come back in results."""
    return _write_result(service.delete([doc_id]))


def _document(request: Request, doc_id: str, body: DocumentIn) -> Document:
    limit = request.app.state.settings.max_document_chars
    if len(body.text) > limit:
        raise PayloadTooLargeError(
            f"document {doc_id!r} has {len(body.text)} characters, more than {limit}",
            "split it or raise FINDLING_MAX_DOCUMENT_CHARS",
        )
    if not body.text.strip():
        raise InvalidRequestError(f"document {doc_id!r} has no text")
    return make_document(
        doc_id, body.text, title=body.title, language=body.language, metadata=body.metadata
    )


def _write_result(summary: BuildSummary) -> dict[str, Any]:
    return {
        key: getattr(summary, key)
        for key in (
            "generation",
            "documents",
            "passages",
            "added",
            "updated",
            "removed",
            "unchanged",
            "embedded",
        )
    }


@router.get("/ready", response_model=Ready, responses=READY_RESPONSES, tags=["operations"])
def ready(request: Request) -> Ready | JSONResponse:
    """Readiness: the model and the default collection's index are loaded (else 503)."""
    catalog: Catalog = request.app.state.catalog
    try:
        catalog.service(request.app.state.default_collection).load()
    except FindlingError as exc:
        return error_response(503, exc.code, exc.message, exc.hint)
    return Ready(status="ready")


@reads.get(
    "/metrics",
    tags=["operations"],
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics: requests and latency by route, index sizes per collection."""
    catalog: Catalog = request.app.state.catalog
    observe_index(
        request.app.state.metrics, {n: catalog.service(n).info() for n in catalog.names()}
    )
    return PlainTextResponse(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4"
    )


@router.get("/health", response_model=Health, tags=["operations"])
def health() -> Health:
    """Liveness: the process is up and answering."""
    return Health(status="ok")


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The search page: static HTML whose script calls `/search`, `/info` and `/openapi.json`."""
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)
