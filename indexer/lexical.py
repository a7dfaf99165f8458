"""Lexical search: language-aware analysis (stop words, Snowball stems, umlauts) and BM25.

Each segment keeps an inverted index of its sentences (:class:`Postings`: per term, the rows
that hold it and how often). BM25 is scored at query time over all live rows of all segments
with the collection's own statistics (document frequencies, average length), so a result never
depends on how the collection happens to be split into segments or on deleted sentences.
bm25s precomputes scores with its corpus's statistics baked in, which a growing, segmented
index cannot use; its stop-word lists are used (indexer/stopwords.py), and a test checks our
scores against it on one segment.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from indexer import stopwords
from indexer.errors import IndexCorruptError
from indexer.fsutil import mapped

ANALYZER_VERSION = "1"
# Lucene's BM25 (as bm25s computes it): idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and
# tf part = tf / (tf + K1 * (1 - B + B * length / average length))
K1 = 1.5
B = 0.75
EMPTY = "\x00empty"  # the one term of a sentence with no other, so every row has a length

_WORD = re.compile(r"\w+", re.UNICODE)
_SNOWBALL = {
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "it": "italian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ru": "russian",
    "sv": "swedish",
}
# Snowball's German stemmer maps ä/ö/ü to a/o/u itself; folding before stemming makes the
# other spellings people type ("Aerger", "Strasse") meet it there
_UMLAUTS = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss"})
_DIGRAPHS = re.compile(r"(?<=[a-z])(ae|oe|ue)|^(ae|oe|ue)")
_FILES = ("terms", "starts", "rows", "counts", "lengths")


@lru_cache(maxsize=32)
def _stemmer(language: str) -> Any:
    import Stemmer

    return Stemmer.Stemmer(_SNOWBALL.get(language, "english"))


@lru_cache(maxsize=32)
def _stop_words(language: str) -> frozenset[str]:
    if language == "de":
        return frozenset(_fold_german(w) for w in stopwords.GERMAN)
    return frozenset(stopwords.ENGLISH if language == "en" else ())


def _fold_german(token: str) -> str:
    token = token.translate(_UMLAUTS)
    return _DIGRAPHS.sub(lambda m: (m.group(1) or m.group(2))[0], token)


def analyze(text: str, language: str) -> list[str]:
    """Terms of ``text`` as the index stores them: lower-cased words, stop words removed,
    umlauts and their digraphs folded (German), stemmed with the language's Snowball stemmer.
    Unknown languages are analysed with English rules."""
    stop = _stop_words(language)
    stemmer = _stemmer(language)
    words = []
    for word in _WORD.findall(text.lower()):
        if language == "de":
            word = _fold_german(word)
        if word not in stop:
            words.append(word)
    return [stem.translate(_UMLAUTS) for stem in stemmer.stemWords(words)]


@lru_cache(maxsize=1 << 18)  # terms repeat: hashing each occurrence cost a fifth of indexing
def term_key(term: str) -> int:
    """A term's 64-bit key, stable across processes (collisions are negligible at 2^-64)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class Postings:
    """One segment's inverted index. ``terms`` holds the term keys, ascending; the rows that
    hold term i are ``rows[starts[i]:starts[i + 1]]`` (ascending), with their term counts in
    ``counts``; ``lengths`` is every row's number of terms."""

    terms: np.ndarray
    starts: np.ndarray
    rows: np.ndarray
    counts: np.ndarray
    lengths: np.ndarray

    @classmethod
    def build(cls, analysed: Sequence[Sequence[str]]) -> Postings:
        """The postings of rows 0.. whose terms are ``analysed``."""
        keys: list[int] = []
        rows: list[int] = []
        counts: list[int] = []
        lengths = np.empty(len(analysed), dtype=np.int32)
        for row, terms in enumerate(analysed):
            counted = Counter(terms or [EMPTY])
            lengths[row] = sum(counted.values())
            for term, count in counted.items():
                keys.append(term_key(term))
                rows.append(row)
                counts.append(count)
        return cls._from_triples(
            np.array(keys, dtype=np.uint64),
            np.array(rows, dtype=np.int32),
            np.array(counts, dtype=np.int32),
            lengths,
        )

    @classmethod
    def _from_triples(
        cls, keys: np.ndarray, rows: np.ndarray, counts: np.ndarray, lengths: np.ndarray
    ) -> Postings:
        order = np.lexsort((rows, keys))
        keys, rows, counts = keys[order], rows[order], counts[order]
        terms, first = np.unique(keys, return_index=True)
        starts = np.append(first, len(keys)).astype(np.int64)
        return cls(terms, starts, rows, np.minimum(counts, 65535).astype(np.uint16), lengths)

    @classmethod
    def merge(cls, parts: Sequence[tuple[Postings, np.ndarray]]) -> Postings:
        """The postings of several segments' kept rows, renumbered in order.

        Each part pairs postings with a boolean mask of the rows to keep.
        """
        keys, rows, counts, lengths = [], [], [], []
        offset = 0
        for postings, keep in parts:
            renumbered = np.cumsum(keep, dtype=np.int64) - 1 + offset
            term_of = np.repeat(postings.terms, np.diff(postings.starts))
            kept = keep[postings.rows]
            keys.append(term_of[kept])
            rows.append(renumbered[postings.rows[kept]].astype(np.int32))
            counts.append(postings.counts[kept].astype(np.int32))
            lengths.append(postings.lengths[keep])
            offset += int(keep.sum())
        return cls._from_triples(
            np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64),
            np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32),
            np.concatenate(counts) if counts else np.zeros(0, dtype=np.int32),
            np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int32),
        )

    def save(self, folder: Path) -> None:
        """Plain .npy files (no pickle) named ``postings-<part>.npy`` in ``folder``."""
        for name in _FILES:
            np.save(folder / f"postings-{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> Postings:
        """Memory-mapped: opening costs nothing, a query reads only its terms' rows."""
        try:
            arrays = {name: mapped(folder / f"postings-{name}.npy") for name in _FILES}
        except FileNotFoundError:
            raise  # pruned meanwhile: the reader reads CURRENT again
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"cannot read the lexical index in {folder} ({exc})", "run `findling verify`"
            ) from exc
        return cls(**arrays)

    @staticmethod
    def files() -> list[str]:
        return [f"postings-{name}.npy" for name in _FILES]

    def find(self, key: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows holding the term with ``key`` and their counts (empty if none does)."""
        at = int(np.searchsorted(self.terms, np.uint64(key)))
        if at >= len(self.terms) or int(self.terms[at]) != key:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint16)
        begin, end = int(self.starts[at]), int(self.starts[at + 1])
        return self.rows[begin:end], self.counts[begin:end]


@dataclass(frozen=True)
class Statistics:
    """What BM25 knows of a whole collection for one query: its live rows, their total length
    and each query term's document frequency (live rows holding it). Each shard of a sharded
    collection counts its own; their sum is the collection's, so shards scored with the sum
    score exactly as one machine holding them all."""

    rows: int
    length: int
    frequencies: dict[str, int]

    def __add__(self, other: Statistics) -> Statistics:
        terms = dict.fromkeys([*self.frequencies, *other.frequencies], 0)
        return Statistics(
            self.rows + other.rows,
            self.length + other.length,
            {t: self.frequencies.get(t, 0) + other.frequencies.get(t, 0) for t in terms},
        )


@dataclass(frozen=True)
class LexicalScores:
    """BM25 of a query over every segment: one score array per segment (0 where no term
    matches), and the score of an average-length sentence holding every query term once,
    counting terms the collection does not know at their highest weight."""

    scores: list[np.ndarray]
    full: float

    @property
    def best(self) -> float:
        """The highest score of any sentence (0 if none matches)."""
        return max((float(s.max(initial=0.0)) for s in self.scores), default=0.0)

    def normalised(self) -> list[np.ndarray]:
        """Scores as the share of the query they match, in [0, 1], in BM25's own order.

        Dividing by the query's full score rather than by its best hit keeps weak evidence weak:
        a sentence that shares only a common word ("Ukraine" in an article about Ukraine) with
        the question is not made to look like a perfect lexical match (measured: fixes a seed
        question, and paragraph MRR@10 on XQuAD dev stays within 0.003, better at sentence level).
        A hit above the full score (repeated words, a short sentence) sets the scale instead.
        """
        scale = lexical_scale(self.full, self.best)
        return [s / scale for s in self.scores] if scale > 0 else self.scores


def lexical_scale(full: float, best: float) -> float:
    """What BM25 scores are divided by (see :meth:`LexicalScores.normalised`); for a sharded
    collection ``best`` is the highest score of all shards."""
    return max(full, best)


Segments = Sequence[tuple[Postings, np.ndarray]]  # (postings, live rows mask) of each segment


def _matches(segments: Segments, key: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per segment, the live rows holding the term with ``key`` and their counts."""
    found = []
    for postings, live in segments:
        rows, counts = postings.find(key)
        kept = live[rows]
        found.append((rows[kept], counts[kept]))
    return found


def live_totals(segments: Segments) -> tuple[int, int]:
    """The live rows of ``segments`` and their total length (in terms)."""
    rows = sum(int(live.sum()) for _, live in segments)
    length = sum(int(p.lengths[live].sum(dtype=np.int64)) for p, live in segments)
    return rows, length


def statistics(
    segments: Segments, query_terms: Sequence[str], totals: tuple[int, int] | None = None
) -> Statistics:
    """The BM25 statistics of the live rows of ``segments`` for the query's analysed terms."""
    rows, length = totals or live_totals(segments)
    frequencies = {
        term: sum(len(found) for found, _ in _matches(segments, term_key(term)))
        for term in dict.fromkeys(query_terms)
    }
    return Statistics(rows, length, frequencies)


def bm25(
    segments: Segments,
    query_terms: Sequence[str],
    collection: Statistics | None = None,
    totals: tuple[int, int] | None = None,
) -> LexicalScores:
    """BM25 of the query's analysed terms over segments given as (postings, live rows mask),
    with the statistics of the live rows of all of them, or with ``collection``'s (a shard
    scoring its rows as part of a sharded collection). A term the query repeats counts as
    often as it stands there."""
    if collection:
        live_rows, total_length = collection.rows, collection.length
    else:
        live_rows, total_length = totals or live_totals(segments)
    scores = [np.zeros(len(live), dtype=np.float32) for _, live in segments]
    if live_rows == 0:
        return LexicalScores(scores, 0.0)
    average = total_length / live_rows
    full = 0.0
    for term, repeats in Counter(query_terms).items():
        found = _matches(segments, term_key(term))
        frequency = (
            collection.frequencies.get(term, 0)
            if collection
            else sum(len(rows) for rows, _ in found)
        )
        idf = math.log(1 + (live_rows - frequency + 0.5) / (frequency + 0.5))
        full += repeats * idf / (1 + K1)  # tf 1 at average length: tf / (tf + K1)
        if frequency == 0:
            continue
        for (postings, _), (rows, counts), row_scores in zip(segments, found, scores, strict=True):
            if not len(rows):
                continue
            tf = counts.astype(np.float32)
            norm = K1 * (1 - B + B * postings.lengths[rows] / average)
            row_scores[rows] += np.float32(repeats * idf) * tf / (tf + norm)
    return LexicalScores(scores, full)
