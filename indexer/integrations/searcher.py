"""Searches for the framework retrievers: in a local index, or on a findling server over HTTP.

A hit is the JSON object of the search API (``findling search --json``, ``POST /search``): the
retrievers make its ``text`` the content and every other field (source, offsets, document id,
language, scores, context, ...) its metadata, so fields the API gains reach them unchanged.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.errors import FindlingError

if TYPE_CHECKING:
    import httpx

    from indexer.service import SearchService

Hit = dict[str, Any]


@dataclass
class Searcher:
    """Runs one retriever's searches: over HTTP when ``url`` is given, else in ``index_dir``.

    ``k``, ``mode`` and ``filters`` are those of :meth:`SearchService.search` (None: findling's
    defaults). ``api_key`` is sent as a bearer token (a read key, or the write key).
    ``http_client`` replaces the client made from ``url`` (tests pass a FastAPI TestClient).
    """

    index_dir: str | Path | None = None
    collection: str | None = None
    url: str | None = None
    api_key: str | None = None
    k: int | None = None
    mode: str | None = None
    filters: dict[str, Any] | None = None
    model: str | None = None
    timeout: float = 30.0
    http_client: httpx.Client | None = None
    _service: SearchService | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.url is not None and (self.index_dir is not None or self.model is not None):
            raise ValueError("give url (a findling server) or index_dir (a local index), not both")
        if self.url is None and self.api_key is not None:
            raise ValueError("api_key is for a findling server: give its url too")

    def search(self, query: str) -> list[Hit]:
        """The hits for ``query``, best first."""
        if self.url is None:
            return self._local().search(query, self.k, self.mode, self.filters).to_json()["results"]
        if self.http_client is not None:
            return _results(_post(self.http_client, self._request(query), self.url), self.url)
        import httpx

        with httpx.Client(timeout=self.timeout) as client:
            return _results(_post(client, self._request(query), self.url), self.url)

    async def asearch(self, query: str) -> list[Hit]:
        """:meth:`search` for event loops: HTTP without blocking, the local index in a thread."""
        if self.url is None or self.http_client is not None:
            return await asyncio.to_thread(self.search, query)
        import httpx

        async with httpx.AsyncClient(timeout=self.timeout) as client:
            try:
                response = await client.post(**self._request(query))
            except httpx.TransportError as exc:
                raise _unreachable(self.url, exc) from None
        return _results(response, self.url)

    def _local(self) -> SearchService:
        with self._lock:  # one service, and so one loaded model, per retriever
            if self._service is None:
                from indexer import open_index

                self._service = open_index(
                    self.index_dir or "index", self.collection or "default", self.model
                )
            return self._service

    def _request(self, query: str) -> dict[str, Any]:
        body = {"query": query, "k": self.k, "mode": self.mode, "filters": self.filters}
        return {
            "url": f"{str(self.url).rstrip('/')}/search",
            "params": {"collection": self.collection} if self.collection else {},
            "json": {key: value for key, value in body.items() if value is not None},
            "headers": {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {},
        }


def _post(client: httpx.Client, request: dict[str, Any], url: str) -> httpx.Response:
    import httpx

    try:
        return client.post(**request)
    except httpx.TransportError as exc:
        raise _unreachable(url, exc) from None


def _unreachable(url: str, exc: Exception) -> FindlingError:
    return FindlingError(
        f"cannot reach the findling server at {url} ({exc})",
        "start it with `findling serve`, or check the url",
    )


def _results(response: httpx.Response, url: str) -> list[Hit]:
    """The hits of a search response, or the server's error raised as the library raises it."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code == 200 and isinstance(body, dict):
        results: list[Hit] = body["results"]
        return results
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        raise FindlingError(f"{url} answered HTTP {response.status_code}, not a findling search")
    kind = _error_classes().get(str(error.get("code")), FindlingError)
    raise kind(str(error.get("message", "")), str(error.get("hint", "")))


def _error_classes() -> dict[str, type[FindlingError]]:
    """Each error code the API sends, to the library's exception that carries it."""
    found: dict[str, type[FindlingError]] = {}
    pending: list[type[FindlingError]] = [FindlingError]
    while pending:
        kind = pending.pop()
        found.setdefault(kind.code, kind)
        pending.extend(kind.__subclasses__())
    return found


def metadata(hit: Hit) -> dict[str, Any]:
    """A hit's fields besides the sentence itself."""
    return {key: value for key, value in hit.items() if key != "text"}


def hit_id(hit: Hit) -> str:
    """A stable id of the hit's sentence: its document and where it stands in it."""
    return f"{hit['document_id']}:{hit['start']}-{hit['end']}"
