"""SearchService: the one module that knows both the embedder and the store.

The CLI, the HTTP API and programs all call this; they only parse input and render output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.defaults import SNIPPET_MAX_CHARS, SNIPPET_WINDOW, Mode
from indexer.documents import (
    Document,
    Sentence,
    Skipped,
    detect_language,
    neighbours,
    read_documents,
    split_document,
)
from indexer.errors import (
    DocumentNotFoundError,
    IndexCorruptError,
    InvalidRequestError,
    ModelMismatchError,
    SourceNotFoundError,
)
from indexer.filters import allowed_ids
from indexer.generations import CURRENT, commit_generation, current_generation, writer_lock
from indexer.manifest import Manifest, read_manifest
from indexer.model.embedder import Embedder
from indexer.options import SearchOptions
from indexer.ranking import MODES, Scored, collapse, fuse
from indexer.recipe import Progress
from indexer.snapshot import Snapshot, open_snapshot, write_snapshot
from indexer.store import VectorStore
from indexer.updates import Plan, matches_source, plan_removal, plan_update

MIN_CANDIDATES = 100  # sentences each leg proposes before fusion and collapsing


@dataclass(frozen=True)
class Hit:
    """One matching passage: its best sentence, with the paragraph around it as context."""

    rank: int
    score: float
    text: str
    context: str
    context_start: int
    context_end: int
    source: str
    document_id: str
    paragraph: int
    sentence: int
    start: int
    end: int
    language: str
    dense_score: float | None
    lexical_score: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Answer:
    """What a search found: the passages, best first, and how long the search took."""

    query: str
    mode: Mode
    results: list[Hit]
    took_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "mode": self.mode,
            "results": [r.to_json() for r in self.results],
            "took_ms": round(self.took_ms, 2),
        }


@dataclass(frozen=True)
class BuildSummary:
    """What an index run did. ``documents``/``passages`` count the whole index afterwards."""

    index_dir: str
    generation: str
    model: str
    documents: int
    passages: int
    added: int
    updated: int
    removed: int
    unchanged: int
    embedded: int
    skipped: list[Skipped]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SearchService:
    """Builds and searches the index in ``index_dir`` with one embedder."""

    def __init__(
        self, index_dir: Path, embedder: Embedder, options: SearchOptions | None = None
    ) -> None:
        self.index_dir = index_dir
        self.embedder = embedder
        self.options = options or SearchOptions()
        self._loaded: Snapshot | None = None
        self._lock = threading.Lock()

    # -- building -----------------------------------------------------------------------------

    def build(
        self,
        paths: Sequence[Path],
        progress: Progress | None = None,
        *,
        prune: bool = True,
        rebuild: bool = False,
    ) -> BuildSummary:
        """Bring the index up to date with the documents below ``paths`` in a new generation.

        New files are added, changed files re-embedded, unchanged files copied without any
        embedding work; with ``prune``, documents of files under ``paths`` that are gone are
        removed. ``rebuild`` starts from nothing instead of the current generation.
        """
        read = read_documents(paths, self.options.max_file_bytes)
        if not read.documents and (rebuild or not self._has_index()):
            names = ", ".join(str(p) for p in paths)
            raise SourceNotFoundError(
                f"no readable documents in {names}",
                "point `findling index` at .txt, .md, .html, .pdf or .jsonl files",
            )
        protected = {s.id for s in read.skipped if s.id}
        return self._update(
            lambda old: plan_update(old, read.documents, protected, read.roots if prune else None),
            read.skipped,
            rebuild,
            progress,
        )

    def build_documents(
        self, documents: list[Document], progress: Progress | None = None
    ) -> BuildSummary:
        """Index ready-made documents (e.g. an evaluation corpus) as a fresh generation."""
        return self._update(lambda old: plan_update({}, documents, set(), None), [], True, progress)

    def remove(self, targets: Sequence[Path], pattern: str | None = None) -> BuildSummary:
        """Remove documents of the given files/folders or whose path matches a glob pattern."""
        if not self._has_index():
            current_generation(self.index_dir)  # raises the "no index" error
        resolved = [t.resolve().as_posix() for t in targets]
        return self._update(
            lambda old: plan_removal(old, lambda d: matches_source(d, resolved, pattern)),
            [],
            False,
            None,
        )

    def upsert(self, documents: Sequence[Document]) -> BuildSummary:
        """Add documents, or replace those whose id is already in the index (by content hash)."""
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise InvalidRequestError("document ids must be unique within one request")
        return self._update(
            lambda old: plan_update(old, list(documents), set(), None), [], False, None
        )

    def delete(self, doc_ids: Sequence[str]) -> BuildSummary:
        """Remove documents by id; :class:`DocumentNotFoundError` if none of them is indexed."""
        wanted = set(doc_ids)
        current_generation(self.index_dir)  # raises the "no index" error
        summary = self._update(
            lambda old: plan_removal(old, lambda d: d.id in wanted), [], False, None
        )
        if summary.removed == 0:
            raise DocumentNotFoundError(
                f"no document {sorted(wanted)[0]!r} in {self.index_dir}/",
                "check the id (GET /info lists the sources)",
            )
        return summary

    def embed(self, texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        """Embed texts as the index would: ``kind`` "passage" or "query" picks e5's prompt."""
        if kind == "query":
            return np.stack([self.embedder.embed_query(t) for t in texts])
        return self.embedder.embed_documents(list(texts))

    def _has_index(self) -> bool:
        return (self.index_dir / CURRENT).exists()

    def _update(
        self,
        plan_for: Callable[[dict[str, Document]], Plan],
        skipped: Sequence[Skipped],
        rebuild: bool,
        progress: Progress | None,
    ) -> BuildSummary:
        started = time.perf_counter()
        model = self.embedder.name
        # the lock covers reading the base too: two writers must not build on the same base
        with writer_lock(self.index_dir):
            base = None if rebuild or not self._has_index() else self._base()
            plan = plan_for(dict(base.documents) if base else {})
            if base is not None and not (plan.added or plan.updated or plan.removed):
                return self._unchanged(base, plan, skipped, started)
            # an index keeps the recipe it was built with: one index, one kind of vector
            recipe = self.options.recipe if base is None else base.recipe
            documents, passages, store = self._assemble(base, plan, progress)
            folder = commit_generation(
                self.index_dir,
                lambda tmp, name: write_snapshot(
                    tmp, name, model, documents, passages, store, recipe
                ),
            )
        return BuildSummary(
            index_dir=str(self.index_dir),
            generation=folder.name,
            model=model,
            documents=len(documents),
            passages=len(passages),
            added=plan.added,
            updated=plan.updated,
            removed=plan.removed,
            unchanged=plan.unchanged,
            embedded=sum(1 for pid, _ in passages if base is None or pid >= base.manifest.next_id),
            skipped=list(skipped),
            seconds=time.perf_counter() - started,
        )

    def _unchanged(
        self, base: Snapshot, plan: Plan, skipped: Sequence[Skipped], started: float
    ) -> BuildSummary:
        # nothing to do: no new generation, so readers and disk see no churn
        return BuildSummary(
            index_dir=str(self.index_dir),
            generation=base.generation,
            model=base.manifest.model,
            documents=base.manifest.documents,
            passages=base.manifest.passages,
            added=0,
            updated=0,
            removed=0,
            unchanged=plan.unchanged,
            embedded=0,
            skipped=list(skipped),
            seconds=time.perf_counter() - started,
        )

    def _base(self) -> Snapshot:
        base = self._current()
        if base.manifest.model != self.embedder.name:
            raise ModelMismatchError.between(base.manifest.model, self.embedder.name)
        return base

    def _assemble(
        self, base: Snapshot | None, plan: Plan, progress: Progress | None
    ) -> tuple[list[Document], list[tuple[int, Sentence]], VectorStore]:
        """Documents, (id, sentence) pairs and vector store of the next generation, ids ascending.

        Kept documents bring their sentences, ids and vectors along; ids are never reused, so a
        removed sentence can never come back as a ghost under another sentence's id.
        """
        recipe = self.options.recipe if base is None else base.recipe
        new_sentences = [s for doc in plan.embed for s in split_document(doc)]
        first = 0 if base is None else base.manifest.next_id
        new = [(first + i, s) for i, s in enumerate(new_sentences)]
        new_ids = np.array([sid for sid, _ in new], dtype=np.int64)
        texts = {d.id: d.text for d in plan.embed}
        new_vectors = (
            recipe.vectors(self.embedder, new_sentences, texts, self.options.batch_size, progress)
            if new_sentences or base is None
            else np.zeros((0, base.store.dimension), dtype=np.float32)  # no model needed
        )
        threshold = self.options.ann_threshold
        if base is None:
            return list(plan.embed), new, VectorStore.build(new_vectors, new_ids, threshold)
        keep = set(plan.keep)
        kept = sorted(
            ((sid, s) for sid, s in base.sentences.items() if s.doc_id in keep),
            key=lambda item: item[0],
        )
        documents = [base.documents[d] for d in plan.keep] + plan.embed
        kind = VectorStore.kind_for(len(kept) + len(new), threshold)
        if len(kept) == len(base.sentences) and base.store.kind == kind:
            # nothing removed: add to a copy of the current store instead of rebuilding it
            return documents, kept + new, base.store.extended(new_vectors, new_ids)
        kept_ids = np.array([sid for sid, _ in kept], dtype=np.int64)
        vectors = np.concatenate([base.store.vectors(kept_ids), new_vectors])
        ids = np.concatenate([kept_ids, new_ids])
        return documents, kept + new, VectorStore.build(vectors, ids, threshold)

    # -- reading ------------------------------------------------------------------------------

    def info(self) -> Manifest:
        """The live generation's manifest (no model is loaded)."""
        return read_manifest(current_generation(self.index_dir))

    def load(self) -> None:
        """Load the index and the model now, so the first search is fast."""
        self._current()
        self.embedder.load()

    def _current(self) -> Snapshot:
        # another process may have committed a newer generation: pick it up, no restart
        while True:
            folder = current_generation(self.index_dir)
            with self._lock:
                if self._loaded is not None and self._loaded.generation == folder.name:
                    return self._loaded
                try:
                    self._loaded = open_snapshot(folder)
                    return self._loaded
                except IndexCorruptError:
                    # a writer may have committed twice and pruned this generation after we
                    # read CURRENT; only a generation that is still current is really damaged
                    if current_generation(self.index_dir) == folder:
                        raise

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> Answer:
        """The ``k`` best passages for ``query``, best first, one per paragraph.

        ``filters`` keep only sentences whose document matches every ``key: value`` (see
        :func:`indexer.filters.matcher`). ``took_ms`` excludes loading model and index.
        """
        query = self._check_query(query)
        k = self._check_k(k)
        chosen = self._check_mode(mode)
        loaded = self._ready()
        started = time.perf_counter()
        allowed = allowed_ids(loaded, filters) if filters else None
        ranked = self._rank(loaded, query, chosen, max(MIN_CANDIDATES, 10 * k), allowed)
        results = [
            _hit(loaded, scored, rank)
            for rank, scored in enumerate(collapse(ranked, loaded.sentences, k), start=1)
        ]
        return Answer(query, chosen, results, (time.perf_counter() - started) * 1000)

    def rank_sentences(self, query: str, mode: Mode, depth: int) -> list[tuple[Sentence, float]]:
        """Sentences ranked for ``query`` without collapsing (for evaluation)."""
        loaded = self._ready()
        ranked = self._rank(loaded, query.strip(), mode, depth, None)[:depth]
        return [(loaded.sentences[scored.pid], scored.score) for scored in ranked]

    def _ready(self) -> Snapshot:
        loaded = self._current()
        if loaded.manifest.model != self.embedder.name:
            raise ModelMismatchError.between(loaded.manifest.model, self.embedder.name)
        self.embedder.load()
        return loaded

    def _rank(
        self,
        loaded: Snapshot,
        query: str,
        mode: Mode,
        depth: int,
        allowed: np.ndarray | None,
    ) -> list[Scored]:
        ids: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
        dense_scores = lexical_rows = None
        if mode in ("dense", "hybrid"):
            query_vector = self.embedder.embed_query(query)
            ids.append(loaded.store.search(query_vector, depth, allowed).ids)
        language = detect_language(query)
        if mode in ("bm25", "hybrid"):
            lexical_rows = loaded.lexical.scores(query, language).normalised()
            if allowed is not None:
                lexical_rows = np.where(np.isin(loaded.ids, allowed), lexical_rows, 0.0)
            # only sentences sharing a term can rank; sorting just those keeps a query on a
            # million-sentence index from sorting a million scores
            matched = np.flatnonzero(lexical_rows > 0)
            top = matched[np.argsort(-lexical_rows[matched], kind="stable")[:depth]]
            ids.append(loaded.ids[top])
        candidates = np.unique(np.concatenate(ids)).astype(np.int64)
        if mode in ("dense", "hybrid"):
            dense_scores = loaded.store.vectors(candidates) @ query_vector
        # sentence ids ascend in file order, which is the lexical index's row order
        lexical = None
        if lexical_rows is not None:
            lexical = lexical_rows[np.searchsorted(loaded.ids, candidates)]
        same = np.array([loaded.sentences[int(i)].language == language for i in candidates])
        return fuse(mode, candidates, dense_scores, lexical, same.astype(bool), self.options.fusion)

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

    def _check_mode(self, mode: str | None) -> Mode:
        if mode is None:
            return self.options.default_mode
        for known in MODES:
            if mode == known:
                return known
        raise InvalidRequestError(
            f"unknown search mode {mode!r}", f"use one of: {', '.join(MODES)}"
        )


