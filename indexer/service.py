"""SearchService: the one module that knows both the embedder and the store.

The CLI, the HTTP API and programs all call this; they only parse input and render output.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer.defaults import DOCUMENTS_PAGE, MAX_DOCUMENTS_PAGE, MAX_OFFSET, Mode
from indexer.documents import (
    Document,
    Skipped,
    detect_language,
    load_language_identifier,
    query_language,
    read_documents,
)
from indexer.errors import (
    DocumentNotFoundError,
    FindlingError,
    InvalidRequestError,
    ModelMismatchError,
    SourceNotFoundError,
)
from indexer.formats import SUFFIXES
from indexer.generations import (
    CURRENT,
    current_manifest,
    current_name,
    prune,
    writer_lock,
)
from indexer.lexical import Postings, analyze, scaled
from indexer.manifest import Manifest
from indexer.merging import OPTIMIZE, MergePolicy
from indexer.model.embedder import Embedder
from indexer.options import SearchOptions
from indexer.pipeline import Prepared, prepared
from indexer.ranking import GROUPS, MODES, Scored, Selection, calibration, fuse
from indexer.recipe import VectorRecipe
from indexer.results import Answer, BuildSummary, DocumentList, Hit, Source, StoredDocument
from indexer.shards import shard_count
from indexer.snapshot import SegmentCache, SentenceRef, Snapshot
from indexer.updates import Plan, matches_source, plan_removal, plan_update
from indexer.writer import GenerationWriter, Layout, ShardedWriter, Writer, write_and_commit

MIN_CANDIDATES = 100  # sentences each leg proposes before fusion and collapsing
MAX_CANDIDATES = 20_000  # and at most, however deep a page or large a group
# similar(text=...): the e5 prompt a text is embedded with, measured (python -m bench.similar)
SIMILAR_TEXT_AS = "query"
EMBED_CHUNK_SENTENCES = 2048  # sentences embedded at a time while the next are prepared

__all__ = ["Answer", "BuildSummary", "Hit", "SearchService"]

Progress = Callable[[int, int], None]  # (documents done, documents in all)


@dataclass
class _Write:
    """One queued upsert or delete, and what became of it."""

    upsert: list[Document] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    plan: Plan | None = None
    summary: BuildSummary | None = None
    error: FindlingError | None = None
    done: bool = False


class SearchService:
    """Builds and searches the collection in ``index_dir`` with one embedder."""

    def __init__(
        self, index_dir: Path, embedder: Embedder, options: SearchOptions | None = None
    ) -> None:
        self.index_dir = index_dir
        self.embedder = embedder
        self.options = options or SearchOptions()
        self._snapshot: Snapshot | None = None
        self._segments = SegmentCache()
        self._read_lock = threading.Lock()
        # writes of this process queue here; one committer at a time takes all that wait
        self._queue: list[_Write] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    # -- writing ------------------------------------------------------------------------------

    def build(
        self,
        paths: Sequence[Path],
        progress: Progress | None = None,
        *,
        prune: bool = True,
        rebuild: bool = False,
        shards: int | None = None,
    ) -> BuildSummary:
        """Bring the collection up to date with the documents below ``paths``.

        New files are added, changed files re-embedded, unchanged files cost nothing; with
        ``prune``, documents of files under ``paths`` that are gone are removed. ``rebuild``
        starts from nothing. ``shards``: split a new (or rebuilt) collection into that many
        shards (see shards.py); an existing one keeps its own.
        """
        read = read_documents(paths, self.options.max_file_bytes)
        if not read.documents and (rebuild or not self._has_index()):
            names = ", ".join(str(p) for p in paths)
            raise SourceNotFoundError(
                f"no readable documents in {names}",
                f"point `findling index` at files of these kinds: {', '.join(sorted(SUFFIXES))}",
            )
        protected = {s.id for s in read.skipped if s.id}
        roots = read.roots if prune else None

        def plan(base: Snapshot | None) -> Plan:
            old = {} if base is None else {d.key: d.sha256 for d in base.documents()}
            return plan_update(old, read.documents, protected, roots)

        return self._write(plan, read.skipped, rebuild=rebuild, progress=progress, shards=shards)

    def build_documents(
        self,
        documents: list[Document],
        progress: Progress | None = None,
        shards: int | None = None,
    ) -> BuildSummary:
        """Index ready-made documents (e.g. an evaluation corpus) as a fresh collection, in
        ``shards`` shards if given."""
        return self._write(
            lambda base: plan_update({}, documents, set(), None),
            [],
            rebuild=True,
            progress=progress,
            shards=shards,
        )

    def remove(self, targets: Sequence[Path], pattern: str | None = None) -> BuildSummary:
        """Remove documents of the given files/folders or whose path matches a glob pattern."""
        current_name(self.index_dir)  # raises the "no index" error
        resolved = [t.resolve().as_posix() for t in targets]

        def plan(base: Snapshot | None) -> Plan:
            documents = [] if base is None else [(d.key, d.path) for d in base.documents()]
            return plan_removal(documents, lambda i, p: matches_source(i, p, resolved, pattern))

        return self._write(plan, [])

    def optimize(self) -> BuildSummary:
        """Merge every segment into one and drop deleted sentences for good."""
        current_name(self.index_dir)
        return self._write(lambda base: Plan(), [], policy=OPTIMIZE, force=True)

    def upsert(self, documents: Sequence[Document]) -> BuildSummary:
        """Add documents, or replace those whose id is already in the index (by content hash).

        Writes that arrive together (threads of a server) are committed together.
        """
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise InvalidRequestError("document ids must be unique within one request")
        return self._submit(_Write(upsert=list(documents)))

    def delete(self, doc_ids: Sequence[str]) -> BuildSummary:
        """Remove documents by id; :class:`DocumentNotFoundError` if none of them is indexed."""
        current_name(self.index_dir)  # raises the "no index" error
        return self._submit(_Write(delete=list(doc_ids)))

    def embed(self, texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        """Embed texts as the index would: ``kind`` "passage" or "query" picks e5's prompt."""
        if kind == "query":
            return np.stack([self.embedder.embed_query(t) for t in texts])
        return self.embedder.embed_documents(list(texts))

    def _has_index(self) -> bool:
        return (self.index_dir / CURRENT).exists()

    def _submit(self, write: _Write) -> BuildSummary:
        with self._queue_lock:
            self._queue.append(write)
        with self._commit_lock:
            if not write.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit_queued(batch)
        if write.error is not None:
            raise write.error
        assert write.summary is not None
        return write.summary

    def _commit_queued(self, batch: list[_Write]) -> None:
        """Commit a batch of queued writes as one generation; each gets its own summary."""
        sentences: dict[str, int] = {}  # of each document embedded, counted as it is split
        try:
            summary = self._write(
                lambda base: _plan_batch(base, batch),
                [],
                wait=self.options.write_wait,
                policy=self.options.write_merges,
                most_merges=1,
                locked=True,
                sentences=sentences,
            )
            for write in batch:
                if write.error is None and write.plan is not None:
                    write.summary = _own_summary(summary, write.plan, sentences)
        except FindlingError as exc:
            for write in batch:
                write.error = write.error or exc
        finally:
            for write in batch:
                write.done = True

    def _write(
        self,
        plan_for: Callable[[Snapshot | None], Plan],
        skipped: Sequence[Skipped],
        *,
        rebuild: bool = False,
        progress: Progress | None = None,
        wait: float = 0.0,
        policy: MergePolicy | None = None,
        most_merges: int | None = None,
        force: bool = False,
        locked: bool = False,
        shards: int | None = None,
        sentences: dict[str, int] | None = None,
    ) -> BuildSummary:
        """Plan, write and commit the next generation under the writer locks (``sentences``:
        filled with the sentence count of each document embedded)."""
        started = time.perf_counter()
        in_process = contextlib.nullcontext() if locked else self._commit_lock
        with in_process, writer_lock(self.index_dir, wait):
            prune(self.index_dir)  # what a crashed writer left goes first
            base = None if rebuild or not self._has_index() else self._base()
            if base is not None:
                shard_count(base.manifest, shards, rebuilding=False)  # refused before any work
            plan = plan_for(base)
            if base is not None and plan.empty and not force:
                return summary_of(self.index_dir, base.manifest, plan, skipped, 0, started)
            writer = self._writer(base, shards)

            def work() -> int:
                writer.delete(plan.remove)
                embedded = self._add(writer, plan.embed, progress, sentences)
                writer.merge(policy or self.options.build_merges, most_merges)
                return embedded

            embedded, manifest = write_and_commit(self.index_dir, writer, work)
            prune(self.index_dir)
        return summary_of(self.index_dir, manifest, plan, skipped, embedded, started)

    def _writer(self, base: Snapshot | None, shards: int | None) -> Writer:
        """The writer of the next generation: sharded if the collection is (or is to be)."""
        numbering = self._numbering() if base is None else None
        count = shard_count(base.manifest if base else numbering, shards, base is None)
        options = self.options
        layout = Layout(options.ann_threshold, options.quantize, options.graph_sentences)
        model = self.embedder.name
        recipe = self.options.recipe.for_model(model)
        if count:
            return ShardedWriter(self.index_dir, base, model, recipe, layout, count, numbering)
        return GenerationWriter(self.index_dir, base, model, recipe, layout, numbering=numbering)

    def _add(
        self,
        writer: Writer,
        documents: list[Document],
        progress: Progress | None,
        sentences: dict[str, int] | None = None,
    ) -> int:
        """Split, embed and write ``documents`` as new segments of at most
        ``options.segment_sentences`` sentences each; returns the sentences embedded (and
        notes each document's in ``sentences``, if given).

        Documents are embedded a chunk at a time while the next ones are prepared; progress is
        reported in documents.
        """
        segment = _Pending()
        chunk: list[Prepared] = []
        embedded = done = 0
        for position, item in enumerate(prepared(documents), start=1):
            chunk.append(item)
            last = position == len(documents)
            if last or sum(len(p.sentences) for p in chunk) >= EMBED_CHUNK_SENTENCES:
                segment.add(chunk, self._vectors(writer.recipe, chunk))
                done += len(chunk)
                embedded += sum(len(p.sentences) for p in chunk)
                if sentences is not None:
                    sentences.update((p.document.id, len(p.sentences)) for p in chunk)
                chunk = []
                if progress:
                    progress(done, len(documents))
            if segment.sentences and (last or segment.sentences >= self.options.segment_sentences):
                segment.write(writer)
                segment = _Pending()
        return embedded

    def _vectors(self, recipe: VectorRecipe, chunk: list[Prepared]) -> np.ndarray:
        sentences = [s for p in chunk for s in p.sentences]
        texts = {p.document.id: p.document.text for p in chunk}
        return recipe.vectors(self.embedder, sentences, texts, self.options.batch_size)

    def _numbering(self) -> Manifest | None:
        """The live manifest of a collection being rebuilt (whatever its model), if readable."""
        try:
            return current_manifest(self.index_dir)
        except FindlingError:
            return None

    def _base(self) -> Snapshot:
        base = self._current()
        self._check_model(base.manifest.model)
        return base

    def _check_model(self, model: str) -> None:
        """Raise unless the collection's vectors were made by this service's model."""
        if model != self.embedder.name:
            raise ModelMismatchError.between(model, self.embedder.name)

    # -- reading ------------------------------------------------------------------------------

    def info(self) -> Manifest:
        """The live generation's manifest (no model is loaded)."""
        return self._current().manifest

    def sources(self, limit: int = 1000) -> list[Source]:
        """The first ``limit`` live documents."""
        return list(itertools.islice(self._current().documents(), limit))

    def document(self, doc_id: str) -> StoredDocument:
        """A document of the collection by id: its text, title, source, metadata, ...

        Raises:
            DocumentNotFoundError: no live document has this id.
        """
        found = self._current().document(doc_id)
        if found is None:
            raise document_not_found(doc_id)
        return found

    def documents(self, offset: int = 0, limit: int = DOCUMENTS_PAGE) -> DocumentList:
        """``limit`` documents (id, title, source) from the ``offset``-th on, in storage order,
        and how many the collection holds."""
        check_page(offset, limit)
        snapshot = self._current()
        return DocumentList(snapshot.manifest.documents, offset, snapshot.listing(offset, limit))

    def verify(self) -> list[str]:
        """Re-read every file of the live generation against the checksum recorded when it was
        written; the problems found (none: the collection is intact). Opening a collection
        checks structure only, so this is where silent damage shows."""
        problems = []
        for part in self._current().parts:
            entry, segment = part.entry, part.segment
            problems += segment.verify()
            if (segment.info.sentences, segment.info.documents) != (
                entry.sentences,
                entry.documents,
            ):
                problems.append(f"{segment.folder} does not hold what the manifest says")
            if int(part.deleted.sum()) != entry.deleted_documents:
                problems.append(
                    f"{self.index_dir / str(entry.deleted)} does not match the manifest"
                )
        return problems

    def load(self) -> None:
        """Open the index and load the model and the language identifier now, so the first
        search (or write) is fast."""
        load_language_identifier()
        self.embedder.load()
        self._current()

    def _current(self) -> Snapshot:
        # another process may have committed a newer generation: pick it up, no restart
        name = current_name(self.index_dir)
        with self._read_lock:
            if self._snapshot is None or self._snapshot.generation != name:
                previous = self._snapshot
                self._snapshot = Snapshot.open(self.index_dir, self._segments, previous=previous)
                keep = self._snapshot.segment_names | (
                    previous.segment_names if previous else set()
                )
                self._segments.keep_only(keep)
            return self._snapshot

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
        """The ``k`` best passages for ``query``, best first, one per paragraph.

        ``filters`` keep only the sentences that pass them: ``{"lang": "de"}``, ``{"modified":
        {"$gte": "2024-01-01"}}``, ... (see :mod:`indexer.filters`). ``offset`` skips that
        many results (the next page), ``min_score`` leaves out results scoring below it, and
        ``group="document"`` returns ``k`` documents, each with its best passages (see
        :class:`~indexer.ranking.Selection`). ``took_ms`` excludes loading model and index.
        ``allow_partial`` matters only where shards are served apart (scatter.ShardedService):
        one process holds every shard.
        """
        query = self._check_query(query)
        selection = self._check_selection(k, offset, min_score, group)
        chosen = self._check_mode(mode)
        snapshot = self._ready()
        started = time.perf_counter()
        allowed = snapshot.allowed(filters) if filters else None
        ranked = self._rank(snapshot, query, chosen, leg_depth(selection), allowed)
        results = self._hits(snapshot, ranked, selection)
        if ranked:  # relative to the best score overall, not the best on this page
            centring = snapshot.recipe.centring
            results = self._calibrated(results, chosen, query, ranked[0].score, centring)
        return Answer(query, chosen, results, (time.perf_counter() - started) * 1000)

    def _calibrated(
        self, hits: list[Hit], mode: Mode, query: str, top: float, centring: str
    ) -> list[Hit]:
        """The hits with the calibrated probability that they answer the question, if the
        shipped calibration fits this model, mode and fusion (``top``: the best score)."""
        fit = calibration()
        if fit is None or not hits:
            return hits
        language = query_language(query)
        probabilities = [
            fit.probability(
                self.embedder.name,
                centring,
                self.options.fusion,
                mode,
                h.score,
                top,
                h.language == language,
            )
            for h in hits
        ]
        return [
            replace(h, probability=None if p is None else round(p, 4))
            for h, p in zip(hits, probabilities, strict=True)
        ]

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
        """Passages like a document, a text or a sentence ("more like this"), best first; the
        document itself (a sentence's document) is left out. Give exactly one of:

        ``document_id``: the mean of the document's stored sentence vectors (nothing is
        embedded, no model loaded); ``sentence_id`` (a hit's): its stored vector; ``text``:
        embedded as SIMILAR_TEXT_AS says. Ranked by the dense leg alone (mode "dense"); the
        other arguments are those of :meth:`search`.
        """
        check_like(document_id, text, sentence_id)
        selection = self._check_selection(k, offset, min_score, group)
        text = None if text is None else self._check_query(text)
        snapshot = self._current() if text is None else self._ready()
        started = time.perf_counter()
        allowed = snapshot.allowed(filters) if filters else None
        if text is not None:
            vector = snapshot.recipe.text_vector(
                self.embedder, text, detect_language(text), SIMILAR_TEXT_AS
            )
        else:
            like = snapshot.like(document_id, sentence_id)
            if like is None:
                raise not_like(document_id, sentence_id)
            vector, exclude = like
            allowed = snapshot.without(exclude, allowed)  # the document itself
        label = like_label(document_id, text, sentence_id)
        found = snapshot.dense(vector, leg_depth(selection), allowed)
        scores = snapshot.vectors(found) @ vector
        ranked = fuse("dense", found, scores, None, np.zeros(len(found), bool), self.options.fusion)
        results = self._hits(snapshot, ranked, selection)
        return Answer(label, "dense", results, (time.perf_counter() - started) * 1000)

    def _hits(self, snapshot: Snapshot, ranked: list[Scored], selection: Selection) -> list[Hit]:
        chosen = selection.select(ranked, snapshot.paragraph_key, snapshot.document_key)
        return [snapshot.hit(s.address, rank, s) for rank, s in chosen]

    def rank_sentences(self, query: str, mode: Mode, depth: int) -> list[tuple[SentenceRef, float]]:
        """Sentences ranked for ``query`` without collapsing (for evaluation)."""
        snapshot = self._ready()
        ranked = self._rank(snapshot, query.strip(), mode, depth, None)[:depth]
        refs = snapshot.sentence_refs(np.array([s.address for s in ranked], dtype=np.int64))
        return [(ref, s.score) for ref, s in zip(refs, ranked, strict=True)]

    def _ready(self) -> Snapshot:
        snapshot = self._current()
        self._check_model(snapshot.manifest.model)
        self.embedder.load()
        return snapshot

    def _rank(
        self,
        snapshot: Snapshot,
        query: str,
        mode: Mode,
        depth: int,
        allowed: Sequence[np.ndarray] | None,
    ) -> list[Scored]:
        found: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
        dense = lexical = None
        language = query_language(query)
        if mode in ("dense", "hybrid"):
            query_vector = snapshot.recipe.query_vector(self.embedder, query, language)
            found.append(snapshot.dense(query_vector, depth, allowed))
        if mode in ("bm25", "hybrid"):
            scored = snapshot.lexical(analyze(query, language))
            found.append(snapshot.lexical_top(scored, depth, allowed))
        candidates = np.unique(np.concatenate(found))
        if mode in ("dense", "hybrid"):
            dense = snapshot.vectors(candidates) @ query_vector
        if mode in ("bm25", "hybrid"):
            lexical = scaled(snapshot.gather(scored, candidates), scored.scale)
        same = np.array([lang == language for lang in snapshot.languages(candidates)], dtype=bool)
        return fuse(mode, candidates, dense, lexical, same, self.options.fusion)

    def _check_query(self, query: str) -> str:
        query = query.strip()
        if not query:
            raise InvalidRequestError(
                "the query is empty", "ask a question, e.g. 'Wer ist Blinken?'"
            )
        limit = self.options.max_query_chars
        if len(query) > limit:
            raise InvalidRequestError(
                f"the query has {len(query)} characters, more than {limit}", "shorten the question"
            )
        return query

    def _check_k(self, k: int | None) -> int:
        if k is None:
            return self.options.default_k
        limit = self.options.max_k
        if not 1 <= k <= limit:
            raise InvalidRequestError(
                f"k must be between 1 and {limit}, not {k}", f"pass a k from 1 to {limit}"
            )
        return k

    def _check_selection(
        self, k: int | None, offset: int, min_score: float | None, group: str
    ) -> Selection:
        if not 0 <= offset <= MAX_OFFSET:
            raise InvalidRequestError(
                f"offset must be between 0 and {MAX_OFFSET}, not {offset}",
                "page through at most the first thousand results",
            )
        if min_score is not None and not math.isfinite(min_score):
            raise InvalidRequestError(f"min_score must be a number, not {min_score}")
        for known in GROUPS:
            if group == known:
                return Selection(self._check_k(k), offset, min_score, known)
        raise InvalidRequestError(f"unknown group {group!r}", f"use one of: {', '.join(GROUPS)}")

    def _check_mode(self, mode: str | None) -> Mode:
        if mode is None:
            return self.options.default_mode
        for known in MODES:
            if mode == known:
                return known
        raise InvalidRequestError(
            f"unknown search mode {mode!r}", f"use one of: {', '.join(MODES)}"
        )


