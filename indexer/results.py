"""What the library returns: search hits and answers, and what a write did."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from indexer.defaults import Mode
from indexer.documents import Skipped


@dataclass(frozen=True)
class Hit:
    """One matching passage: its best sentence, with the paragraph around it as context."""

    rank: int
    score: float
    text: str
    context: str
    context_start: int
    context_end: int
    source: str
    document_id: str
    title: str
    modified: str
    metadata: dict[str, Any]
    paragraph: int
    sentence: int
    sentence_id: int
    start: int
    end: int
    page: int | None
    language: str
    dense_score: float | None
    lexical_score: float | None
    probability: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ShardCounts:
    """How the shards of a collection served by several processes answered a search (as
    Elasticsearch's ``_shards``): a failed shard has no live replica; its results are missing."""

    total: int
    successful: int
    failed: int
    failed_shards: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """What a search found: the passages, best first, and how long the search took; ``shards``
    when the collection's shards were searched by other processes (`findling serve --ray`)."""

    query: str
    mode: Mode
    results: list[Hit]
    took_ms: float
    shards: ShardCounts | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "query": self.query,
            "mode": self.mode,
            "results": [r.to_json() for r in self.results],
            "took_ms": round(self.took_ms, 2),
        }
        if self.shards is not None:
            data["shards"] = self.shards.to_json()
        return data


@dataclass(frozen=True)
class Source:
    """One live document of a collection: its id, where it came from, its language, its size.

    ``key`` is the id it is stored under (for a file, its resolved absolute path), which only
    the library uses: clients see ``id`` (documents.public_id).
    """

    id: str
    path: str
    language: str
    sentences: int
    sha256: str
    key: str

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "key"}


@dataclass(frozen=True)
class StoredDocument:
    """A document as the collection holds it: its text and everything known about it."""

    id: str
    source: str
    title: str
    modified: str
    language: str
    metadata: dict[str, Any]
    sentences: int
    pages: list[int]  # where each page starts in ``text`` (PDFs), else empty
    text: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DocumentEntry:
    """One document of a listing: its id, title and source."""

    id: str
    title: str
    source: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DocumentList:
    """A page of a collection's documents, in storage order, and how many there are in all."""

    total: int
    offset: int
    documents: list[DocumentEntry]

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "offset": self.offset,
            "documents": [d.to_json() for d in self.documents],
        }


@dataclass(frozen=True)
class BuildSummary:
    """What an index run did. ``documents``/``passages`` count the whole index afterwards."""

    index_dir: str
    generation: str
    model: str
    documents: int
    passages: int
    added: int
    updated: int
    removed: int
    unchanged: int
    embedded: int
    skipped: list[Skipped]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