def _hit(loaded: Snapshot, scored: Scored, rank: int) -> Hit:
    sentence = loaded.sentences[scored.pid]
    document = loaded.documents[sentence.doc_id]
    snippet_start, snippet_end = _snippet_span(loaded.sentences, scored.pid)
    return Hit(
        rank=rank,
        score=round(scored.score, 6),
        text=sentence.text,
        context=document.text[snippet_start:snippet_end],
        context_start=sentence.start - snippet_start,
        context_end=sentence.end - snippet_start,
        source=document.path,
        document_id=sentence.doc_id,
        paragraph=sentence.paragraph,
        sentence=sentence.sentence,
        start=sentence.start,
        end=sentence.end,
        language=sentence.language,
        dense_score=None if scored.dense is None else round(scored.dense, 6),
        lexical_score=None if scored.lexical is None else round(scored.lexical, 6),
    )


def _snippet_span(sentences: Mapping[int, Sentence], sid: int) -> tuple[int, int]:
    """The paragraph around a sentence, or a window of its neighbours if the paragraph is long."""
    hit = sentences[sid]
    if hit.paragraph_end - hit.paragraph_start <= SNIPPET_MAX_CHARS:
        return hit.paragraph_start, hit.paragraph_end
    first, last = neighbours(sentences, sid, SNIPPET_WINDOW)
    return sentences[first].start, sentences[last].end
