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

__all__ = ["open_index"]


def open_index(index_dir: str | Path = "index", model: str | None = None) -> SearchService:
    """A search service over the index in ``index_dir`` (other settings from ``FINDLING_*``)."""
    from indexer.service import create_service
    from indexer.settings import Settings

    overrides: dict[str, object] = {"index_dir": Path(index_dir)}
    if model is not None:
        overrides["model"] = model
    return create_service(Settings(**overrides))  # type: ignore[arg-type]
