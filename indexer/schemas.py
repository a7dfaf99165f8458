"""The schema the adapters share (HTTP API and MCP): a search hit as clients see it.

Its descriptions feed OpenAPI and the MCP tool's output schema, which chatbots read.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from indexer.ranking import PROBABILITY_DESCRIPTION, SCORE_DESCRIPTION
from indexer.service import Hit


class SearchHit(BaseModel):
    rank: int = Field(description="1 for the best match.")
    score: float = Field(description=SCORE_DESCRIPTION)
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
