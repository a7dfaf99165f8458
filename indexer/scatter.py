"""Searching a sharded collection whose shards are read by other processes, merged exactly.

One machine opens every shard into one snapshot (shards.sharded_view) and needs none of this.
Shards read apart (in Ray actors, see indexer.distributed) answer a search in one round,
as Elasticsearch's ``dfs_query_then_fetch`` does in three:

- statistics (Elasticsearch's "dfs"): the driver counts the collection's live sentences, their
  BM25 length and the query terms' document frequencies itself, from the shards' memory-mapped
  postings and deletion files on the filesystem the index lives on (CollectionStatistics):
  the same sums the shards would send, without a round trip;
- proposals ("query"): every shard proposes its best ``depth`` sentences of each leg (dense:
  the vector stores' scores; lexical: BM25 with the collection's statistics), and for each
  proposed sentence both legs' scores, its language and its paragraph; and with them the text
  of the passages the driver is likely to choose from it (those it would choose if the shard
  were the whole collection);
- hits ("fetch"): only when the driver chose a passage a shard did not send (rare: the
  collection's BM25 scale is larger than the shard's), the shards holding it read its text.

The driver embeds the question once. The best ``depth`` sentences of a leg in the collection
are among the shards' best ``depth`` (ties go in address order everywhere, and addresses are
those of the one-machine snapshot), so the driver picks each leg's best, scales BM25 by the
collection's scale, fuses and selects with ranking.py exactly as one machine does.

Documents by id and the documents listing are read by the shard holding them. "More like this"
(``similar``) of a stored document or sentence takes one round more before the search: the shard
holding it sends its vector and document id, and every shard leaves that document out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from indexer.defaults import DOCUMENTS_PAGE, Mode
from indexer.documents import detect_language, query_language
from indexer.errors import ShardUnavailableError
from indexer.filters import check_filters
from indexer.fsutil import mapped
from indexer.generations import current_manifest, current_name
from indexer.lexical import (
    LexicalScores,
    Postings,
    Segments,
    Statistics,
    analyze,
    lexical_scale,
    live_totals,
    scaled,
    statistics,
)
from indexer.manifest import Manifest, read_manifest
from indexer.model.embedder import Embedder
from indexer.options import SearchOptions
from indexer.ranking import Fusion, Scored, Selection, fuse
from indexer.results import (
    Answer,
    DocumentEntry,
    DocumentList,
    Hit,
    ShardCounts,
    StoredDocument,
)
from indexer.segment import SENTENCES
from indexer.service import (
    SIMILAR_TEXT_AS,
    SearchService,
    check_like,
    check_page,
    document_not_found,
    leg_depth,
    like_label,
    not_like,
)
from indexer.shards import shard_segments
from indexer.snapshot import (
    ROW_BITS,
    SegmentCache,
    Snapshot,
    best_scored,
    lexical_matches,
    live_rows,
    public_sentence_id,
    scored_hit,
    split_addresses,
)

# a shard also proposes sentences whose BM25 is this close below its last one: dividing by the
# collection's scale could make them equal to it, and equal scores go in address order
TIE_MARGIN = 1e-6
OPEN_GENERATIONS = 2  # a shard keeps the previous generation open while requests finish

T = TypeVar("T")


@dataclass(frozen=True)
class ShardQuery:
    """What every shard is asked: the question as vector and terms, the collection's BM25
    statistics, how deep each leg goes, the filters, and what to send the text of."""

    generation: str  # the shard's generation, as the collection's top manifest names it
    mode: Mode
    vector: np.ndarray | None  # the embedded question (dense and hybrid)
    terms: list[str]  # its analysed terms (bm25 and hybrid)
    collection: Statistics | None  # the collection's statistics (bm25 and hybrid)
    depth: int
    filters: dict[str, Any] | None
    language: str  # the question's
    fusion: Fusion
    prefetch: Selection  # the page from its first passage, no cut-off (see ShardReader.propose)
    exclude: str | None = None  # a document left out ("more like this" leaves out its own)


@dataclass(frozen=True)
class Proposal:
    """A shard's candidates for one query; addresses are the shard's own (part << ROW_BITS |
    row, parts in the order of the shard's manifest)."""

    dense_top: np.ndarray  # its best ``depth`` by the stores' scores, best first
    dense_scores: np.ndarray
    lexical_top: np.ndarray  # its best ``depth`` by BM25 (above 0), and near ties
    lexical_scores: np.ndarray
    best: float  # the highest BM25 of any of its live sentences
    full: float  # what an average sentence holding every term once scores (the same everywhere)
    addresses: np.ndarray  # both tops, ascending
    dense: np.ndarray | None  # per address: the question's inner product with its vector
    lexical: np.ndarray | None  # per address: its BM25
    languages: list[str]  # per address
    keys: np.ndarray  # per address: document row and paragraph, shape (n, 2)
    passages: dict[int, Hit]  # by address: the passages sent along (Snapshot.passage)


class ShardReader:
    """One shard of a sharded collection, answering the rounds of a search; lives in a Ray
    actor (or in process, in tests). Opens the generation each request names."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache = SegmentCache()
        self._open: dict[str, Snapshot] = {}
        self._lock = threading.Lock()

    def snapshot(self, generation: str) -> Snapshot:
        with self._lock:
            if generation not in self._open:
                manifest = read_manifest(self.folder / f"{generation}.json")
                # from the latest one open: a write's next generation costs what it changed
                latest = next(reversed(self._open.values()), None)
                self._open[generation] = Snapshot.open(
                    self.folder, self._cache, manifest, previous=latest
                )
                while len(self._open) > OPEN_GENERATIONS:
                    self._open.pop(next(iter(self._open)))
                self._cache.keep_only(set().union(*(s.segment_names for s in self._open.values())))
            return self._open[generation]

    def propose(self, query: ShardQuery) -> Proposal:
        """The shard's best sentences of each leg, their scores and keys, and the text of
        those the driver is likely to choose: the passages ``query.prefetch`` selects from the
        shard's candidates fused as one machine fuses them, with BM25 scaled by the shard's
        own best (the collection's best, which the driver scales by, is at least as high)."""
        snapshot = self.snapshot(query.generation)
        allowed = snapshot.allowed(query.filters) if query.filters else None
        if query.exclude is not None:
            allowed = snapshot.without(query.exclude, allowed)
        empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        dense_top, dense_scores = empty
        lexical_top, lexical_scores = empty
        best = full = 0.0
        scored: LexicalScores | None = None
        if query.vector is not None:
            dense_top, dense_scores = snapshot.dense_scored(query.vector, query.depth, allowed)
        if query.collection is not None:
            scored = snapshot.lexical(query.terms, query.collection)
            lexical_top, lexical_scores = _lexical_top(scored, query.depth, allowed)
            best, full = scored.best, scored.full
        addresses = np.unique(np.concatenate([dense_top, lexical_top]))
        keys = snapshot.keys(addresses)
        dense = None if query.vector is None else snapshot.vectors(addresses) @ query.vector
        lexical = None if scored is None else snapshot.gather(scored, addresses)
        languages = snapshot.languages(addresses)
        share = None if lexical is None else scaled(lexical, lexical_scale(full, best))
        same = np.array([language == query.language for language in languages], dtype=bool)
        ranked = fuse(query.mode, addresses, dense, share, same, query.fusion)
        # (part, document, paragraph) of each candidate, as snapshot.paragraph_key gives it
        key_of = dict(
            zip(
                addresses.tolist(),
                zip((addresses >> ROW_BITS).tolist(), *keys.T.tolist(), strict=True),
                strict=True,
            )
        )
        likely = query.prefetch.select(ranked, key_of.__getitem__, lambda a: key_of[a][:2])
        return Proposal(
            dense_top=dense_top,
            dense_scores=dense_scores,
            lexical_top=lexical_top,
            lexical_scores=lexical_scores,
            best=best,
            full=full,
            addresses=addresses,
            dense=dense,
            lexical=lexical,
            languages=languages,
            keys=keys,
            passages={s.address: snapshot.passage(s.address) for _, s in likely},
        )

    def like(
        self, generation: str, document_id: str | None, sentence_id: int | None
    ) -> tuple[np.ndarray, str] | None:
        """What "more like this" starts from (Snapshot.like), if the shard holds the document
        or the sentence (by the shard's own sentence id)."""
        return self.snapshot(generation).like(document_id, sentence_id)

    def hits(self, generation: str, wanted: list[tuple[int, int, Scored]]) -> list[Hit]:
        """The hits at (address, rank, scores) of the shard, with their text (the passages
        the driver chose that the shard did not send with its proposal)."""
        snapshot = self.snapshot(generation)
        return [snapshot.hit(address, rank, scored) for address, rank, scored in wanted]

    def document(self, generation: str, doc_id: str) -> StoredDocument | None:
        """The live document with this id if the shard holds it."""
        return self.snapshot(generation).document(doc_id)

    def listing(self, generation: str, offset: int, limit: int) -> list[DocumentEntry]:
        """``limit`` of the shard's live documents from its ``offset``-th on."""
        return self.snapshot(generation).listing(offset, limit)


def _lexical_top(
    scored: LexicalScores, depth: int, allowed: Sequence[np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``depth`` BM25 scores above 0 (as Snapshot.lexical_top picks them), and the
    scores just below the last one (see TIE_MARGIN)."""
    addresses, values = lexical_matches(scored.matches(depth, allowed, TIE_MARGIN))
    top, top_scores = best_scored(addresses, values, depth)
    if len(top) < depth:
        return top, top_scores
    floor = float(top_scores[-1]) * (1 - TIE_MARGIN)
    merged, merged_values = np.concatenate(addresses), np.concatenate(values)
    near = (merged_values >= floor) & ~np.isin(merged, top)
    return np.concatenate([top, merged[near]]), np.concatenate([top_scores, merged_values[near]])


class Shards(Protocol):
    """A collection's shards as the driver reaches them. Each round asks the shards named in
    ``requests`` and returns the answers of those that answered, and the names of those that
    did not (no live replica)."""

    def start(self, shards: Sequence[str]) -> None:
        """Have the readers of ``shards`` ready (a server does this before it says it is)."""

    def propose(
        self, requests: Mapping[str, ShardQuery]
    ) -> tuple[dict[str, Proposal], list[str]]: ...

    def hits(
        self, requests: Mapping[str, tuple[str, list[tuple[int, int, Scored]]]]
    ) -> tuple[dict[str, list[Hit]], list[str]]: ...

    def like(
        self, requests: Mapping[str, tuple[str, str | None, int | None]]
    ) -> tuple[dict[str, tuple[np.ndarray, str] | None], list[str]]: ...

    def document(
        self, requests: Mapping[str, tuple[str, str]]
    ) -> tuple[dict[str, StoredDocument | None], list[str]]: ...

    def listing(
        self, requests: Mapping[str, tuple[str, int, int]]
    ) -> tuple[dict[str, list[DocumentEntry]], list[str]]: ...


class LocalShards:
    """Every shard read in this process (tests, and the reference for the distributed path)."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._readers: dict[str, ShardReader] = {}

    def start(self, shards: Sequence[str]) -> None:
        for shard in shards:
            self.reader(shard)

    def reader(self, shard: str) -> ShardReader:
        if shard not in self._readers:
            self._readers[shard] = ShardReader(self.index_dir / shard)
        return self._readers[shard]

    def propose(self, requests: Mapping[str, ShardQuery]) -> tuple[dict[str, Proposal], list[str]]:
        return {s: self.reader(s).propose(q) for s, q in requests.items()}, []

    def hits(
        self, requests: Mapping[str, tuple[str, list[tuple[int, int, Scored]]]]
    ) -> tuple[dict[str, list[Hit]], list[str]]:
        return {s: self.reader(s).hits(g, w) for s, (g, w) in requests.items()}, []

    def like(
        self, requests: Mapping[str, tuple[str, str | None, int | None]]
    ) -> tuple[dict[str, tuple[np.ndarray, str] | None], list[str]]:
        return {s: self.reader(s).like(*r) for s, r in requests.items()}, []

    def document(
        self, requests: Mapping[str, tuple[str, str]]
    ) -> tuple[dict[str, StoredDocument | None], list[str]]:
        return {s: self.reader(s).document(g, i) for s, (g, i) in requests.items()}, []

    def listing(
        self, requests: Mapping[str, tuple[str, int, int]]
    ) -> tuple[dict[str, list[DocumentEntry]], list[str]]:
        return {s: self.reader(s).listing(*r) for s, r in requests.items()}, []


@dataclass(frozen=True)
class Request:
    """One search as the driver runs it."""

    vector: np.ndarray | None
    terms: list[str]
    language: str
    mode: Mode
    depth: int
    selection: Selection
    filters: dict[str, Any] | None
    allow_partial: bool
    exclude: str | None = None  # see ShardQuery


class CollectionStatistics:
    """BM25's statistics of a sharded collection, counted by the driver from the shards' files
    (memory-mapped postings and deletion files; lexical.statistics): the sums the shards'
    own counts give, with no round trip. A shard's latest generation stays open."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._open: dict[str, tuple[str, Segments, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def count(self, view: Manifest, terms: Sequence[str]) -> Statistics:
        """The collection's statistics for the analysed query ``terms``."""
        total = Statistics(0, 0, {})
        for shard in view.shards:
            segments, totals = self._segments(shard.name, shard.generation)
            total = total + statistics(segments, terms, totals)
        return total

    def _segments(self, shard: str, generation: str) -> tuple[Segments, tuple[int, int]]:
        with self._lock:
            known = self._open.get(shard)
            if known is None or known[0] != generation:
                folder = self.index_dir / shard
                manifest = read_manifest(folder / f"{generation}.json")
                segments: list[tuple[Postings, np.ndarray | None]] = []
                for entry in manifest.segments:
                    live = None  # nothing deleted: every row of a term is counted
                    if entry.deleted is not None:
                        sentences = mapped(folder / entry.name / SENTENCES)
                        live = live_rows(folder, entry, sentences)[1]
                    segments.append((Postings.load(folder / entry.name), live))
                known = (generation, segments, live_totals(segments))
                self._open[shard] = known
            return known[1], known[2]


class ShardedSearch:
    """The driver's side of one search over ``shards`` of the collection ``view`` (the top
    manifest read as one, see shards.sharded_view)."""

    def __init__(
        self, shards: Shards, view: Manifest, fusion: Fusion, counts: CollectionStatistics
    ) -> None:
        self.shards = shards
        self.view = view
        self.fusion = fusion
        self.counts = counts
        self.generations = {s.name: s.generation for s in view.shards}
        # a shard's part i is the collection's part offsets[shard] + i
        self.offsets = {s.name: (shard_segments(view, s.name) or [0])[0] for s in view.shards}
        # a shard's sentence ids are its own: public ones say which shard (public_sentence_id)
        self.ids = {s.name: (len(view.shards), i) for i, s in enumerate(view.shards)}
        self.failed: list[str] = []

    def run(self, request: Request) -> tuple[list[Hit], ShardCounts, float | None]:
        """The hits, how the shards answered, and the best score of all (before the
        selection: what calibrated probabilities are relative to)."""
        collection = None
        if request.mode in ("bm25", "hybrid"):
            collection = self.counts.count(self.view, request.terms)
        selection = request.selection
        prefetch = Selection(selection.offset + selection.k, group=selection.group)
        queries = {
            s: ShardQuery(
                generation,
                request.mode,
                request.vector if request.mode != "bm25" else None,
                request.terms,
                collection,
                request.depth,
                request.filters,
                request.language,
                self.fusion,
                prefetch,
                request.exclude,
            )
            for s, generation in self.generations.items()
        }
        proposals = self._answers(self.shards.propose(queries), request)
        chosen, at, top = self._rank(proposals, request)
        hits = self._hits(chosen, at, proposals, request)
        total = len(self.generations)
        failed = sorted(set(self.failed))
        return hits, ShardCounts(total, total - len(failed), len(failed), failed), top

    def _answers(self, answered: tuple[dict[str, T], list[str]], request: Request) -> dict[str, T]:
        answers, failed = answered
        if failed and not request.allow_partial:
            raise ShardUnavailableError.naming(failed)
        self.failed += failed
        return answers

    def _global(self, shard: str, addresses: np.ndarray) -> np.ndarray:
        parts, rows = split_addresses(addresses)
        return ((parts + self.offsets[shard]) << ROW_BITS) | rows

    def _rank(
        self, proposals: Mapping[str, Proposal], request: Request
    ) -> tuple[list[tuple[int, Scored]], dict[int, tuple[str, int]], float | None]:
        """The selected passages with their ranks (global addresses), where each candidate
        came from, and the best score of all."""
        shards = list(proposals)
        found = [np.zeros(0, dtype=np.int64)]
        if request.mode in ("dense", "hybrid"):
            tops = [self._global(s, proposals[s].dense_top) for s in shards]
            found.append(
                best_scored(tops, [proposals[s].dense_scores for s in shards], request.depth)[0]
            )
        scale = lexical_scale(
            max((p.full for p in proposals.values()), default=0.0),
            max((p.best for p in proposals.values()), default=0.0),
        )
        if request.mode in ("bm25", "hybrid"):
            tops = [self._global(s, proposals[s].lexical_top) for s in shards]
            values = [scaled(proposals[s].lexical_scores, scale) for s in shards]
            found.append(best_scored(tops, values, request.depth)[0])
        candidates = np.unique(np.concatenate(found))
        # every candidate was proposed by one shard: look its values up there
        proposed = np.concatenate([self._global(s, proposals[s].addresses) for s in shards])
        owner = np.concatenate(
            [np.full(len(proposals[s].addresses), i) for i, s in enumerate(shards)]
        ).astype(np.int64)
        index = np.concatenate([np.arange(len(proposals[s].addresses)) for s in shards])
        order = np.argsort(proposed)
        at = order[np.searchsorted(proposed[order], candidates)]

        def column(values: Callable[[Proposal], np.ndarray | None]) -> np.ndarray:
            every = [values(proposals[s]) for s in shards]
            assert all(v is not None for v in every)
            return np.concatenate(every).astype(np.float32)[at]  # type: ignore[arg-type]

        dense = lexical = None
        if request.mode in ("dense", "hybrid"):
            dense = column(lambda p: p.dense)
        if request.mode in ("bm25", "hybrid"):
            lexical = scaled(column(lambda p: p.lexical), scale)
        languages = [proposals[shards[owner[p]]].languages[index[p]] for p in at]
        same = np.array([lang == request.language for lang in languages], dtype=bool)
        ranked = fuse(request.mode, candidates, dense, lexical, same, self.fusion)
        source = {
            int(a): (shards[owner[p]], int(index[p])) for a, p in zip(candidates, at, strict=True)
        }

        def paragraph(address: int) -> tuple[int, int, int]:
            shard, i = source[address]
            doc, number = proposals[shard].keys[i]
            return address >> ROW_BITS, int(doc), int(number)

        def document(address: int) -> tuple[int, int]:
            shard, i = source[address]
            return address >> ROW_BITS, int(proposals[shard].keys[i][0])

        chosen = request.selection.select(ranked, paragraph, document)
        return chosen, source, (ranked[0].score if ranked else None)

    def _hits(
        self,
        chosen: list[tuple[int, Scored]],
        at: Mapping[int, tuple[str, int]],
        proposals: Mapping[str, Proposal],
        request: Request,
    ) -> list[Hit]:
        """The chosen passages' hits: those the shards sent with their proposals, and the
        others read by the shards holding them."""
        found: list[Hit] = []
        wanted: dict[str, list[tuple[int, int, Scored]]] = {}
        for rank, scored in chosen:
            shard = at[scored.address][0]
            local = int(proposals[shard].addresses[at[scored.address][1]])
            passage = proposals[shard].passages.get(local)
            if passage is not None:
                found.append(self._public(shard, scored_hit(passage, rank, scored)))
            else:
                wanted.setdefault(shard, []).append((local, rank, scored))
        if wanted:
            asked = {s: (self.generations[s], w) for s, w in wanted.items()}
            answers = self._answers(self.shards.hits(asked), request)
            found += [self._public(s, h) for s, read in answers.items() for h in read]
        hits = sorted(found, key=lambda h: h.rank)
        # partial: ranks stay consecutive (from the page's first) over the hits that could be
        # read; a document's passages keep sharing their document's rank
        first = request.selection.offset + 1
        ranks = {r: first + i for i, r in enumerate(sorted({h.rank for h in hits}))}
        return [_renumbered(hit, ranks[hit.rank]) for hit in hits]

    def _public(self, shard: str, hit: Hit) -> Hit:
        """The hit as the collection names it (its sentence id unique over all shards)."""
        return replace(hit, sentence_id=public_sentence_id(hit.sentence_id, *self.ids[shard]))


def _renumbered(hit: Hit, rank: int) -> Hit:
    return hit if hit.rank == rank else replace(hit, rank=rank)


class ShardedService(SearchService):
    """A SearchService that searches a sharded collection through ``shards`` (shard readers in
    other processes; in this one in tests). The driver reads only manifests: no segment is
    opened here for searching. Writes and everything else are SearchService's own."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder,
        options: SearchOptions | None,
        shards: Shards,
    ) -> None:
        super().__init__(index_dir, embedder, options)
        self.shards = shards
        self.counts = CollectionStatistics(index_dir)
        self._view: Manifest | None = None
        self._view_lock = threading.Lock()

    def view(self) -> Manifest:
        """The live top manifest, read as one (re-read when CURRENT changes)."""
        name = current_name(self.index_dir)
        with self._view_lock:
            if self._view is None or self._view.generation != name:
                self._view = current_manifest(self.index_dir)
            return self._view

    def info(self) -> Manifest:
        return self.view()

    def load(self) -> None:
        view = self.view()
        self.shards.start([s.name for s in view.shards])
        self.embedder.load()

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str | None = None,
        filters: Mapping[str, Any] | None = None,
        *,
        offset: int = 0,
        min_score: float | None = None,
        group: str = "paragraph",
        allow_partial: bool = False,
    ) -> Answer:
        """As SearchService.search; with ``allow_partial`` shards that cannot answer are left
        out (the answer's ``shards`` counts them) instead of failing the search."""
        query = self._check_query(query)
        selection = self._check_selection(k, offset, min_score, group)
        chosen = self._check_mode(mode)
        view = self.view()
        if not view.shards:
            return super().search(
                query, k, chosen, filters, offset=offset, min_score=min_score, group=group
            )
        self._load_for(view)
        if filters:
            check_filters(filters)
        started = time.perf_counter()
        language = query_language(query)
        request = Request(
            vector=(
                view.recipe.query_vector(self.embedder, query, language)
                if chosen != "bm25"
                else None
            ),
            terms=analyze(query, language) if chosen != "dense" else [],
            language=language,
            mode=chosen,
            depth=leg_depth(selection),
            selection=selection,
            filters=dict(filters) if filters else None,
            allow_partial=allow_partial,
        )
        search = ShardedSearch(self.shards, view, self.options.fusion, self.counts)
        hits, counts, top = search.run(request)
        if top is not None:  # relative to the best score overall, as on one machine
            hits = self._calibrated(hits, chosen, query, top, view.recipe.centring)
        elapsed = (time.perf_counter() - started) * 1000
        return Answer(query, chosen, hits, elapsed, shards=counts)

    def similar(
        self,
        *,
        document_id: str | None = None,
        text: str | None = None,
        sentence_id: int | None = None,
        k: int | None = None,
        filters: Mapping[str, Any] | None = None,
        offset: int = 0,
        min_score: float | None = None,
        group: str = "paragraph",
    ) -> Answer:
        """As SearchService.similar: a text is embedded here, a stored document or sentence
        gives its vector from the shard holding it; then a dense search over every shard that
        leaves that document out, merged as one machine ranks it."""
        view = self.view()
        if not view.shards:
            return super().similar(
                document_id=document_id,
                text=text,
                sentence_id=sentence_id,
                k=k,
                filters=filters,
                offset=offset,
                min_score=min_score,
                group=group,
            )
        check_like(document_id, text, sentence_id)
        selection = self._check_selection(k, offset, min_score, group)
        if filters:
            check_filters(filters)
        started = time.perf_counter()
        exclude = None
        if text is not None:
            text = self._check_query(text)
            self._load_for(view)
            language = detect_language(text)
            vector = view.recipe.text_vector(self.embedder, text, language, SIMILAR_TEXT_AS)
        else:
            vector, exclude = self._like(view, document_id, sentence_id)
        request = Request(
            vector=vector,
            terms=[],
            language="",  # the dense leg alone: languages do not weigh
            mode="dense",
            depth=leg_depth(selection),
            selection=selection,
            filters=dict(filters) if filters else None,
            allow_partial=False,
            exclude=exclude,
        )
        search = ShardedSearch(self.shards, view, self.options.fusion, self.counts)
        hits, counts, _ = search.run(request)
        elapsed = (time.perf_counter() - started) * 1000
        label = like_label(document_id, text, sentence_id)
        return Answer(label, "dense", hits, elapsed, shards=counts)

    def _load_for(self, view: Manifest) -> None:
        """The model, loaded, if it is the one the collection ``view`` was embedded with."""
        self._check_model(view.model)
        self.embedder.load()

    def _like(
        self, view: Manifest, document_id: str | None, sentence_id: int | None
    ) -> tuple[np.ndarray, str]:
        """The vector and document of a stored document (asked of every shard: a file's public
        id is not what documents are routed by) or sentence (of the shard its id names)."""
        asked: dict[str, tuple[str, str | None, int | None]]
        if sentence_id is not None:
            stride = len(view.shards)
            shard = view.shards[sentence_id % stride]
            asked = {shard.name: (shard.generation, None, sentence_id // stride)}
        else:
            asked = {s.name: (s.generation, document_id, None) for s in view.shards}
        answers, failed = self.shards.like(asked)
        found = next((a for a in answers.values() if a is not None), None)
        if found is None and failed:
            raise ShardUnavailableError.naming(failed)
        if found is None:
            raise not_like(document_id, sentence_id)
        return found

    def document(self, doc_id: str) -> StoredDocument:
        """As SearchService.document; every shard is asked (a file's public id is its path as
        given, not the id documents are routed to shards by)."""
        view = self.view()
        if not view.shards:
            return super().document(doc_id)
        asked = {s.name: (s.generation, doc_id) for s in view.shards}
        answers, failed = self.shards.document(asked)
        found = next((d for d in answers.values() if d is not None), None)
        if found is None and failed:
            raise ShardUnavailableError.naming(failed)
        if found is None:
            raise document_not_found(doc_id)
        return found

    def documents(self, offset: int = 0, limit: int = DOCUMENTS_PAGE) -> DocumentList:
        """As SearchService.documents, in the same order (shard by shard): whole shards are
        skipped by their counts in the top manifest; only the shards listed from are asked."""
        view = self.view()
        if not view.shards:
            return super().documents(offset, limit)
        check_page(offset, limit)
        found: list[DocumentEntry] = []
        skip = offset
        for shard in view.shards:
            if skip >= shard.documents:
                skip -= shard.documents
                continue
            answers, failed = self.shards.listing(
                {shard.name: (shard.generation, skip, limit - len(found))}
            )
            if failed:
                raise ShardUnavailableError.naming(failed)
            found += answers[shard.name]
            skip = 0
            if len(found) >= limit:
                break
        return DocumentList(view.documents, offset, found)
