"""Planning an index update: which documents to keep, (re-)embed or remove.

A document is identified by its id (resolved path, plus ``#key`` for JSONL records) and judged
changed by its content hash, so an unchanged file costs no embedding work.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from indexer.documents import Document


@dataclass(frozen=True)
class Plan:
    """The next generation: ``keep`` old documents by id, embed ``embed``, count the changes."""

    keep: list[str]
    embed: list[Document]
    added: int
    updated: int
    removed: int
    unchanged: int


def plan_update(
    old: Mapping[str, Document],
    incoming: Sequence[Document],
    protected: set[str],
    prune_roots: Sequence[str] | None,
) -> Plan:
    """Merge freshly read documents into the old ones.

    Old documents below one of ``prune_roots`` that were not read again are removed (their file
    is gone), unless ``protected`` (the file exists but was skipped this time: keep the old
    version rather than lose it). ``prune_roots=None`` removes nothing.
    """
    new = {d.id: d for d in incoming}
    changed = [d for d in new.values() if d.id in old and old[d.id].sha256 != d.sha256]
    added = [d for d in new.values() if d.id not in old]
    gone = {
        doc_id
        for doc_id in old
        if doc_id not in new
        and doc_id not in protected
        and prune_roots is not None
        and any(is_below(doc_id, root) for root in prune_roots)
    }
    replaced = {d.id for d in changed}
    return Plan(
        keep=[doc_id for doc_id in old if doc_id not in gone and doc_id not in replaced],
        embed=added + changed,
        added=len(added),
        updated=len(changed),
        removed=len(gone),
        unchanged=sum(1 for d in new.values() if d.id in old and d.id not in replaced),
    )


def plan_removal(old: Mapping[str, Document], remove: Callable[[Document], bool]) -> Plan:
    """Drop the old documents ``remove`` selects; nothing is embedded."""
    gone = {doc_id for doc_id, doc in old.items() if remove(doc)}
    return Plan(
        keep=[doc_id for doc_id in old if doc_id not in gone],
        embed=[],
        added=0,
        updated=0,
        removed=len(gone),
        unchanged=len(old) - len(gone),
    )


def is_below(doc_id: str, root: str) -> bool:
    """Whether a document id lies at or below a resolved file or folder path."""
    root = root.rstrip("/") or "/"
    return doc_id == root or doc_id.startswith((root + "/", root + "#"))


def matches_source(document: Document, targets: Sequence[str], pattern: str | None) -> bool:
    """Whether a document is one of ``targets`` (resolved paths) or matches a glob ``pattern``."""
    if any(is_below(document.id, target) for target in targets):
        return True
    if pattern is None:
        return False
    return fnmatch.fnmatch(document.path, pattern) or fnmatch.fnmatch(document.id, pattern)
