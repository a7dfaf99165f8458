"""Sharded collections: documents split by a stable hash of their id into shard folders.

Layout of a sharded collection folder::

    index/default/
      CURRENT                     names the live top manifest (replaced atomically)
      top-<number>.json           the collection at one generation: each shard's generation
      shard-00/                   a shard: laid out as an unsharded collection, without CURRENT
        gen-<number>.json           (see generations.py)
        seg-<number>/
        del-<segment>-<number>.npy
        stage-<...>/              segments embedded by a distributed run, not yet committed
      shard-01/ ...

A commit writes each shard's segments, deletion files and generation manifest first (none of
them is current by itself), then the top manifest, and makes it current with one atomic swap of
``CURRENT``, as an unsharded commit does. Readers open the shards named by the top manifest as
one collection (:func:`sharded_view`), so every search, filter and statistic is that of one
collection holding all documents. An unsharded collection is one implicit shard and keeps its
layout; collections are never migrated.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from indexer.errors import InvalidRequestError
from indexer.manifest import Manifest, SegmentEntry, read_manifest

TOP = "top-"
SHARD = "shard-"
STAGE = "stage-"
MAX_SHARDS = 1024


def shard_name(number: int) -> str:
    return f"{SHARD}{number:02d}"


def top_name(number: int) -> str:
    return f"{TOP}{number:012d}"


def shard_of(doc_id: str, shards: int) -> int:
    """The shard a document belongs to: stable across processes, machines and runs."""
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % shards


def shard_manifest(index_dir: Path, top: Manifest, shard: str) -> Manifest:
    """The generation manifest of ``shard`` that ``top`` names."""
    entry = next(s for s in top.shards if s.name == shard)
    return read_manifest(index_dir / entry.name / f"{entry.generation}.json")


def sharded_view(index_dir: Path, top: Manifest) -> Manifest:
    """The top manifest with every shard's segments, named by their path in the collection
    (``shard-01/seg-00000004``), shard by shard: what a reader of the whole collection opens.
    FileNotFoundError if a shard's manifest is gone (pruned meanwhile: the caller retries)."""
    segments: list[SegmentEntry] = []
    for shard in top.shards:
        manifest = read_manifest(index_dir / shard.name / f"{shard.generation}.json")
        segments += [qualified(entry, shard.name) for entry in manifest.segments]
    return replace(top, segments=segments)


def qualified(entry: SegmentEntry, shard: str) -> SegmentEntry:
    """A shard's segment entry as the whole collection names it."""
    deleted = f"{shard}/{entry.deleted}" if entry.deleted else None
    return replace(entry, name=f"{shard}/{entry.name}", deleted=deleted)


def unqualified(entry: SegmentEntry) -> SegmentEntry:
    """The entry as its shard names it (the inverse of :func:`qualified`)."""
    deleted = entry.deleted.partition("/")[2] if entry.deleted else None
    return replace(entry, name=entry.name.partition("/")[2], deleted=deleted)


def shard_segments(view: Manifest, shard: str) -> list[int]:
    """Positions in a sharded view's segments of the segments of ``shard``."""
    return [i for i, e in enumerate(view.segments) if e.name.startswith(f"{shard}/")]


def shard_count(current: Manifest | None, requested: int | None, rebuilding: bool) -> int:
    """How many shards the next generation has: ``requested`` for a new or rebuilt collection,
    else the current count (0: unsharded). An existing collection is re-sharded only by a
    rebuild."""
    existing = len(current.shards) if current else 0
    if requested is None:
        return existing
    if not 1 <= requested <= MAX_SHARDS:
        raise InvalidRequestError(f"--shards must be between 1 and {MAX_SHARDS}, not {requested}")
    if current is not None and not rebuilding and requested != existing:
        held = f"{existing} shards" if existing else "no shards"
        raise InvalidRequestError(
            f"the collection has {held}; it cannot be split into {requested} in place",
            f"rebuild it with `findling index --rebuild --shards {requested}`, or leave out "
            "--shards",
        )
    return requested
