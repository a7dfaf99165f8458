"""What the adapters share (HTTP API and MCP): a search hit as clients see it, and filters.

Its descriptions feed OpenAPI and the MCP tool's output schema, which chatbots read.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from indexer.defaults import (
    MAX_FILTER_CHARS,
    MAX_FILTER_DEPTH,
    MAX_FILTER_VALUES,
    MAX_FILTERS,
    MAX_OFFSET,
    PASSAGES_PER_DOCUMENT,
)
from indexer.errors import InvalidRequestError
from indexer.filters import check_filters
from indexer.ranking import PROBABILITY_DESCRIPTION, SCORE_DESCRIPTION
from indexer.results import StoredDocument
from indexer.service import Hit

WHERE_DESCRIPTION = (
    'A filter in the style of Chroma\'s where: {"field": value} (equals), {"field": {"$op": '
    'value}} with $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, and {"$and": [...]}, {"$or": '
    "[...]}, nested; several fields in one object must all hold. Fields: lang (sentence "
    "language), source (glob over the source path), title, modified (the file's modification "
    "time; ISO dates such as 2024-01-31, compared as dates), or any metadata field. $gt/$gte/"
    "$lt/$lte compare numbers, or ISO dates; a document without the field matches only $ne and "
    f"$nin. At most {MAX_FILTERS} conditions and {MAX_FILTER_VALUES} values, strings of at most "
    f"{MAX_FILTER_CHARS} characters, $and/$or nested at most {MAX_FILTER_DEPTH} levels. "
    'E.g. {"lang": "de"}, {"modified": {"$gte": "2024-01-01"}}, {"$or": [{"lang": "de"}, '
    '{"team": {"$in": ["a", "b"]}}]}.'
)
WHERE_EXAMPLES: list[Any] = [
    {"lang": "de"},
    {"modified": {"$gte": "2024-01-01"}},
    {"$or": [{"lang": "de"}, {"team": {"$in": ["a", "b"]}}]},
]


OFFSET_DESCRIPTION = (
    f"Results to skip, for the next page: offset=5 with k=5 gives results 6 to 10 (at most "
    f"{MAX_OFFSET})."
)
MIN_SCORE_DESCRIPTION = (
    "Leave out results scoring below this (see `score`; e.g. 0.8 for dense and hybrid)."
)
GROUP_DESCRIPTION = (
    "'paragraph' (default): one result per paragraph, its best sentence. 'document': k "
    f"documents, each with its best passages (at most {PASSAGES_PER_DOCUMENT}, one per "
    "paragraph, best first), best document first; a passage's `rank` is its document's."
)


def _checked_filter(value: Any) -> Any:
    # checked before anything else is validated, with limits counted while reading: a map of a
    # million bad values gets one error, found at the seventeenth
    if isinstance(value, dict):
        try:
            check_filters(value)
        except InvalidRequestError as exc:
            raise ValueError(f"{exc.message}; {exc.hint}" if exc.hint else exc.message) from None
    return value


Filters = Annotated[dict[str, Any], BeforeValidator(_checked_filter)]


class SearchHit(BaseModel):
    rank: int = Field(
        description="1 for the best match (with group=document: the document's rank)."
    )
    score: float = Field(description=SCORE_DESCRIPTION)
    text: str = Field(description="The matching sentence.")
    context: str = Field(
        description="The paragraph the sentence stands in (a window of neighbouring sentences "
        "when the paragraph is long)."
    )
    context_start: int = Field(description="Offset of the sentence inside `context`.")
    context_end: int = Field(description="End offset (exclusive) of the sentence in `context`.")
    source: str = Field(description="Path of the source file, as given when indexing.")
    document_id: str = Field(
        description="Identifier of the document within the index (GET /documents/{id})."
    )
    title: str = Field(description="The document's title ('' when it has none).")
    modified: str = Field(
        description="When the file was last modified (ISO 8601, UTC), or when a program "
        "stored the document."
    )
    metadata: dict[str, Any] = Field(
        description="The document's own fields (JSONL fields, or what a program stored)."
    )
    paragraph: int = Field(description="Paragraph number in the document, from 0.")
    sentence: int = Field(description="Sentence number within the paragraph, from 0.")
    sentence_id: int = Field(
        description="The sentence's id in the collection (stable; POST /similar takes it)."
    )
    start: int = Field(description="Offset of the sentence in the source document's text.")
    end: int = Field(description="End offset (exclusive) in the source document's text.")
    page: int | None = Field(
        description="The page the sentence starts on, from 1 (PDFs; null for other formats)."
    )
    language: str = Field(
        description="Language of the sentence: its paragraph's, detected (ISO 639-1)."
    )
    dense_score: float | None = Field(description="The dense leg's score (null in bm25 mode).")
    lexical_score: float | None = Field(
        description="Normalised BM25 in [0, 1] (null in dense mode)."
    )
    probability: float | None = Field(default=None, description=PROBABILITY_DESCRIPTION)

    @classmethod
    def of(cls, hit: Hit) -> SearchHit:
        return cls(**hit.to_json())


class DocumentResponse(BaseModel):
    """A whole document as the collection holds it."""

    id: str = Field(description="The document's id (a search hit's `document_id`).")
    title: str = Field(description="The document's title ('' when it has none).")
    source: str = Field(description="Path of the source file, as given when indexing.")
    modified: str = Field(
        description="When the file was last modified (ISO 8601, UTC), or when a program "
        "stored the document."
    )
    language: str = Field(description="The document's language (ISO 639-1).")
    metadata: dict[str, Any] = Field(
        description="The document's own fields (JSONL fields, or what a program stored)."
    )
    sentences: int = Field(description="How many sentences of it are indexed.")
    pages: list[int] = Field(
        description="PDFs: where each page starts in `text` (page n at pages[n-1]); else empty."
    )
    text: str = Field(description="The full text as indexed; hits' offsets count its characters.")

    @classmethod
    def of(cls, document: StoredDocument) -> DocumentResponse:
        return cls(**document.to_json())
