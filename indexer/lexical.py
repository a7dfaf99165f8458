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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
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
        # every occurrence's row and term key, then counted per (term, row) in numpy: a Counter
        # per row was a sixth of writing a segment
        terms = [t for row in analysed for t in (row or (EMPTY,))]
        lengths = np.fromiter((len(row) or 1 for row in analysed), np.int32, len(analysed))
        rows = np.repeat(np.arange(len(analysed), dtype=np.int32), lengths)
        distinct = {term: i for i, term in enumerate(dict.fromkeys(terms))}
        known = np.fromiter(map(term_key, distinct), dtype=np.uint64, count=len(distinct))
        codes = np.fromiter(map(distinct.__getitem__, terms), dtype=np.int64, count=len(terms))
        keys = known[codes]
        order = np.lexsort((rows, keys))
        keys, rows = keys[order], rows[order]
        new_key = keys[1:] != keys[:-1]
        first = np.flatnonzero(np.r_[len(keys) > 0, new_key | (rows[1:] != rows[:-1])])
        counts = np.diff(np.append(first, len(keys)))
        keys, rows = keys[first], rows[first]  # one per (term, row), sorted by term, then row
        term_starts = np.flatnonzero(np.r_[len(keys) > 0, keys[1:] != keys[:-1]])
        return cls(
            keys[term_starts],
            np.append(term_starts, len(keys)).astype(np.int64),
            rows,
            np.minimum(counts, 65535).astype(np.uint16),
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

    @cached_property
    def shortest(self) -> int:
        """The fewest terms of any row (an upper bound of BM25 needs it)."""
        return int(self.lengths.min(initial=1))

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
class RowScores:
    """One segment's BM25 scores where they are above 0: the rows, ascending, and their
    scores. Only sentences sharing a term with the query are held, so a query on a segment of
    a million sentences costs what its terms match, not a pass over every sentence."""

    rows: np.ndarray  # int64, ascending
    values: np.ndarray  # float32, each > 0
    size: int  # the segment's rows

    def dense(self) -> np.ndarray:
        """Every row's score (0 where no term matches)."""
        out = np.zeros(self.size, dtype=np.float32)
        out[self.rows] = self.values
        return out


@dataclass(frozen=True)
class _Term:
    """One query term as BM25 weighs it: ``weight`` (its repeats times its idf) and, per
    segment, the live rows holding it (ascending) with their term counts."""

    weight: np.float32
    found: list[tuple[np.ndarray, np.ndarray]]

    @property
    def matched(self) -> int:
        return sum(len(rows) for rows, _ in self.found)


class LexicalScores:
    """BM25 of a query over every segment, computed where it is asked for.

    ``full`` is the score of an average-length sentence holding every query term once,
    counting terms the collection does not know at their highest weight. :meth:`matches`
    gives the sentences that can rank among the best (scoring only what can, see there),
    :meth:`at` the score of any sentence, :attr:`scores` every matching sentence's.
    """

    def __init__(self, terms: list[_Term], segments: Segments, average: float, full: float) -> None:
        self.terms = terms  # in the query's order, which is the order scores are summed in
        self.segments = segments
        self.average = average
        self.full = full

    @cached_property
    def scores(self) -> list[RowScores]:
        """Every live sentence sharing a term with the query, segment by segment."""
        out = []
        for i, (postings, _) in enumerate(self.segments):
            parts = [
                (t.found[i][0], self._contribution(t, i, *t.found[i]))
                for t in self.terms
                if len(t.found[i][0])
            ]
            out.append(_summed(parts, len(postings.lengths)))
        return out

    @cached_property
    def best(self) -> float:
        """The highest score of any live sentence (0 if none matches)."""
        return max((float(s.values.max(initial=0.0)) for s in self.matches(1)), default=0.0)

    def normalised(self) -> list[RowScores]:
        """Scores as the share of the query they match, in [0, 1], in BM25's own order.

        Dividing by the query's full score rather than by its best hit keeps weak evidence weak:
        a sentence that shares only a common word ("Ukraine" in an article about Ukraine) with
        the question is not made to look like a perfect lexical match (measured: fixes a seed
        question, and paragraph MRR@10 on XQuAD dev stays within 0.003, better at sentence level).
        A hit above the full score (repeated words, a short sentence) sets the scale instead.
        """
        return [RowScores(s.rows, scaled(s.values, self.scale), s.size) for s in self.scores]

    @property
    def scale(self) -> float:
        """What :meth:`normalised` divides by (0: nothing to divide)."""
        return lexical_scale(self.full, self.best)

    def dense(self) -> list[np.ndarray]:
        """Every row's score, segment by segment (0 where no term matches)."""
        return [s.dense() for s in self.scores]

    def at(self, segment: int, rows: np.ndarray) -> np.ndarray:
        """The scores of ``rows`` of a segment (0 for a row no query term matches), as
        :attr:`scores` holds them, to the last bit."""
        return self._looked_up(segment, np.asarray(rows, dtype=np.int64), range(len(self.terms)))

    def _looked_up(
        self,
        segment: int,
        rows: np.ndarray,
        among: Iterable[int],
        own: tuple[int, np.ndarray] | None = None,
    ) -> np.ndarray:
        """The scores of ``rows`` from the terms ``among`` (indexes into ``self.terms``), summed
        in the query's term order; ``own``: a term every row holds, with their counts."""
        values = np.zeros(len(rows), dtype=np.float32)
        for index in sorted(among):
            term = self.terms[index]
            if own is not None and index == own[0]:
                values += self._contribution(term, segment, rows, own[1])
                continue
            term_rows, counts = term.found[segment]
            if not len(term_rows) or not len(rows):
                continue
            where = np.minimum(np.searchsorted(term_rows, rows), len(term_rows) - 1)
            hit = np.flatnonzero(term_rows[where] == rows)
            if len(hit):
                chosen = where[hit]
                values[hit] += self._contribution(term, segment, term_rows[chosen], counts[chosen])
        return values

    def matches(
        self, depth: int, allowed: Sequence[np.ndarray] | None = None, margin: float = 0.0
    ) -> list[RowScores]:
        """Segment by segment, the allowed sentences sharing a term with the query among which
        are all that score at least (1 - ``margin``) times the ``depth``-th best score: the
        best ``depth``, their ties and near ties, with their exact scores.

        Terms are taken rarest first, their sentences scored exactly (every query term looked
        up); once the terms not taken yet could not lift a sentence that holds none of the
        taken ones to that score even together (MaxScore, as Lucene prunes), the rest of their
        sentences cannot rank and are never scored. A query of common words only (or asking
        for very many) is scored over all matches, as :attr:`scores` does.
        """
        order = sorted(
            (i for i, t in enumerate(self.terms) if t.matched), key=lambda i: self.terms[i].matched
        )  # rarest first
        terms = [self.terms[i] for i in order]
        if depth <= 0 or not terms or "scores" in self.__dict__:
            return self._found(_allowed(self.scores, allowed), allowed)
        size = sum(len(p.lengths) for p, _ in self.segments)
        bounds = [self._bound(t) for t in terms]
        remaining = float(sum(bounds))
        taken: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in self.segments]
        seen = 0
        for position, (term, bound) in enumerate(zip(terms, bounds, strict=True)):
            if seen + term.matched > PRUNED_SHARE * size:
                # summing whole lists costs less now
                return self._found(_allowed(self.scores, allowed), allowed)
            # a sentence new here holds none of the rarer terms taken before (it would have
            # been taken with them): only this term and the commoner ones can add to it
            among = order[position:]
            for i, (rows, counts) in enumerate(term.found):
                if allowed is not None:
                    kept = allowed[i][rows]
                    rows, counts = rows[kept], counts[kept]
                known = [r for r, _ in taken[i]]
                if known and len(rows):
                    new = ~np.isin(rows, np.concatenate(known), assume_unique=True)
                    rows, counts = rows[new], counts[new]
                if len(rows):
                    rows = rows.astype(np.int64)
                    values = self._looked_up(i, rows, among, (order[position], counts))
                    taken[i].append((rows, values))
            seen += term.matched
            remaining -= bound
            values = np.concatenate([v for part in taken for _, v in part] or [np.zeros(0)])
            if len(values) >= depth:
                kth = float(np.partition(values, len(values) - depth)[len(values) - depth])
                if remaining * (1 + BOUND_SLACK) < kth * (1 - margin):
                    break
        out = []
        for i, (postings, _) in enumerate(self.segments):
            rows = np.concatenate([r for r, _ in taken[i]] or [np.zeros(0, dtype=np.int64)])
            values = np.concatenate([v for _, v in taken[i]] or [np.zeros(0, dtype=np.float32)])
            ascending = np.argsort(rows, kind="stable")
            out.append(RowScores(rows[ascending], values[ascending], len(postings.lengths)))
        return self._found(out, allowed)

    def _found(
        self, matches: list[RowScores], allowed: Sequence[np.ndarray] | None
    ) -> list[RowScores]:
        if allowed is None:  # the best of all is among them: no second pass for it
            self.__dict__["best"] = max(
                (float(m.values.max(initial=0.0)) for m in matches), default=0.0
            )
        return matches

    def _contribution(
        self, term: _Term, segment: int, rows: np.ndarray, counts: np.ndarray
    ) -> np.ndarray:
        tf = counts.astype(np.float32)
        lengths = self.segments[segment][0].lengths[rows]
        norm = K1 * (1 - B + B * lengths / self.average)
        return term.weight * tf / (tf + norm)

    def _bound(self, term: _Term) -> float:
        """No sentence gets more than this from ``term``: its highest count in the shortest
        sentence of the segment."""
        bound = 0.0
        for (postings, _), (rows, counts) in zip(self.segments, term.found, strict=True):
            if len(rows):
                tf = float(counts.max())
                norm = K1 * (1 - B + B * postings.shortest / self.average)
                bound = max(bound, float(term.weight) * tf / (tf + norm))
        return bound


