"""A snapshot: one generation of a collection, opened for searching.

It is the generation's segments, each with the mask of its live sentences (deleted documents
left out). Segments are shared between snapshots (a new generation opens only its new segments
and deletion files), so picking up a commit costs what the commit changed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from indexer.defaults import SNIPPET_MAX_CHARS, SNIPPET_WINDOW
from indexer.documents import public_id
from indexer.errors import IndexCorruptError
from indexer.filters import parse_filter, segment_filter
from indexer.formats import page_of
from indexer.generations import current_manifest
from indexer.lexical import (
    LexicalScores,
    Postings,
    RowScores,
    Statistics,
    bm25,
    live_totals,
    statistics,
)
from indexer.manifest import Manifest, SegmentEntry
from indexer.ranking import SCORE_DIGITS, Scored
from indexer.recipe import VectorRecipe
from indexer.results import DocumentEntry, Hit, Source, StoredDocument
from indexer.segment import Segment

# a candidate sentence is addressed as part << ROW_BITS | row (part: the segment's position)
ROW_BITS = 40


@dataclass(frozen=True)
class Part:
    """A segment as one generation sees it."""

    segment: Segment
    entry: SegmentEntry
    deleted: np.ndarray  # per document row: deleted in this generation
    live: np.ndarray  # per sentence row: its document is live
    totals: tuple[int, int]  # live sentences and their BM25 length (lexical.live_totals)


@dataclass(frozen=True)
class SentenceRef:
    """Where a ranked sentence stands (for evaluation): its document, paragraph, sentence."""

    doc_id: str
    paragraph: int
    sentence: int


@dataclass(frozen=True)
class Located:
    """Where a live document is (its part, the position in the snapshot, and row there), and
    its content hash."""

    part: int
    row: int
    sha256: str


class SegmentCache:
    """Open segments by name, shared by the snapshots of one collection."""

    def __init__(self) -> None:
        self._open: dict[str, Segment] = {}
        self._lock = threading.Lock()

    def get(self, index_dir: Path, name: str) -> Segment:
        with self._lock:
            if name not in self._open:
                self._open[name] = Segment(index_dir / name)
            return self._open[name]

    def keep_only(self, names: set[str]) -> None:
        """Forget segments no generation in use needs (merged away). They are not closed
        here: a request that began on an older generation may still be reading them (closing
        its database under it failed such requests while commits came quickly); a segment is
        freed, its database closed with it, when the last snapshot holding it is gone."""
        with self._lock:
            for name in [n for n in self._open if n not in names]:
                del self._open[name]


class Snapshot:
    """Everything a search reads from one generation."""

    def __init__(self, manifest: Manifest, parts: list[Part]) -> None:
        self.manifest = manifest
        self.parts = parts

    @classmethod
    def open(
        cls,
        index_dir: Path,
        cache: SegmentCache,
        manifest: Manifest | None = None,
        previous: Snapshot | None = None,
    ) -> Snapshot:
        """Open the current generation (or ``manifest``'s), reusing open segments, and the
        parts of ``previous`` (an earlier generation of the collection) that did not change."""
        known = {p.entry.name: p for p in previous.parts} if previous else {}
        for _ in range(20):
            manifest = manifest or current_manifest(index_dir)
            try:
                parts = [
                    _part(index_dir, cache, entry, known.get(entry.name))
                    for entry in manifest.segments
                ]
            except FileNotFoundError:
                # pruned after we read CURRENT: two commits happened meanwhile; read it again
                manifest = None
                continue
            return cls(manifest, parts)
        raise IndexCorruptError(f"{index_dir}/ keeps changing; could not open it", "try again")

    @property
    def generation(self) -> str:
        return self.manifest.generation

    @property
    def recipe(self) -> VectorRecipe:
        """What the stored vectors are; an index keeps the recipe it was built with."""
        return self.manifest.recipe

    @cached_property
    def _id_layout(self) -> list[tuple[int, int]]:
        """Per part, (stride, offset): its stored sentence id ``i`` is public as ``i * stride +
        offset`` (see :func:`public_sentence_id`)."""
        shards = [s.name for s in self.manifest.shards]
        return [
            (len(shards), shards.index(p.entry.name.partition("/")[0])) if shards else (1, 0)
            for p in self.parts
        ]

    @property
    def segment_names(self) -> set[str]:
        """The segments' names as the collection (and its SegmentCache) knows them; in a
        sharded collection with the shard's folder (``shard-01/seg-00000004``)."""
        return {p.entry.name for p in self.parts}

    # -- the legs of a search ------------------------------------------------------------------

    def dense(
        self, query: np.ndarray, depth: int, allowed: Sequence[np.ndarray] | None
    ) -> np.ndarray:
        """Addresses of the ``depth`` sentences nearest to ``query`` among live (and allowed)
        ones, best first."""
        return self.dense_scored(query, depth, allowed)[0]

    def dense_scored(
        self, query: np.ndarray, depth: int, allowed: Sequence[np.ndarray] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`dense` with the scores the vector stores gave (a shard's, to be merged)."""
        addresses, scores = [], []
        for i, part in enumerate(self.parts):
            mask: np.ndarray | None = part.live if allowed is None else allowed[i]
            if part.entry.deleted is None and allowed is None:
                mask = None  # nothing to skip: the store searches everything
            hits = part.segment.store.search(query, depth, mask)
            addresses.append((i << ROW_BITS) | hits.rows)
            scores.append(hits.scores)
        return best_scored(addresses, scores, depth)

    def lexical(self, terms: Sequence[str], collection: Statistics | None = None) -> LexicalScores:
        """BM25 of the analysed query terms over every live sentence (see lexical.bm25), with
        this snapshot's statistics or, in a shard, with the whole ``collection``'s."""
        return bm25(self._postings(), terms, collection, self._totals)

    def statistics(self, terms: Sequence[str]) -> Statistics:
        """The BM25 statistics of the live sentences for the analysed query terms."""
        return statistics(self._postings(), terms, self._totals)

    @cached_property
    def _totals(self) -> tuple[int, int]:
        return sum(p.totals[0] for p in self.parts), sum(p.totals[1] for p in self.parts)

    def _postings(self) -> list[tuple[Postings, np.ndarray | None]]:
        # a segment with nothing deleted needs no mask: its terms' rows are all live
        return [
            (p.segment.postings, None if p.entry.deleted is None else p.live) for p in self.parts
        ]

    def lexical_top(
        self, scored: LexicalScores, depth: int, allowed: Sequence[np.ndarray] | None
    ) -> np.ndarray:
        """Addresses of the ``depth`` best lexical scores (above 0), best first."""
        return _best(*lexical_matches(scored.matches(depth, allowed)), depth)

    def vectors(self, addresses: np.ndarray) -> np.ndarray:
        """The stored vectors of sentence addresses, in order."""
        parts, rows = split_addresses(addresses)
        out = np.empty((len(addresses), self.manifest.dimension), dtype=np.float32)
        for i in np.unique(parts):
            here = parts == i
            out[here] = self.parts[int(i)].segment.store.vectors(rows[here])
        return out

    def gather(self, scored: LexicalScores, addresses: np.ndarray) -> np.ndarray:
        """The BM25 scores of sentence addresses, in order (0 where no query term matches)."""
        parts, rows = split_addresses(addresses)
        out = np.empty(len(addresses), dtype=np.float32)
        for i in np.unique(parts):
            here = parts == i
            out[here] = scored.at(int(i), rows[here])
        return out

    def languages(self, addresses: np.ndarray) -> list[str]:
        parts, rows = split_addresses(addresses)
        out = np.empty(len(addresses), dtype=object)
        codes = self._column("language", parts, rows)
        for i in np.unique(parts):
            here = parts == i
            out[here] = np.asarray(self.parts[int(i)].segment.info.languages, dtype=object)[
                codes[here]
            ]
        return out.tolist()

    def keys(self, addresses: np.ndarray) -> np.ndarray:
        """Document row and paragraph of each address, shape (n, 2) (see paragraph_key)."""
        parts, rows = split_addresses(addresses)
        return np.stack(
            [self._column("doc", parts, rows), self._column("paragraph", parts, rows)], axis=1
        ).reshape(-1, 2)

    def paragraph_key(self, address: int) -> tuple[int, int, int]:
        """(part, document row, paragraph): one per paragraph of a live document."""
        part, row = address >> ROW_BITS, address & ((1 << ROW_BITS) - 1)
        sentence = self.parts[part].segment.sentences[row]
        return part, int(sentence["doc"]), int(sentence["paragraph"])

    def document_key(self, address: int) -> tuple[int, int]:
        """(part, document row): one per live document."""
        part, row = address >> ROW_BITS, address & ((1 << ROW_BITS) - 1)
        return part, int(self.parts[part].segment.sentences[row]["doc"])

    def _column(self, name: str, parts: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows), dtype=np.int64)
        for i in np.unique(parts):
            here = parts == i
            out[here] = self.parts[int(i)].segment.sentences[name][rows[here]]
        return out

    # -- filters -------------------------------------------------------------------------------

    def allowed(self, filters: Mapping[str, Any]) -> list[np.ndarray]:
        """Per part, the live sentences that pass the filter (see filters.py)."""
        where = parse_filter(filters)
        if where is None:
            return [part.live for part in self.parts]
        return [part.live & segment_filter(part.segment, where) for part in self.parts]

    # -- documents -----------------------------------------------------------------------------

    def locate(self, ids: Sequence[str]) -> dict[str, Located]:
        """Where each live document among ``ids`` is (ids not in the collection are absent)."""
        found: dict[str, Located] = {}
        for i, part in enumerate(self.parts):
            for doc_id, row, sha256 in part.segment.find_documents(ids):
                if not part.deleted[row]:
                    found[doc_id] = Located(i, row, sha256)
        return found

    def documents(self) -> Iterator[Source]:
        """Every live document, segment by segment."""
        for part in self.parts:
            for row, doc_id, path, sha256, language, count in part.segment.catalogue():
                if not part.deleted[row]:
                    yield Source(public_id(doc_id, path), path, language, count, sha256, doc_id)

    def document(self, doc_id: str) -> StoredDocument | None:
        """A live document with its text and all that is known about it, or None."""
        located = self.locate([doc_id]).get(doc_id)
        if located is None:
            return None
        segment = self.parts[located.part].segment
        document = segment.document(located.row)
        _, sentences = segment.sentence_range(located.row)
        return StoredDocument(
            id=public_id(document.id, document.path),
            source=document.path,
            title=document.title,
            modified=document.modified,
            language=document.language,
            metadata=document.metadata,
            sentences=sentences,
            pages=list(document.pages),
            text=document.text,
        )

    def document_rows(self, doc_id: str) -> tuple[int, np.ndarray] | None:
        """The part holding a live document and its sentence rows there, or None."""
        located = self.locate([doc_id]).get(doc_id)
        if located is None:
            return None
        first, count = self.parts[located.part].segment.sentence_range(located.row)
        return located.part, np.arange(first, first + count)

    def like(
        self, document_id: str | None, sentence_id: int | None
    ) -> tuple[np.ndarray, str] | None:
        """What "more like this" starts from, given a live document's id or a live sentence's
        public id: the unit-length vector (a document's: the mean of its sentences' vectors)
        and the id of the document to leave out; None if there is no such one."""
        if document_id is not None:
            located = self.locate([document_id]).get(document_id)
            if located is None:
                return None
            part, row = located.part, located.row
            first, count = self.parts[part].segment.sentence_range(row)
            vector = self.parts[part].segment.store.vectors(np.arange(first, first + count))
            vector = vector.mean(axis=0)
        else:
            assert sentence_id is not None
            address = self.find_sentence(sentence_id)
            if address is None:
                return None
            part, row = self.document_key(address)
            vector = self.vectors(np.array([address]))[0]
        norm = float(np.linalg.norm(vector))
        # unit length, as a question's vector is: scores then mean what a dense search's mean
        unit = (vector / norm if norm else vector).astype(np.float32)
        return unit, self.parts[part].segment.document_ids([row])[row]

    def without(self, doc_id: str, allowed: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """``allowed`` (per part; by default the live sentences) without document ``doc_id``'s
        sentences."""
        kept = [p.live for p in self.parts] if allowed is None else list(allowed)
        found = self.document_rows(doc_id)
        if found is not None:
            part, rows = found
            kept[part] = kept[part].copy()
            kept[part][rows] = False
        return kept

    def find_sentence(self, sentence_id: int) -> int | None:
        """The address of the live sentence with this (public) id, or None."""
        for i, part in enumerate(self.parts):
            stride, offset = self._id_layout[i]
            if sentence_id % stride != offset:
                continue  # another shard's
            rows = np.flatnonzero(part.segment.ids == sentence_id // stride)
            if len(rows) and part.live[rows[0]]:
                return (i << ROW_BITS) | int(rows[0])
        return None

    def listing(self, offset: int, limit: int) -> list[DocumentEntry]:
        """``limit`` live documents from the ``offset``-th on, segment by segment (whole
        segments are skipped by their counts; only the listed documents are read)."""
        found: list[DocumentEntry] = []
        for part in self.parts:
            live = np.flatnonzero(~part.deleted)
            if offset >= len(live):
                offset -= len(live)
                continue
            rows = live[offset : offset + limit - len(found)].tolist()
            offset = 0
            found += [
                DocumentEntry(public_id(i, path), title, path)
                for i, path, title in part.segment.titles(rows)
            ]
            if len(found) == limit:
                break
        return found

    def hit(self, address: int, rank: int, scored: Scored) -> Hit:
        """A result as people and programs see it: the sentence, the text around it, where
        it stands, and its scores (text is read now, for this hit only)."""
        return scored_hit(self.passage(address), rank, scored)

    def passage(self, address: int) -> Hit:
        """:meth:`hit` without its rank and scores (0 and None; see :func:`scored_hit`)."""
        part, row = int(address >> ROW_BITS), int(address & ((1 << ROW_BITS) - 1))
        segment = self.parts[part].segment
        sentences = segment.sentences
        s = sentences[row]
        start, end = int(s["start"]), int(s["end"])
        snippet_start, snippet_end = int(s["paragraph_start"]), int(s["paragraph_end"])
        if snippet_end - snippet_start > SNIPPET_MAX_CHARS:
            # a long paragraph: a window of sentences; a document's sentences are adjacent rows
            first, last = row, row
            while row - first < SNIPPET_WINDOW and _same_paragraph(sentences, first - 1, row):
                first -= 1
            while last - row < SNIPPET_WINDOW and _same_paragraph(sentences, last + 1, row):
                last += 1
            snippet_start, snippet_end = int(sentences[first]["start"]), int(sentences[last]["end"])
        excerpt = segment.excerpt(int(s["doc"]), snippet_start, snippet_end)
        context = excerpt.text
        return Hit(
            rank=0,
            score=0.0,
            text=context[start - snippet_start : end - snippet_start],
            context=context,
            context_start=start - snippet_start,
            context_end=end - snippet_start,
            source=excerpt.path,
            document_id=public_id(excerpt.id, excerpt.path),
            title=excerpt.title,
            modified=excerpt.modified,
            metadata=excerpt.metadata,
            paragraph=int(s["paragraph"]),
            sentence=int(s["sentence"]),
            sentence_id=public_sentence_id(int(segment.ids[row]), *self._id_layout[part]),
            start=start,
            end=end,
            page=page_of(excerpt.pages, start),
            language=segment.info.languages[int(s["language"])],
            dense_score=None,
            lexical_score=None,
        )

    def sentence_refs(self, addresses: np.ndarray) -> list[SentenceRef]:
        """Document id, paragraph and sentence of each address (batched per segment)."""
        refs: list[SentenceRef | None] = [None] * len(addresses)
        parts, rows = split_addresses(addresses)
        for i in np.unique(parts):
            at = np.flatnonzero(parts == i)
            segment = self.parts[int(i)].segment
            sentences = segment.sentences[rows[at]]
            ids = segment.document_ids(sorted({int(d) for d in sentences["doc"]}))
            for j, s in zip(at, sentences, strict=True):
                refs[j] = SentenceRef(ids[int(s["doc"])], int(s["paragraph"]), int(s["sentence"]))
        return [r for r in refs if r is not None]


def public_sentence_id(stored: int, stride: int, offset: int) -> int:
    """The id a sentence is known by outside: in a sharded collection each shard numbers its
    sentences from 0, so the id of shard ``offset`` of ``stride`` shards' sentence ``stored``
    is ``stored * stride + offset`` (unique in the collection, stable, never reused); the
    stored id itself in an unsharded collection (stride 1, offset 0)."""
    return stored * stride + offset


def scored_hit(passage: Hit, rank: int, scored: Scored) -> Hit:
    """A passage (:meth:`Snapshot.passage`) as the hit of ``rank`` with ``scored``'s scores,
    rounded as shown."""
    return replace(
        passage,
        rank=rank,
        score=round(scored.score, SCORE_DIGITS),
        dense_score=None if scored.dense is None else round(scored.dense, SCORE_DIGITS),
        lexical_score=None if scored.lexical is None else round(scored.lexical, SCORE_DIGITS),
    )


def split_addresses(addresses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    addresses = np.asarray(addresses, dtype=np.int64)
    return addresses >> ROW_BITS, addresses & ((1 << ROW_BITS) - 1)


def _same_paragraph(sentences: np.ndarray, row: int, of: int) -> bool:
    if not 0 <= row < len(sentences):
        return False
    a, b = sentences[row], sentences[of]
    return bool(a["doc"] == b["doc"] and a["paragraph"] == b["paragraph"])


def lexical_matches(scores: Sequence[RowScores]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The addresses and scores of sentences scoring above 0, part by part."""
    addresses = [(i << ROW_BITS) | part.rows for i, part in enumerate(scores)]
    return addresses, [part.values for part in scores]


def _best(addresses: list[np.ndarray], scores: list[np.ndarray], depth: int) -> np.ndarray:
    return best_scored(addresses, scores, depth)[0]


def best_scored(
    addresses: Sequence[np.ndarray], scores: Sequence[np.ndarray], depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``depth`` best (address, score) pairs, best first; ties in address order, so that
    merging the best of each shard gives the best of all."""
    if not addresses:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    merged = np.concatenate(addresses).astype(np.int64)
    values = np.concatenate(scores)
    if 0 < depth < len(values):
        # sort only what can make the cut: every value at least the depth-th best, ties
        # included, so the result is that of sorting all (a common word matches many rows)
        kth = np.partition(values, len(values) - depth)[len(values) - depth]
        keep = values >= kth
        merged, values = merged[keep], values[keep]
    order = np.lexsort((merged, -values))[:depth]  # ties: address order, reproducibly
    return merged[order], values[order]


# above this many newly deleted documents in a segment, its live mask is computed afresh
PATCHED_DELETIONS = 1000


def _part(
    index_dir: Path, cache: SegmentCache, entry: SegmentEntry, previous: Part | None = None
) -> Part:
    """A segment as ``entry`` sees it; from ``previous`` (the segment in an earlier generation)
    when only some of its documents were deleted since: a one-document write at a million
    sentences then costs what it deleted, not a pass over every sentence of the segment."""
    if previous is not None and previous.entry.deleted == entry.deleted:
        return replace(previous, entry=entry)
    segment = cache.get(index_dir, entry.name)
    if previous is not None and entry.deleted:
        deleted = read_deleted(index_dir, entry)
        newly = np.flatnonzero(deleted & ~previous.deleted)
        if len(newly) <= PATCHED_DELETIONS and not (previous.deleted & ~deleted).any():
            live = previous.live.copy()
            rows, length = previous.totals
            for document in newly.tolist():
                first, count = segment.sentence_range(document)
                live[first : first + count] = False
                rows -= count
                length -= int(segment.postings.lengths[first : first + count].sum(dtype=np.int64))
            return Part(segment, entry, deleted, live, (rows, length))
    deleted, live = live_rows(index_dir, entry, segment.sentences)
    totals = live_totals([(segment.postings, live)])
    return Part(segment, entry, deleted, live, totals)


def live_rows(
    index_dir: Path, entry: SegmentEntry, sentences: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A segment's deleted documents in this generation (per document row) and its live
    sentences (per sentence row), from its deletion file and its sentences' document rows."""
    deleted = read_deleted(index_dir, entry)
    if not entry.deleted:
        return deleted, np.ones(entry.sentences, dtype=bool)
    return deleted, ~deleted[sentences["doc"]]


def read_deleted(index_dir: Path, entry: SegmentEntry) -> np.ndarray:
    """Per document row of the segment: deleted in the generation ``entry`` belongs to."""
    deleted = np.zeros(entry.documents, dtype=bool)
    if not entry.deleted:
        return deleted
    try:
        rows = np.load(index_dir / entry.deleted, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(
            f"cannot read {index_dir / entry.deleted} ({exc})", "run `findling verify`"
        ) from exc
    deleted[rows] = True
    return deleted
