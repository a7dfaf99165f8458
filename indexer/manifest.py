"""What an index is: format version, model, dimension, counts, sources and file checksums."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from indexer.errors import IndexCorruptError
from indexer.fsutil import sha256_file
from indexer.recipe import VectorRecipe

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class SourceEntry:
    """One indexed file: its id in the index, where it was read from, and its content hash."""

    id: str
    path: str
    sha256: str
    language: str
    passages: int


@dataclass(frozen=True)
class Manifest:
    """The self-description written beside every index generation."""

    model: str
    dimension: int
    documents: int
    passages: int
    next_id: int  # the passage id the next added sentence gets; ids are never reused
    created_at: str
    generation: str
    splitter: str
    findling_version: str
    format_version: int = FORMAT_VERSION
    metric: str = "inner_product"
    normaliser: str = "l2"
    vectors: str = ""  # what a stored vector is, in words (VectorRecipe.describe)
    recipe: VectorRecipe = field(default_factory=VectorRecipe)
    vector_index: str = "flat"  # flat (exact) or hnsw<M> (approximate), see store.py
    sources: list[SourceEntry] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexCorruptError(
                f"index format version {version!r} is not supported "
                f"(this findling reads version {FORMAT_VERSION})",
                "rebuild the index with `findling index`",
            )
        recipe = VectorRecipe.from_manifest(data)
        fields = {k: v for k, v in data.items() if k not in ("context", "context_window")}
        try:
            sources = [SourceEntry(**s) for s in data.get("sources", [])]
            return cls(**{**fields, "sources": sources, "recipe": recipe})
        except TypeError as exc:
            raise IndexCorruptError(
                f"manifest has unexpected fields ({exc})", "rebuild with `findling index`"
            ) from exc


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(
            f"{path} is missing", "rebuild the index with `findling index`"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(
            f"{path} is not valid JSON ({exc})", "rebuild the index with `findling index`"
        ) from exc
    return Manifest.from_json(data)


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Check every file the manifest names against its recorded checksum."""
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise IndexCorruptError(f"{path} is missing", "rebuild with `findling index`")
        if sha256_file(path) != expected:
            raise IndexCorruptError(
                f"{path} is damaged (checksum differs from the manifest)",
                "rebuild with `findling index`",
            )