def _allowed(scores: list[RowScores], allowed: Sequence[np.ndarray] | None) -> list[RowScores]:
    if allowed is None:
        return scores
    out = []
    for part, mask in zip(scores, allowed, strict=True):
        kept = mask[part.rows]
        out.append(RowScores(part.rows[kept], part.values[kept], part.size))
    return out


def scaled(scores: np.ndarray, scale: float) -> np.ndarray:
    """BM25 as a share of the query, as LexicalScores.normalised computes it."""
    return scores / scale if scale > 0 else scores


def lexical_scale(full: float, best: float) -> float:
    """What BM25 scores are divided by (see :meth:`LexicalScores.normalised`); for a sharded
    collection ``best`` is the highest score of all shards."""
    return max(full, best)


# (postings, live rows mask) of each segment; None for a segment with nothing deleted
Segments = Sequence[tuple[Postings, np.ndarray | None]]
# a segment whose query terms match more than this share of its rows is summed in one array
# of all its rows; fewer matches are summed over just the matched rows
DENSE_SHARE = 1 / 16
# pruning (LexicalScores.matches) gives up, and scores every match, once the rows it would
# score reach this share of the collection: looking terms up row by row costs more than
# summing whole lists then
PRUNED_SHARE = 1 / 16
# the bounds pruning compares are float64 sums, the scores float32 ones: room for rounding
BOUND_SLACK = 1e-4


