"""Ranking: fusing the dense and lexical legs and collapsing sentences into passages.

Pure functions over scores and passage metadata; the service feeds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from indexer.documents import Passage

Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class Fusion:
    """How the hybrid mode weighs the lexical leg (BM25 as the share of the query matched).

    Measured on XQuAD dev (paragraph MRR@10): BM25 adds to dense when question and text share
    a language, and only hurts across languages, where it has little to match.
    """

    lexical_weight: float = 0.1
    cross_language_weight: float = 0.0


@dataclass(frozen=True)
class Scored:
    """A candidate sentence with its final score and the two legs' contributions."""

    pid: int
    score: float
    dense: float | None
    lexical: float | None


def fuse(
    mode: Mode,
    candidates: np.ndarray,
    dense: np.ndarray | None,
    lexical: np.ndarray | None,
    same_language: np.ndarray,
    fusion: Fusion,
) -> list[Scored]:
    """Score ``candidates`` (passage ids) for ``mode``, best first.

    ``dense`` and ``lexical`` hold each candidate's score in that leg (``lexical`` normalised
    to [0, 1]); ``same_language`` says whether the candidate is in the query's language.
    """
    if mode == "dense":
        assert dense is not None
        total = dense
    elif mode == "bm25":
        assert lexical is not None
        total = lexical
    else:
        assert dense is not None and lexical is not None
        weight = np.where(same_language, fusion.lexical_weight, fusion.cross_language_weight)
        total = dense + weight * lexical
    # stable order: equal scores keep index order, so results are reproducible
    order = np.argsort(-total, kind="stable")
    return [
        Scored(
            pid=int(candidates[i]),
            score=float(total[i]),
            dense=None if dense is None else float(dense[i]),
            lexical=None if lexical is None else float(lexical[i]),
        )
        for i in order
        if mode != "bm25" or total[i] > 0  # no shared term, no lexical match
    ]


def collapse(ranked: Iterable[Scored], passages: Mapping[int, Passage], k: int) -> list[Scored]:
    """Keep the best sentence of each paragraph until ``k`` paragraphs are found."""
    seen: set[tuple[str, int]] = set()
    kept = []
    for hit in ranked:
        passage = passages[hit.pid]
        key = (passage.doc_id, passage.paragraph)
        if key in seen:
            continue
        seen.add(key)
        kept.append(hit)
        if len(kept) == k:
            break
    return kept
