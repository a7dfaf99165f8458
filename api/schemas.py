"""Request and response schemas; their descriptions feed OpenAPI, which chatbots read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SearchRequest(BaseModel):
    query: str = Field(
        description="A natural-language question in German or English.",
        examples=["Wer ist der britische Außenminister?"],
    )
    k: int | None = Field(
        default=None, description="How many sentences to return (default 5, at most max_k)."
    )


class SearchResult(BaseModel):
    rank: int = Field(description="1 for the best match.")
    score: float = Field(
        description="Cosine similarity of question and sentence embeddings, in [-1, 1]; higher "
        "is better. Comparable within one model only (e5 scores cluster between 0.7 and 0.9)."
    )
    text: str = Field(description="The matching sentence.")
    context: str = Field(
        description="The paragraph the sentence stands in (a window of neighbouring sentences "
        "when the paragraph is long)."
    )
    context_start: int = Field(description="Offset of the sentence inside `context`.")
    context_end: int = Field(description="End offset (exclusive) of the sentence in `context`.")
    source: str = Field(description="Path of the source file, as given when indexing.")
    document_id: str = Field(description="Identifier of the document within the index.")
    paragraph: int = Field(description="Paragraph number in the document, from 0.")
    sentence: int = Field(description="Sentence number within the paragraph, from 0.")
    start: int = Field(description="Offset of the sentence in the source document's text.")
    end: int = Field(description="End offset (exclusive) in the source document's text.")
    language: str = Field(description="Detected language of the paragraph (ISO 639-1).")


class SearchResponse(BaseModel):
    query: str = Field(description="The question as searched (whitespace trimmed).")
    results: list[SearchResult] = Field(description="Best matches first.")
    took_ms: float = Field(description="Server-side time for the search in milliseconds.")


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