def _matches(segments: Segments, key: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per segment, the live rows holding the term with ``key`` and their counts."""
    found = []
    for postings, live in segments:
        rows, counts = postings.find(key)
        if live is not None:
            kept = live[rows]
            rows, counts = rows[kept], counts[kept]
        found.append((rows, counts))
    return found


def live_totals(segments: Segments) -> tuple[int, int]:
    """The live rows of ``segments`` and their total length (in terms)."""
    rows = sum(len(p.lengths) if live is None else int(live.sum()) for p, live in segments)
    length = sum(
        int((p.lengths if live is None else p.lengths[live]).sum(dtype=np.int64))
        for p, live in segments
    )
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
    if live_rows == 0:
        return LexicalScores([], segments, 1.0, 0.0)
    full = 0.0
    terms = []
    for term, repeats in Counter(query_terms).items():
        found = _matches(segments, term_key(term))
        frequency = (
            collection.frequencies.get(term, 0)
            if collection
            else sum(len(rows) for rows, _ in found)
        )
        idf = math.log(1 + (live_rows - frequency + 0.5) / (frequency + 0.5))
        full += repeats * idf / (1 + K1)  # tf 1 at average length: tf / (tf + K1)
        if frequency:
            terms.append(_Term(np.float32(repeats * idf), found))
    return LexicalScores(terms, segments, total_length / live_rows, full)


def _summed(parts: list[tuple[np.ndarray, np.ndarray]], size: int) -> RowScores:
    """The sum per row of each term's (rows, contributions), added in the query's term order
    into float32, as one array of every row would add them (so either way gives the same
    scores to the last bit)."""
    if not parts:
        return RowScores(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), size)
    if len(parts) == 1:
        rows, contribution = parts[0]
        return RowScores(rows.astype(np.int64), contribution.astype(np.float32), size)
    if sum(len(rows) for rows, _ in parts) > size * DENSE_SHARE:
        every = np.zeros(size, dtype=np.float32)
        for rows, contribution in parts:
            every[rows] += contribution
        # each contribution is above 0; (a comparison, then a boolean nonzero: 8x faster
        # than nonzero over floats)
        matched = np.flatnonzero(every > 0)
        return RowScores(matched, every[matched], size)
    matched = _union([rows for rows, _ in parts])
    values = np.zeros(len(matched), dtype=np.float32)
    for rows, contribution in parts:
        values[np.searchsorted(matched, rows)] += contribution
    return RowScores(matched, values, size)


def _union(arrays: list[np.ndarray]) -> np.ndarray:
    """The distinct values of the arrays, ascending, as int64 (np.unique hashes first: 16x
    slower on a few thousand rows, measured with numpy 2.3)."""
    values = np.sort(np.concatenate(arrays).astype(np.int64))
    if not len(values):
        return values
    first = np.empty(len(values), dtype=bool)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    return values[first]
