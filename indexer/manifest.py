"""What a collection is at one generation: format, model, recipe, counts, and its segments.

A generation manifest (``gen-<number>.json``) is small: it names the segments that make up the
collection and, for each, the file listing its deleted documents. Everything heavy lives in
the immutable segment folders (see segment.py).

A sharded collection (see shards.py) has a top manifest (``top-<number>.json``) of the same
shape that names, instead of segments, each shard's generation manifest in the shard's folder.
Read as one, it lists every shard's segments by their path in the collection
(``shard-01/seg-00000004``), so a reader searches all shards as one collection.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from indexer.errors import IndexCorruptError
from indexer.recipe import VectorRecipe

FORMAT_VERSION = 2
REBUILD_HINT = "rebuild it with `findling index --rebuild` (from the original files)"


@dataclass(frozen=True)
class SegmentEntry:
    """One segment of a generation and which of its documents are deleted."""

    name: str
    sentences: int
    documents: int
    vector_index: str
    deleted: str | None = None  # file of the deleted document rows, None if none is
    deleted_documents: int = 0
    deleted_sentences: int = 0

    @property
    def live_sentences(self) -> int:
        return self.sentences - self.deleted_sentences

    @property
    def live_documents(self) -> int:
        return self.documents - self.deleted_documents


@dataclass(frozen=True)
class ShardEntry:
    """One shard of a sharded collection at one generation: its folder, the generation
    manifest there, and its live documents, sentences and terms (the sum of their BM25
    lengths), from which the collection-wide lexical statistics follow."""

    name: str
    generation: str
    documents: int = 0
    sentences: int = 0
    terms: int = 0


@dataclass(frozen=True)
class Manifest:
    """The self-description of one generation of a collection."""

    model: str
    dimension: int
    generation: str  # gen-<number>, also the manifest's file name without .json
    number: int
    created_at: str
    splitter: str
    findling_version: str
    next_id: int  # the sentence id the next added sentence gets; ids are never reused
    next_segment: int
    recipe: VectorRecipe = field(default_factory=VectorRecipe)
    vectors: str = ""  # what a stored vector is, in words (VectorRecipe.describe)
    segments: list[SegmentEntry] = field(default_factory=list)
    shards: list[ShardEntry] = field(default_factory=list)  # a sharded collection's shards
    format_version: int = FORMAT_VERSION
    metric: str = "inner_product"
    normaliser: str = "l2"

    @property
    def documents(self) -> int:
        """Live documents."""
        if self.shards:
            return sum(s.documents for s in self.shards)
        return sum(s.live_documents for s in self.segments)

    @property
    def passages(self) -> int:
        """Live sentences."""
        if self.shards:
            return sum(s.sentences for s in self.shards)
        return sum(s.live_sentences for s in self.segments)

    @property
    def vector_index(self) -> str:
        """How the vectors are searched: the kinds of the segments, largest first."""
        kinds = sorted({s.vector_index for s in self.segments}, reverse=True)
        return " + ".join(kinds) or "flat"

    def next(
        self, number: int, created_at: str, segments: list[SegmentEntry], **changes: Any
    ) -> Manifest:
        """The manifest of the following generation."""
        return replace(
            self,
            generation=generation_name(number),
            number=number,
            created_at=created_at,
            segments=segments,
            **changes,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(documents=self.documents, passages=self.passages)
        data["vector_index"] = self.vector_index
        if not self.shards:
            del data["shards"]  # an unsharded collection's manifest reads as it always did
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexCorruptError(
                f"this collection has index format {version!r}; this findling reads format "
                f"{FORMAT_VERSION} (segments)",
                REBUILD_HINT,
            )
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            segments = [SegmentEntry(**s) for s in data.get("segments", [])]
            shards = [ShardEntry(**s) for s in data.get("shards", [])]
            recipe = VectorRecipe.from_manifest(data)
            return cls(**{**fields, "segments": segments, "shards": shards, "recipe": recipe})
        except TypeError as exc:
            raise IndexCorruptError(
                f"manifest has unexpected fields ({exc})", REBUILD_HINT
            ) from exc


def generation_name(number: int) -> str:
    return f"gen-{number:012d}"


def read_manifest(path: Path) -> Manifest:
    """Read a generation manifest; FileNotFoundError if it is gone (a reader retries)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{path} is not valid JSON ({exc})", REBUILD_HINT) from exc
    if not isinstance(data, dict):
        raise IndexCorruptError(f"{path} is not a manifest", REBUILD_HINT)
    return Manifest.from_json(data)
