"""Planning an index update: which documents to (re-)embed and which to remove.

A document is identified by its id (resolved path, plus ``#key`` for JSONL records) and judged
changed by its content hash, so an unchanged file costs no embedding work.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from indexer.documents import Document


@dataclass(frozen=True)
class Plan:
    """The next generation: embed ``embed``, remove the old documents ``remove`` (ids), and
    how many documents were added, updated, removed and left unchanged."""

    embed: list[Document] = field(default_factory=list)
    remove: set[str] = field(default_factory=set)
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.embed or self.remove)


def plan_update(
    old: Mapping[str, str],
    incoming: Sequence[Document],
    protected: set[str],
    prune_roots: Sequence[str] | None,
) -> Plan:
    """Merge freshly read documents into the old ones (``old``: id -> content hash).

    Old documents below one of ``prune_roots`` that were not read again are removed (their file
    is gone), unless ``protected`` (the file exists but was skipped this time: keep the old
    version rather than lose it). ``prune_roots=None`` removes nothing.
    """
    new = {d.id: d for d in incoming}
    changed = [d for d in new.values() if d.id in old and old[d.id] != d.sha256]
    added = [d for d in new.values() if d.id not in old]
    gone = {
        doc_id
        for doc_id in old
        if doc_id not in new
        and doc_id not in protected
        and prune_roots is not None
        and any(is_below(doc_id, root) for root in prune_roots)
    }
    return Plan(
        embed=added + changed,
        remove=gone | {d.id for d in changed},
        added=len(added),
        updated=len(changed),
        removed=len(gone),
        unchanged=sum(1 for d in new.values() if d.id in old and old[d.id] == d.sha256),
    )


def plan_removal(old: Iterable[tuple[str, str]], remove: Callable[[str, str], bool]) -> Plan:
    """Drop the old documents (id, path) that ``remove`` selects; nothing is embedded."""
    ids = [(doc_id, path) for doc_id, path in old]
    gone = {doc_id for doc_id, path in ids if remove(doc_id, path)}
    return Plan(remove=gone, removed=len(gone), unchanged=len(ids) - len(gone))


def is_below(doc_id: str, root: str) -> bool:
    """Whether a document id lies at or below a resolved file or folder path."""
    root = root.rstrip("/") or "/"
    return doc_id == root or doc_id.startswith((root + "/", root + "#"))


def matches_source(doc_id: str, path: str, targets: Sequence[str], pattern: str | None) -> bool:
    """Whether a document is one of ``targets`` (resolved paths) or matches a glob ``pattern``."""
    if any(is_below(doc_id, target) for target in targets):
        return True
    if pattern is None:
        return False
    return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(doc_id, pattern)
