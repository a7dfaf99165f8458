"""Ranking: fusing the dense and lexical legs and collapsing sentences into passages.

Pure functions over scores and passage metadata; the service feeds them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, get_args

import numpy as np

from indexer.defaults import (
    CROSS_LANGUAGE_WEIGHT,
    LEXICAL_WEIGHT,
    PASSAGES_PER_DOCUMENT,
    Group,
    Mode,
)
from indexer.recipe import VectorRecipe

MODES: tuple[Mode, ...] = get_args(Mode)
SCORE_DIGITS = 6  # scores are shown rounded to this many decimals, and cut off as shown
GROUPS: tuple[Group, ...] = get_args(Group)


@dataclass(frozen=True)
class Fusion:
    """How the hybrid mode weighs the lexical leg (BM25 as the share of the query matched),
    for sentences in the question's language and in another one (see defaults.py)."""

    lexical_weight: float = LEXICAL_WEIGHT
    cross_language_weight: float = CROSS_LANGUAGE_WEIGHT


def score_description(recipe: VectorRecipe | None = None, fusion: Fusion | None = None) -> str:
    """What a result's ``score`` means: the one text the API schema, the MCP tool, the search
    page and the README show (a test checks that they agree)."""
    recipe, fusion = recipe or VectorRecipe(), fusion or Fusion()
    spread = (
        "with the default model an answer scores about 0.4-0.7, unrelated text about 0.2"
        if recipe.centring == "language"
        else "the default model's scores cluster between 0.7 and 0.9"
    )
    across = (
        f" ({fusion.cross_language_weight:g} x that share when they do not)"
        if fusion.cross_language_weight
        else ""
    )
    return (
        f"Higher is better. dense: {recipe.dense_score_meaning()} ({spread}); bm25: the share "
        "of the question the sentence matches (its BM25 "
        "divided by what an average-length sentence holding every question word once would "
        "score, or by the best hit if that scores more), in [0, 1]; hybrid: dense + "
        f"{fusion.lexical_weight:g} x that share when question and sentence share a "
        f"language{across}."
    )


SCORE_DESCRIPTION = score_description()

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
PROBABILITY_DESCRIPTION = (
    "The probability that this passage's paragraph answers the question, calibrated so that a "
    "threshold means the same for every question and language pair (on questions kept apart "
    "from the fit, hits with at least 0.5 were right 77-84% of the time in German and English "
    "alike); null where no calibration fits (another model, other fusion weights, bm25 mode)."
)


def calibration_features(score: float, top: float, same_language: bool) -> list[float]:
    """What the calibration reads of a hit: its score, the gap to the first result's score,
    and whether the sentence is in the question's language (alone and with the score)."""
    same = float(same_language)
    return [1.0, score, top - score, same, score * same]


@dataclass(frozen=True)
class Calibration:
    """A logistic map from a hit's score to the probability that its paragraph is relevant,
    per search mode, fitted by ``python -m bench.calibrate`` for one model, vector centring and
    fusion."""

    model: str
    fusion: tuple[float, float]
    modes: dict[str, np.ndarray]
    centring: str = "none"

    def probability(
        self,
        model: str,
        centring: str,
        fusion: Fusion,
        mode: str,
        score: float,
        top: float,
        same: bool,
    ) -> float | None:
        weights = self.modes.get(mode)
        if weights is None or model != self.model or centring != self.centring:
            return None
        if (fusion.lexical_weight, fusion.cross_language_weight) != self.fusion and mode != "dense":
            return None
        z = float(np.dot(weights, calibration_features(score, top, same)))
        return 1 / (1 + math.exp(-z))


@lru_cache(maxsize=1)
def calibration() -> Calibration | None:
    """The shipped calibration (``indexer/calibration.json``), if there is one."""
    if not CALIBRATION_FILE.is_file():
        return None
    data = json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))
    return Calibration(
        model=data["model"],
        fusion=(float(data["fusion"][0]), float(data["fusion"][1])),
        centring=str(data.get("centring", "none")),
        modes={
            mode: np.array([weights[f] for f in data["features"]], dtype=np.float64)
            for mode, weights in data["modes"].items()
        },
    )