def document_not_found(doc_id: str) -> DocumentNotFoundError:
    return DocumentNotFoundError(
        f"no document {doc_id[:200]!r} in the collection",
        "take the document_id of a search hit, or list them (GET /documents)",
    )


def check_page(offset: int, limit: int) -> None:
    """Refuse a page of the documents listing that is out of bounds."""
    if not 1 <= limit <= MAX_DOCUMENTS_PAGE or offset < 0:
        raise InvalidRequestError(
            f"limit must be between 1 and {MAX_DOCUMENTS_PAGE} and offset at least 0, not "
            f"{limit} and {offset}",
            "page through the documents with offset",
        )


def check_like(document_id: str | None, text: str | None, sentence_id: int | None) -> None:
    """ "More like this" starts from exactly one thing."""
    if sum(given is not None for given in (document_id, text, sentence_id)) != 1:
        raise InvalidRequestError(
            "give exactly one of document_id, text and sentence_id",
            'e.g. {"document_id": "..."}, the document_id of a search hit',
        )


def like_label(document_id: str | None, text: str | None, sentence_id: int | None) -> str:
    """What a "more like this" answer names as its query."""
    if document_id is not None:
        return document_id
    return text if text is not None else str(sentence_id)


def not_like(document_id: str | None, sentence_id: int | None) -> DocumentNotFoundError:
    """The error for a document or sentence "more like this" cannot start from."""
    if document_id is not None:
        return DocumentNotFoundError(
            f"no document {document_id[:200]!r} in the collection",
            "take the document_id of a search hit, or list them (GET /documents)",
        )
    return DocumentNotFoundError(
        f"no sentence {sentence_id} in the collection",
        "take the sentence_id of a search hit (ids of removed sentences are gone)",
    )


