"""SearchService: the one module that knows both the embedder and the store.

The CLI, the HTTP API and programs all call this; they only parse input and render output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.documents import (
    Document,
    Passage,
    Skipped,
    detect_language,
    read_documents,
    split_document,
)
from indexer.embedder import Embedder, make_embedder
from indexer.errors import InvalidRequestError, ModelMismatchError, SourceNotFoundError
from indexer.generations import current_generation, write_generation
from indexer.manifest import Manifest, read_manifest
from indexer.ranking import MODES, Fusion, Mode, Scored, collapse, fuse
from indexer.settings import Settings
from indexer.storage import LoadedIndex, load_index, write_index_files

MAX_CONTEXT_CHARS = 1200  # beyond this a paragraph is cut to a window of sentences
CONTEXT_WINDOW = 2  # sentences either side of the hit when the paragraph is cut
EMBED_WINDOW = 1  # neighbours either side embedded with a sentence (measured: +1 beats 0)
MIN_CANDIDATES = 100  # sentences each leg proposes before fusion and collapsing

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SearchResult:
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
class SearchResponse:
    query: str
    mode: Mode
    results: list[SearchResult]
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
    index_dir: str
    generation: str
    model: str
    documents: int
    passages: int
    skipped: list[Skipped]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SearchService:
    """Builds and searches the index in ``index_dir`` with one embedder."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder,
        *,
        default_k: int = 5,
        max_k: int = 100,
        max_query_chars: int = 2000,
        default_mode: Mode = "hybrid",
        fusion: Fusion | None = None,
    ) -> None:
        self.index_dir = index_dir
        self.embedder = embedder
        self.default_k = default_k
        self.max_k = max_k
        self.max_query_chars = max_query_chars
        self.default_mode: Mode = default_mode
        self.fusion = fusion or Fusion()
        self._loaded: LoadedIndex | None = None
        self._lock = threading.Lock()

    # -- building -----------------------------------------------------------------------------

    def build(
        self, paths: Sequence[Path], progress: Progress | None = None, batch_size: int = 32
    ) -> BuildSummary:
        """Index every document below ``paths`` into a new generation and make it current."""
        read = read_documents(paths)
        if not read.documents:
            names = ", ".join(str(p) for p in paths)
            raise SourceNotFoundError(
                f"no readable .txt or .md documents in {names}",
                "point `findling index` at a folder of UTF-8 text or Markdown files",
            )
        return self.build_documents(read.documents, read.skipped, progress, batch_size)

    def build_documents(
        self,
        documents: list[Document],
        skipped: Sequence[Skipped] = (),
        progress: Progress | None = None,
        batch_size: int = 32,
    ) -> BuildSummary:
        """Index ready-made documents (e.g. an evaluation corpus) into a new generation."""
        started = time.perf_counter()
        passages = [p for doc in documents for p in split_document(doc)]
        vectors = self._embed_passages(passages, documents, progress, batch_size)
        model = self.embedder.name
        folder = write_generation(
            self.index_dir,
            lambda tmp, name: write_index_files(tmp, name, model, documents, passages, vectors),
        )
        return BuildSummary(
            index_dir=str(self.index_dir),
            generation=folder.name,
            model=model,
            documents=len(documents),
            passages=len(passages),
            skipped=list(skipped),
            seconds=time.perf_counter() - started,
        )

    def _embed_passages(
        self,
        passages: list[Passage],
        documents: list[Document],
        progress: Progress | None,
        batch_size: int,
    ) -> np.ndarray:
        # each vector is the mean of the sentence's and its window's embedding: the window gives
        # a sentence the context it refers to ("he", "the city"); measured better than either
        texts = {d.id: d.text for d in documents}
        sentences = [p.text for p in passages]
        windows = [_window_text(passages, i, texts) for i in range(len(passages))]
        unique = list(dict.fromkeys(sentences + windows))
        embedded = self._embed_unique(unique, progress, batch_size)
        row = {text: i for i, text in enumerate(unique)}
        sentence_vectors = embedded[[row[t] for t in sentences]]
        window_vectors = embedded[[row[t] for t in windows]]
        return np.asarray((sentence_vectors + window_vectors) / 2, dtype=np.float32)

    def _embed_unique(
        self, texts: list[str], progress: Progress | None, batch_size: int
    ) -> np.ndarray:
        # sorting by length keeps padding inside each batch small; order is restored below
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        chunks = []
        for begin in range(0, len(order), batch_size):
            batch = [texts[i] for i in order[begin : begin + batch_size]]
            chunks.append(self.embedder.embed_documents(batch))
            if progress:
                progress(min(begin + batch_size, len(order)), len(order))
        sorted_vectors = np.concatenate(chunks).astype(np.float32)
        vectors = np.empty_like(sorted_vectors)
        vectors[np.asarray(order)] = sorted_vectors
        return vectors

    # -- reading ------------------------------------------------------------------------------

    def info(self) -> Manifest:
        """The live generation's manifest (no model is loaded)."""
        return read_manifest(current_generation(self.index_dir))

    def load(self) -> None:
        """Load the index and the model now, so the first search is fast."""
        self._current()
        self.embedder.load()

    def _current(self) -> LoadedIndex:
        folder = current_generation(self.index_dir)
        with self._lock:
            # another process may have committed a newer generation: pick it up, no restart
            if self._loaded is None or self._loaded.generation != folder.name:
                self._loaded = load_index(folder)
        return self._loaded

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> SearchResponse:
        """The ``k`` best passages for ``query``, best first, one per paragraph.

        ``took_ms`` excludes the one-time loading of model and index.
        """
        query = self._check_query(query)
        k = self._check_k(k)
        chosen = self._check_mode(mode)
        loaded = self._ready()
        started = time.perf_counter()
        ranked = self._rank(loaded, query, chosen, max(MIN_CANDIDATES, 10 * k))
        results = [
            _result(loaded, hit, rank)
            for rank, hit in enumerate(collapse(ranked, loaded.passages, k), start=1)
        ]
        return SearchResponse(query, chosen, results, (time.perf_counter() - started) * 1000)

    def rank_sentences(self, query: str, mode: Mode, depth: int) -> list[tuple[Passage, float]]:
        """Sentences ranked for ``query`` without collapsing (for evaluation)."""
        loaded = self._ready()
        ranked = self._rank(loaded, query.strip(), mode, depth)[:depth]
        return [(loaded.passages[hit.pid], hit.score) for hit in ranked]

    def _ready(self) -> LoadedIndex:
        loaded = self._current()
        if loaded.manifest.model != self.embedder.name:
            raise ModelMismatchError(
                f"the index was built with model {loaded.manifest.model!r}, "
                f"but the configured model is {self.embedder.name!r}",
                f"set FINDLING_MODEL={loaded.manifest.model} or rebuild with `findling index`",
            )
        self.embedder.load()
        return loaded

    def _rank(self, loaded: LoadedIndex, query: str, mode: Mode, depth: int) -> list[Scored]:
        ids: list[np.ndarray] = []
        dense_scores = lexical_all = None
        if mode in ("dense", "hybrid"):
            query_vector = self.embedder.embed_query(query)
            ids.append(loaded.store.search(query_vector, depth).ids)
        language = detect_language(query)
        if mode in ("bm25", "hybrid"):
            lexical_all = loaded.lexical.scores(query, language).normalised()
            top = np.argsort(-lexical_all, kind="stable")[:depth]
            ids.append(top[lexical_all[top] > 0])
        candidates = np.unique(np.concatenate(ids)).astype(np.int64)
        if mode in ("dense", "hybrid"):
            dense_scores = loaded.store.vectors(candidates) @ query_vector
        lexical = None if lexical_all is None else lexical_all[candidates]
        same = np.array([loaded.passages[i].language == language for i in candidates], dtype=bool)
        return fuse(mode, candidates, dense_scores, lexical, same, self.fusion)

    def _check_query(self, query: str) -> str:
        query = query.strip()
        if not query:
            raise InvalidRequestError(
                "the query is empty", "ask a question, e.g. 'Wer ist Blinken?'"
            )
        if len(query) > self.max_query_chars:
            raise InvalidRequestError(
                f"the query has {len(query)} characters, more than {self.max_query_chars}",
                "shorten the question",
            )
        return query

    def _check_k(self, k: int | None) -> int:
        if k is None:
            return self.default_k
        if not 1 <= k <= self.max_k:
            raise InvalidRequestError(
                f"k must be between 1 and {self.max_k}, not {k}", f"pass a k from 1 to {self.max_k}"
            )
        return k

    def _check_mode(self, mode: str | None) -> Mode:
        if mode is None:
            return self.default_mode
        for known in MODES:
            if mode == known:
                return known
        raise InvalidRequestError(
            f"unknown search mode {mode!r}", f"use one of: {', '.join(MODES)}"
        )


