"""The MCP adapter: chatbots search the index as tools, over stdio or streamable HTTP.

Each tool is thin: parse, call the one :class:`~indexer.service.SearchService`, render. The
model and the default collection load once, in the server's lifespan, so the first question is
fast. Over HTTP it answers as the HTTP API does: only for FINDLING_ALLOWED_HOSTS (the SDK's
Host and Origin checks), only with the read key when FINDLING_READ_API_KEY is set, and with the
same uvicorn limits. Import this module only when serving: it imports the MCP SDK.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from indexer.access import HostNames, check_bearer, read_keys
from indexer.catalog import create_catalog
from indexer.errors import FindlingError, UnauthorizedError
from indexer.manifest import Manifest
from indexer.ranking import SCORE_DESCRIPTION
from indexer.results import Source
from indexer.schemas import (
    GROUP_DESCRIPTION,
    MIN_SCORE_DESCRIPTION,
    OFFSET_DESCRIPTION,
    WHERE_DESCRIPTION,
    DocumentResponse,
    Filters,
    SearchHit,
)
from indexer.settings import Settings
from indexer.versions import findling_version

log = logging.getLogger(__name__)

TRANSPORTS = ("stdio", "streamable-http")

INSTRUCTIONS = (
    "findling searches a multilingual (German and English) index of documents. Ask `search` a "
    "question in German or English; a question in one language finds passages in the other. "
    "`fetch` returns a whole document by the `document_id` of a passage. Cite the `source` of "
    "the passages you use. `info` tells what the index holds."
)
SEARCH_DESCRIPTION = f"""Find the passages of the indexed documents that best answer a question.

The index answers German and English questions, and a question in one language finds passages
in the other (ask "Wie viele Zivilisten starben?" or "How many civilians died?" alike).
Returns the k best passages, best first, one per paragraph: the matching sentence (`text`), its
paragraph (`context`), the `source` file, character offsets (`start`, `end`) and `language`.
`score`: {SCORE_DESCRIPTION}
`offset` pages (offset=5 with k=5: results 6 to 10), `min_score` leaves out weak matches, and
group="document" returns k documents with their best passages. `fetch` reads a whole document.
Filters (`filters`): {WHERE_DESCRIPTION}"""
FETCH_DESCRIPTION = (
    "Fetch a whole document by its id (a search result's `document_id`): its full text, title, "
    "source, metadata, modification time, language, sentence count and, for PDFs, where each "
    "page starts in the text. Use it to read more than the passages `search` returned."
)
INFO_DESCRIPTION = (
    "Describe what a collection of the index holds: embedding model, vector dimension, number "
    "of documents and passages (sentences), when it was built, and the source files. The index "
    "answers German and English questions."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

Question = Annotated[str, Field(description="The question, in German or English.")]
K = Annotated[int, Field(description="How many passages to return (1 to the server's max_k).")]
Filter = Annotated[
    Filters | None,
    Field(
        description='e.g. {"lang": "de"}, {"source": "*.md"} or '
        '{"modified": {"$gte": "2024-01-01"}}; see the tool description.'
    ),
]
CollectionName = Annotated[
    str | None, Field(description="Collection name [default: the server's collection].")
]
DocumentId = Annotated[
    str, Field(description="The document's id: the `document_id` of a search result.")
]
ModeName = Annotated[
    Literal["dense", "bm25", "hybrid"] | None,
    Field(description="dense (embeddings), bm25 (words) or hybrid [default: hybrid]."),
]

Offset = Annotated[int, Field(ge=0, description=OFFSET_DESCRIPTION)]
MinScore = Annotated[float | None, Field(description=MIN_SCORE_DESCRIPTION)]
GroupName = Annotated[Literal["paragraph", "document"], Field(description=GROUP_DESCRIPTION)]


class SearchToolAnswer(BaseModel):
    """The passages that answer a question, best first."""

    question: str
    mode: str
    results: list[SearchHit]


class IndexInfo(BaseModel):
    """What a collection holds."""

    collection: str
    model: str
    dimension: int
    documents: int
    passages: int = Field(description="Indexed sentences.")
    created_at: str
    sources: list[str] = Field(description="Paths of the indexed documents.")

    @classmethod
    def of(cls, collection: str, manifest: Manifest, sources: list[Source]) -> IndexInfo:
        data: dict[str, Any] = {name: getattr(manifest, name, None) for name in cls.model_fields}
        data.update(collection=collection, sources=[s.path for s in sources])
        return cls(**data)


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn findling's domain errors into tool errors the model reads: message and hint."""
    try:
        yield
    except FindlingError as exc:
        raise ToolError(f"{exc.message}\nhint: {exc.hint}" if exc.hint else exc.message) from None


