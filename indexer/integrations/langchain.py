"""A LangChain retriever over findling (``pip install "findling[langchain]"``).

    from indexer.integrations.langchain import FindlingRetriever

    retriever = FindlingRetriever(index_dir="index/", k=3)          # a local index
    retriever = FindlingRetriever(url="http://127.0.0.1:8000", k=3)  # a findling server
    for document in retriever.invoke("Wer ist der britische Außenminister?"):
        print(document.page_content, document.metadata["source"], document.metadata["score"])

Each :class:`~langchain_core.documents.Document` is one hit: the matching sentence as
``page_content``; source, document_id, title, modified, the document's own ``metadata``, start,
end, page (PDFs), paragraph, sentence, sentence_id, language, score, rank, dense_score,
lexical_score, and the paragraph around it (``context``, with the sentence at
``context_start``-``context_end``) in ``metadata``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, PrivateAttr, SecretStr

from indexer.defaults import Mode
from indexer.integrations.searcher import Hit, Searcher, hit_id, metadata


class FindlingRetriever(BaseRetriever):
    """Finds the sentences that best answer a German or English question in a findling index.

    Give ``index_dir`` (the folder holding the collections, default ``index``) to search
    locally, or ``url`` (and ``api_key`` if the server wants one) to ask a ``findling serve``.
    """

    index_dir: str | Path | None = Field(default=None, description="Local index folder.")
    collection: str | None = Field(default=None, description="Collection (default: default).")
    url: str | None = Field(default=None, description="Base URL of a findling server.")
    api_key: SecretStr | None = Field(default=None, description="Bearer token for the server.")
    k: int | None = Field(default=None, description="Hits per question (default 5).")
    mode: Mode | None = Field(default=None, description="dense, bm25 or hybrid (default).")
    filters: dict[str, str] | None = Field(default=None, description="key=value filters.")
    model: str | None = Field(default=None, description="Embedding model of a local index.")
    timeout: float = Field(default=30.0, description="Seconds to wait for the server.")
    http_client: Any = Field(default=None, exclude=True, description="An httpx.Client to use.")
    _searcher: Searcher = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._searcher = Searcher(
            index_dir=self.index_dir,
            collection=self.collection,
            url=self.url,
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            k=self.k,
            mode=self.mode,
            filters=self.filters,
            model=self.model,
            timeout=self.timeout,
            http_client=self.http_client,
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [_document(hit) for hit in self._searcher.search(query)]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [_document(hit) for hit in await self._searcher.asearch(query)]


def _document(hit: Hit) -> Document:
    return Document(page_content=hit["text"], metadata=metadata(hit), id=hit_id(hit))
