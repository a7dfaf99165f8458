"""Which segments to merge: a tiered policy, as Lucene's TieredMergePolicy does it.

Segments are grouped into tiers by live size (a tier spans a factor of ``at_once``; segments
below ``floor`` count as ``floor``). When a tier holds ``per_tier`` segments or more, its
``at_once`` smallest are merged into one, which lands a tier higher. So a collection of n
sentences keeps about ``per_tier`` segments per power of ``at_once``, and every sentence is
copied O(log n) times over its life. A segment that is mostly deleted is rewritten on its own.
A merge copies rows (vectors, postings, documents); nothing is embedded or analysed again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from indexer.manifest import SegmentEntry


@dataclass(frozen=True)
class MergePolicy:
    floor: int = 1_000
    per_tier: int = 10
    at_once: int = 10
    # a segment with a larger share of deleted sentences is rewritten without them
    deleted_share: float = 0.5
    # the most live sentences one merge may produce; None: no limit (findling optimize)
    max_merged: int | None = None

    def choose(self, segments: Sequence[SegmentEntry]) -> list[str]:
        """Names of the segments to merge next, or [] if the collection is in shape."""
        tiers: dict[int, list[SegmentEntry]] = {}
        for entry in segments:
            tiers.setdefault(self._tier(entry.live_sentences), []).append(entry)
        for tier in sorted(tiers):
            members = sorted(tiers[tier], key=lambda e: (e.live_sentences, e.name))
            if len(members) >= self.per_tier:
                chosen = members[: self.at_once]
                if self._fits(chosen):
                    return [e.name for e in chosen]
        for entry in sorted(segments, key=lambda e: e.live_sentences):
            share = entry.deleted_sentences / entry.sentences if entry.sentences else 0.0
            if share > self.deleted_share and self._fits([entry]):
                return [entry.name]
        return []

    def _tier(self, live: int) -> int:
        return int(math.log(max(live, self.floor) / self.floor, self.at_once) + 1e-9)

    def _fits(self, chosen: Sequence[SegmentEntry]) -> bool:
        total = sum(e.live_sentences for e in chosen)
        return self.max_merged is None or total <= self.max_merged


# everything into one segment
OPTIMIZE = MergePolicy(per_tier=2, at_once=10**9, deleted_share=0.0)
