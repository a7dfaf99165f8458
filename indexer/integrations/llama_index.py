"""A LlamaIndex retriever over findling (``pip install "findling[llamaindex]"``).

    from indexer.integrations.llama_index import FindlingRetriever

    retriever = FindlingRetriever(index_dir="index/", k=3)          # a local index
    retriever = FindlingRetriever(url="http://127.0.0.1:8000", k=3)  # a findling server
    for hit in retriever.retrieve("Who is the British foreign secretary?"):
        print(hit.score, hit.node.get_content(), hit.node.metadata["source"])

Each :class:`~llama_index.core.schema.NodeWithScore` is one hit: a
:class:`~llama_index.core.schema.TextNode` holding the matching sentence (``start_char_idx`` and
``end_char_idx`` its offsets in the document, the document id as its source node) with the
hit's score. Its metadata holds every field of the search hit: source, document_id, title,
modified, the document's own ``metadata``, start, end, page (PDFs), paragraph, sentence,
sentence_id, language, score, rank, dense_score, lexical_score and the paragraph around it
(``context``); an LLM sees the source, title, page and that paragraph beside the sentence, the
embedding nothing but the sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from indexer.integrations.searcher import Hit, Searcher, hit_id, metadata

SHOWN_TO_THE_LLM = ("source", "title", "page", "context")


class FindlingRetriever(BaseRetriever):
    """Finds the sentences that best answer a German or English question in a findling index.

    Give ``index_dir`` (the folder holding the collections, default ``index``) to search
    locally, or ``url`` (and ``api_key`` if the server wants one) to ask a ``findling serve``.
    ``k``, ``mode`` (dense, bm25, hybrid) and ``filters`` (key=value) are findling's.
    """

    def __init__(
        self,
        index_dir: str | Path | None = None,
        *,
        collection: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        k: int | None = None,
        mode: str | None = None,
        filters: dict[str, str] | None = None,
        model: str | None = None,
        timeout: float = 30.0,
        http_client: Any = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        self._searcher = Searcher(
            index_dir=index_dir,
            collection=collection,
            url=url,
            api_key=api_key,
            k=k,
            mode=mode,
            filters=filters,
            model=model,
            timeout=timeout,
            http_client=http_client,
        )
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_node(hit) for hit in self._searcher.search(query_bundle.query_str)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_node(hit) for hit in await self._searcher.asearch(query_bundle.query_str)]


def _node(hit: Hit) -> NodeWithScore:
    fields = metadata(hit)
    node = TextNode(
        id_=hit_id(hit),
        text=hit["text"],
        metadata=fields,
        start_char_idx=hit["start"],
        end_char_idx=hit["end"],
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit["document_id"])},
        excluded_llm_metadata_keys=[key for key in fields if key not in SHOWN_TO_THE_LLM],
        excluded_embed_metadata_keys=list(fields),
    )
    return NodeWithScore(node=node, score=hit["score"])