def create_mcp_server(settings: Settings) -> MCPServer[None]:
    """An MCP server with the `search`, `fetch` and `info` tools over the settings' index."""
    catalog = create_catalog(settings)

    @asynccontextmanager
    async def lifespan(_: MCPServer[None]) -> AsyncIterator[None]:
        try:
            await anyio.to_thread.run_sync(catalog.service(settings.collection).load)
        except FindlingError as exc:
            # serve anyway: a chat app shows a dead server without a reason, while every tool
            # call reports this error with its hint (e.g. how to build the index)
            log.warning("%s", exc)
        yield

    server: MCPServer[None] = MCPServer(
        "findling",
        version=findling_version(),
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",
    )

    @server.tool(description=SEARCH_DESCRIPTION, annotations=READ_ONLY)
    def search(
        question: Question,
        k: K = settings.default_k,
        filters: Filter = None,
        collection: CollectionName = None,
        mode: ModeName = None,
        offset: Offset = 0,
        min_score: MinScore = None,
        group: GroupName = "paragraph",
    ) -> SearchToolAnswer:
        with tool_errors():
            service = catalog.service(collection or settings.collection)
            response = service.search(
                question, k, mode, filters, offset=offset, min_score=min_score, group=group
            )
        results = [SearchHit.of(r) for r in response.results]
        return SearchToolAnswer(question=response.query, mode=response.mode, results=results)

    @server.tool(description=FETCH_DESCRIPTION, annotations=READ_ONLY)
    def fetch(id: DocumentId, collection: CollectionName = None) -> DocumentResponse:
        with tool_errors():
            document = catalog.service(collection or settings.collection).document(id)
        return DocumentResponse.of(document)

    @server.tool(description=INFO_DESCRIPTION, annotations=READ_ONLY)
    def info(collection: CollectionName = None) -> IndexInfo:
        name = collection or settings.collection
        with tool_errors():
            service = catalog.service(name)
            manifest, sources = service.info(), service.sources()
        return IndexInfo.of(name, manifest, sources)

    return server


def transport_security(allowed_hosts: list[str]) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding checks for FINDLING_ALLOWED_HOSTS: those names, any port."""
    hosts = HostNames(allowed_hosts)
    if hosts.any:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = sorted(hosts.names)
    return TransportSecuritySettings(
        allowed_hosts=[host for name in names for host in (name, f"{name}:*")],
        allowed_origins=[
            f"{scheme}://{name}{port}"
            for name in names
            for scheme in ("http", "https")
            for port in ("", ":*")
        ],
    )


class ReadKeyMiddleware:
    """Answers 401 to an HTTP request without one of ``keys`` as its bearer token."""

    def __init__(self, app: ASGIApp, keys: list[str]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                check_bearer(Headers(scope=scope).get("authorization", ""), self.keys, "tools")
            except UnauthorizedError as exc:
                error = {"code": exc.code, "message": exc.message, "hint": exc.hint, "details": []}
                response = JSONResponse(
                    {"error": error}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_mcp_http_app(settings: Settings, host: str = "127.0.0.1") -> ASGIApp:
    """The server as a streamable-HTTP app at /mcp, checked as the HTTP API checks reads."""
    server = create_mcp_server(settings)
    app: ASGIApp = server.streamable_http_app(
        transport_security=transport_security(settings.allowed_hosts), host=host
    )
    keys = read_keys(settings)
    return ReadKeyMiddleware(app, keys) if keys else app


def run_mcp_server(
    settings: Settings, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8000
) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (HTTP)."""
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown transport {transport!r}: use one of {', '.join(TRANSPORTS)}")
    if transport == "streamable-http":
        import uvicorn

        from indexer.serving import uvicorn_options

        app = create_mcp_http_app(settings, host)
        uvicorn.run(app, host=host, port=port, **uvicorn_options())
    else:
        server = create_mcp_server(settings)
        # stdout is the protocol channel: the SDK points fd 1 at stderr while serving, so a
        # stray print or a native library's output cannot corrupt a message
        server.run("stdio")
