"""findling: multilingual (German/English) semantic search over sentences of your documents.

Library use::

    from indexer import open_index
    index = open_index("index/")
    for hit in index.search("Who is the British foreign secretary?").results:
        print(hit.score, hit.text, hit.source)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from indexer.service import SearchService

__all__ = ["make_document", "open_index"]


def __getattr__(name: str) -> object:
    # make_document lives with the documents; imported on use to keep `import indexer` light
    if name == "make_document":
        from indexer.documents import make_document

        return make_document
    raise AttributeError(name)


def open_index(
    index_dir: str | Path = "index", collection: str = "default", model: str | None = None
) -> SearchService:
    """The search service of one collection under ``index_dir``.

    Other settings come from ``FINDLING_*`` variables. The model loads on the first search (or
    call ``.load()``); ``.search(question, k, mode, filters)`` returns a typed
    :class:`~indexer.service.Answer`; ``.build(paths)``, ``.upsert(documents)`` and
    ``.delete(ids)`` change the collection.
    """
    from indexer.catalog import create_service
    from indexer.settings import Settings

    overrides: dict[str, object] = {"index_dir": Path(index_dir), "collection": collection}
    if model is not None:
        overrides["model"] = model
    return create_service(Settings(**overrides))  # type: ignore[arg-type]
