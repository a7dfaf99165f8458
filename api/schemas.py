"""Request and response schemas; their descriptions feed OpenAPI, which chatbots read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from indexer.defaults import MAX_FILTER_CHARS, MAX_FILTERS, MAX_OFFSET, Group, Mode
from indexer.documents import LANGUAGE_TAG
from indexer.schemas import (
    GROUP_DESCRIPTION,
    MIN_SCORE_DESCRIPTION,
    OFFSET_DESCRIPTION,
    WHERE_DESCRIPTION,
    WHERE_EXAMPLES,
    Filters,
    SearchHit,
)

# a document id: the longest path an OS allows (4,096 bytes) and a record's key, with room
MAX_ID_CHARS = 8192

MODE_DESCRIPTION = (
    "How to rank: 'dense' (multilingual embeddings; finds answers across languages), "
    "'bm25' (shared words, German/English stemming), or 'hybrid' (dense plus BM25 where question "
    "and text share a language; the default, best measured)."
)

FILTER_DESCRIPTION = (
    "Filters as key=value, key!=value, key>=value (also >, <, <=); all must hold. Fields: "
    "lang/language (sentence language, e.g. de), source (glob over the source path), title, "
    "modified (the file's modification time, as an ISO date: modified>=2024-01-01), or any "
    f"metadata field. At most {MAX_FILTERS} filters of at most {MAX_FILTER_CHARS} characters "
    "each side."
)

ALLOW_PARTIAL_DESCRIPTION = (
    "On a server whose shards run on a Ray cluster: answer from the shards that can answer when "
    "one has no live replica (see `shards` in the response), instead of failing with 503."
)

# what every search request takes besides what it searches with (POST /search, /similar)
K = Annotated[
    int | None,
    Field(ge=1, strict=True, description="How many passages to return (default 5, at most max_k)."),
]
FiltersField = Annotated[
    Filters | None, Field(description=WHERE_DESCRIPTION, examples=WHERE_EXAMPLES)
]
# strict: JSON false is not 0, nor "3" a number (lax pydantic would accept both)
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, strict=True, description=OFFSET_DESCRIPTION)]
MinScore = Annotated[float | None, Field(strict=True, description=MIN_SCORE_DESCRIPTION)]
GroupField = Annotated[Group, Field(description=GROUP_DESCRIPTION)]


class SearchRequest(BaseModel):
    query: str = Field(
        min_length=1,
        description="A natural-language question in German or English.",
        examples=["Wer ist der britische Außenminister?"],
    )
    k: K = None
    mode: Mode | None = Field(default=None, description=MODE_DESCRIPTION)
    filters: FiltersField = None
    offset: Offset = 0
    min_score: MinScore = None
    group: GroupField = "paragraph"
    allow_partial: bool = Field(default=False, strict=True, description=ALLOW_PARTIAL_DESCRIPTION)


class SimilarRequest(BaseModel):
    document_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="Passages like this document (a hit's `document_id`): the mean of its "
        "stored sentence vectors; the document itself is left out.",
    )
    text: str | None = Field(
        default=None,
        min_length=1,
        description="Passages like this text, in German or English (embedded as a question; at "
        "most FINDLING_MAX_QUERY_CHARS characters).",
        examples=["Die Ukraine bittet um weitreichende Waffen."],
    )
    sentence_id: int | None = Field(
        default=None,
        ge=0,
        lt=2**63,
        description="Passages like this sentence (a hit's `sentence_id`); its document is left "
        "out.",
    )
    k: K = None
    filters: FiltersField = None
    offset: Offset = 0
    min_score: MinScore = None
    group: GroupField = "paragraph"


class ShardsInfo(BaseModel):
    total: int = Field(description="Shards of the collection.")
    successful: int = Field(description="Shards that answered.")
    failed: int = Field(description="Shards with no live replica; their passages are missing.")
    failed_shards: list[str] = Field(description="The shards that failed, by name.")


class SearchResponse(BaseModel):
    query: str = Field(
        description="The question as searched (whitespace trimmed); for /similar the text, "
        "the document id or the sentence id."
    )
    mode: Mode = Field(description="The search mode used.")
    results: list[SearchHit] = Field(description="Best matches first.")
    took_ms: float = Field(description="Server-side time for the search in milliseconds.")
    shards: ShardsInfo | None = Field(
        default=None,
        description="How the shards answered, when the server runs on a Ray cluster "
        "(`findling serve --ray`); absent otherwise.",
    )


class CollectionInfo(BaseModel):
    name: str = Field(description="Collection name; pass it as `collection` to other routes.")
    documents: int = Field(description="Documents in the collection.")
    passages: int = Field(description="Sentences in the collection.")
    model: str = Field(description="Embedding model the collection was built with.")
    created_at: str = Field(description="When its current generation was written (UTC).")


class DocumentEntryOut(BaseModel):
    id: str = Field(description="The document's id (GET /documents/{id} fetches it).")
    title: str = Field(description="The document's title ('' when it has none).")
    source: str = Field(description="Path of the source file, as given when indexing.")


class DocumentListResponse(BaseModel):
    total: int = Field(description="Documents in the collection.")
    offset: int = Field(description="The position of the first document listed, from 0.")
    documents: list[DocumentEntryOut] = Field(description="The documents, in storage order.")


class Health(BaseModel):
    status: str = Field(description="'ok' while the process serves requests.")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What went wrong.")
    hint: str = Field(default="", description="What to do about it.")
    details: list[dict[str, Any]] = Field(
        default_factory=list, description="Per-field validation problems, if any."
    )


class ErrorResponse(BaseModel):
    error: ErrorBody


class BatchSearchRequest(BaseModel):
    queries: list[SearchRequest] = Field(
        min_length=1, description="Searches to run in one call (at most FINDLING_MAX_BATCH)."
    )


class BatchSearchResponse(BaseModel):
    responses: list[SearchResponse] = Field(description="One response per query, in order.")


class DocumentIn(BaseModel):
    text: str = Field(
        description="The document's full text (plain text; paragraphs by blank lines)."
    )
    title: str = Field(default="", description="Optional title.")
    language: str | None = Field(
        default=None,
        pattern=LANGUAGE_TAG,
        description="ISO 639-1 code such as de or en (en-GB is kept as en); detected if not given.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields to filter on (e.g. {'team': 'geo'}); 'source' is shown as source.",
    )


class DocumentWithId(DocumentIn):
    id: str = Field(min_length=1, max_length=500, description="Your id for the document.")


class DocumentsRequest(BaseModel):
    documents: list[DocumentWithId] = Field(
        min_length=1, description="Documents to add, or to replace when their id exists."
    )


class WriteResult(BaseModel):
    generation: str = Field(description="The index generation now current.")
    documents: int = Field(description="Documents in the collection afterwards.")
    passages: int = Field(description="Sentences in the collection afterwards.")
    added: int
    updated: int
    removed: int
    unchanged: int
    embedded: int = Field(description="Sentences embedded by this change.")


class EmbeddingsRequest(BaseModel):
    input: str | list[str] = Field(
        description=(
            "Text or texts to embed (at most FINDLING_MAX_BATCH texts of at most "
            "FINDLING_MAX_EMBEDDING_CHARS characters)."
        )
    )
    model: str | None = Field(
        default=None,
        description="The loaded model's name (see GET /info), or left out; any other is refused.",
    )
    encoding_format: Literal["float"] = Field(default="float", description="Only 'float'.")
    input_type: Literal["query", "passage"] = Field(
        default="passage",
        description="findling extension: 'query' for questions, 'passage' for texts (e5 prompts).",
    )


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float]


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage


class Ready(BaseModel):
    status: Literal["ready"] = Field(description="'ready' when model and default index are loaded.")