def leg_depth(selection: Selection) -> int:
    """How many sentences each leg proposes for a selection."""
    return min(MAX_CANDIDATES, max(MIN_CANDIDATES, 10 * selection.passages))


class _Pending:
    """Prepared documents and their vectors, gathered into the next segment."""

    def __init__(self) -> None:
        self.items: list[Prepared] = []
        self.vectors: list[np.ndarray] = []
        self.sentences = 0

    def add(self, chunk: list[Prepared], vectors: np.ndarray) -> None:
        self.items += chunk
        self.vectors.append(vectors)
        self.sentences += sum(len(p.sentences) for p in chunk)

    def write(self, writer: Writer) -> None:
        sentences = [s for p in self.items for s in p.sentences]
        postings = Postings.build([terms for p in self.items for terms in p.terms])
        documents = [p.document for p in self.items if p.sentences]
        writer.add(documents, sentences, np.concatenate(self.vectors), postings)


def _plan_batch(base: Snapshot | None, batch: list[_Write]) -> Plan:
    """One plan for queued writes, applied in order (a later write of the same id wins); each
    write keeps its own counts in ``write.plan``, or its own error."""
    wanted = {d.id for w in batch for d in w.upsert} | {i for w in batch for i in w.delete}
    present = (
        {} if base is None else {i: at.sha256 for i, at in base.locate(sorted(wanted)).items()}
    )
    state: dict[str, Document | None] = {}  # what the batch makes of an id: new, or deleted

    def current_hash(doc_id: str) -> str | None:
        if doc_id in state:
            document = state[doc_id]
            return None if document is None else document.sha256
        return present.get(doc_id)

    for write in batch:
        if write.delete:
            gone = [i for i in dict.fromkeys(write.delete) if current_hash(i) is not None]
            if not gone:
                write.error = DocumentNotFoundError(
                    f"no document {sorted(write.delete)[0]!r} in the collection",
                    "check the id (GET /info lists the sources)",
                )
                continue
            state.update(dict.fromkeys(gone))
            write.plan = Plan(removed=len(gone))
            continue
        changed = [d for d in write.upsert if current_hash(d.id) != d.sha256]
        added = sum(1 for d in changed if current_hash(d.id) is None)
        state.update((d.id, d) for d in changed)
        write.plan = Plan(
            embed=changed,
            added=added,
            updated=len(changed) - added,
            unchanged=len(write.upsert) - len(changed),
        )
    # compared with the base, not step by step: a document deleted and put back unchanged is
    # neither embedded nor removed
    final = {i: d for i, d in state.items() if (d and d.sha256) != present.get(i)}
    embed = [d for d in final.values() if d is not None]
    return Plan(embed=embed, remove={i for i in final if i in present})


def _own_summary(shared: BuildSummary, plan: Plan, sentences: Mapping[str, int]) -> BuildSummary:
    """The batch's summary, with one write's own counts (``sentences``: of each document the
    batch embedded; its documents were split once, for the index, not again for this)."""
    return replace(
        shared,
        added=plan.added,
        updated=plan.updated,
        removed=plan.removed,
        unchanged=plan.unchanged,
        embedded=sum(sentences.get(d.id, 0) for d in plan.embed),
        skipped=[],
    )


def summary_of(
    index_dir: Path,
    manifest: Manifest,
    plan: Plan,
    skipped: Sequence[Skipped],
    embedded: int,
    started: float,
) -> BuildSummary:
    """What a write did, for people and programs (one machine and Ray alike)."""
    return BuildSummary(
        index_dir=str(index_dir),
        generation=manifest.generation,
        model=manifest.model,
        documents=manifest.documents,
        passages=manifest.passages,
        added=plan.added,
        updated=plan.updated,
        removed=plan.removed,
        unchanged=plan.unchanged,
        embedded=embedded,
        skipped=list(skipped),
        seconds=time.perf_counter() - started,
    )