def create_service(settings: Settings) -> SearchService:
    """The service the settings describe; the model is not loaded yet."""
    return SearchService(
        settings.index_dir,
        make_embedder(settings),
        default_k=settings.default_k,
        max_k=settings.max_k,
        max_query_chars=settings.max_query_chars,
        default_mode=settings.search_mode,
        fusion=Fusion(settings.hybrid_lexical_weight, settings.hybrid_cross_language_weight),
    )


def _window_text(passages: list[Passage], i: int, texts: dict[str, str]) -> str:
    """The sentence with up to EMBED_WINDOW neighbours of its paragraph, as in the source."""
    first, last = _neighbours(passages, i, EMBED_WINDOW)
    return texts[passages[i].doc_id][passages[first].start : passages[last].end]


def _result(loaded: LoadedIndex, hit: Scored, rank: int) -> SearchResult:
    passage = loaded.passages[hit.pid]
    document = loaded.documents[passage.doc_id]
    ctx_start, ctx_end = _context_span(loaded.passages, hit.pid)
    return SearchResult(
        rank=rank,
        score=round(hit.score, 6),
        text=passage.text,
        context=document.text[ctx_start:ctx_end],
        context_start=passage.start - ctx_start,
        context_end=passage.end - ctx_start,
        source=document.path,
        document_id=passage.doc_id,
        paragraph=passage.paragraph,
        sentence=passage.sentence,
        start=passage.start,
        end=passage.end,
        language=passage.language,
        dense_score=None if hit.dense is None else round(hit.dense, 6),
        lexical_score=None if hit.lexical is None else round(hit.lexical, 6),
    )


def _context_span(passages: list[Passage], pid: int) -> tuple[int, int]:
    """The paragraph around a sentence, or a window of its neighbours if the paragraph is long."""
    hit = passages[pid]
    if hit.paragraph_end - hit.paragraph_start <= MAX_CONTEXT_CHARS:
        return hit.paragraph_start, hit.paragraph_end
    first, last = _neighbours(passages, pid, CONTEXT_WINDOW)
    return passages[first].start, passages[last].end


def _neighbours(passages: list[Passage], pid: int, n: int) -> tuple[int, int]:
    """Ids of the first and last sentence within ``n`` of ``pid`` in the same paragraph."""
    hit = passages[pid]
    first, last = pid, pid
    while first > 0 and pid - first < n and _same_paragraph(passages[first - 1], hit):
        first -= 1
    while last + 1 < len(passages) and last - pid < n and _same_paragraph(passages[last + 1], hit):
        last += 1
    return first, last


def _same_paragraph(a: Passage, b: Passage) -> bool:
    return a.doc_id == b.doc_id and a.paragraph == b.paragraph