class Scored(NamedTuple):
    """A candidate sentence (its address in a snapshot) with its final score and the two
    legs' contributions. (A named tuple: every candidate of a query gets one, and a frozen
    dataclass took 2.5 times as long to make, 0.14 ms of a shard's proposal of 165.)"""

    address: int
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
    """Score ``candidates`` (sentence addresses) for ``mode``, best first.

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
    if mode == "bm25":
        order = order[total[order] > 0]  # no shared term, no lexical match
    # Python numbers from whole arrays at once: one by one cost 0.6 ms a query at depth 50
    none = [None] * len(order)
    return list(
        map(
            Scored._make,
            zip(
                candidates[order].tolist(),
                np.asarray(total, dtype=np.float64)[order].tolist(),
                none if dense is None else np.asarray(dense, dtype=np.float64)[order].tolist(),
                none if lexical is None else np.asarray(lexical, dtype=np.float64)[order].tolist(),
                strict=True,
            ),
        )
    )


def collapse(
    ranked: Iterable[Scored], paragraph_of: Callable[[int], Hashable], k: int
) -> list[Scored]:
    """Keep the best sentence of each paragraph until ``k`` paragraphs are found."""
    seen: set[Hashable] = set()
    kept = []
    for hit in ranked:
        key = paragraph_of(hit.address)
        if key in seen:
            continue
        seen.add(key)
        kept.append(hit)
        if len(kept) == k:
            break
    return kept


@dataclass(frozen=True)
class Selection:
    """Which ranked passages a search returns: ``k`` of them after skipping ``offset``, none
    scoring below ``min_score``; one per paragraph, or (``group="document"``) ``k`` documents,
    each with its best passages (at most PASSAGES_PER_DOCUMENT, one per paragraph)."""

    k: int
    offset: int = 0
    min_score: float | None = None
    group: Group = "paragraph"

    @property
    def passages(self) -> int:
        """The most passages the ranking must provide (those skipped included)."""
        per_result = PASSAGES_PER_DOCUMENT if self.group == "document" else 1
        return (self.offset + self.k) * per_result

    def select(
        self,
        ranked: Sequence[Scored],
        paragraph_of: Callable[[int], Hashable],
        document_of: Callable[[int], Hashable],
    ) -> list[tuple[int, Scored]]:
        """The chosen passages with their rank: the passage's (from ``offset + 1``), or with
        ``group="document"`` its document's, which all of the document's passages share."""
        if self.min_score is not None:
            ranked = [s for s in ranked if round(s.score, SCORE_DIGITS) >= self.min_score]
        if self.group == "paragraph":
            kept = collapse(ranked, paragraph_of, self.offset + self.k)[self.offset :]
            return list(enumerate(kept, start=self.offset + 1))
        groups = group_documents(
            ranked, paragraph_of, document_of, self.offset + self.k, PASSAGES_PER_DOCUMENT
        )
        return [
            (rank, hit)
            for rank, group in enumerate(groups[self.offset :], start=self.offset + 1)
            for hit in group
        ]


def group_documents(
    ranked: Iterable[Scored],
    paragraph_of: Callable[[int], Hashable],
    document_of: Callable[[int], Hashable],
    documents: int,
    per_document: int,
) -> list[list[Scored]]:
    """The best passages (the best sentence of each paragraph, at most ``per_document``) of the
    first ``documents`` documents to appear in ``ranked``, best document first."""
    groups: dict[Hashable, list[Scored]] = {}
    seen: set[Hashable] = set()
    for hit in ranked:
        paragraph = paragraph_of(hit.address)
        if paragraph in seen:
            continue
        seen.add(paragraph)
        document = document_of(hit.address)
        if document not in groups:
            if len(groups) == documents:
                continue
            groups[document] = []
        if len(groups[document]) < per_document:
            groups[document].append(hit)
    return list(groups.values())
