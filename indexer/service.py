"""SearchService: the one module that knows both the embedder and the store.

The CLI, the HTTP API and programs all call this; they only parse input and render output.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from indexer.documents import Document, Passage, Skipped, read_documents, split_document
from indexer.embedder import Embedder, make_embedder
from indexer.errors import (
    IndexCorruptError,
    InvalidRequestError,
    ModelMismatchError,
    SourceNotFoundError,
)
from indexer.generations import current_generation, write_generation
from indexer.manifest import (
    MANIFEST_NAME,
    Manifest,
    SourceEntry,
    read_manifest,
    sha256_file,
    verify_files,
)
from indexer.settings import Settings
from indexer.store import VectorStore

VECTORS = "vectors.faiss"
PASSAGES = "passages.jsonl"
DOCUMENTS = "documents.jsonl"
MAX_CONTEXT_CHARS = 1200  # beyond this a paragraph is cut to a window of sentences
CONTEXT_WINDOW = 2  # sentences either side of the hit when the paragraph is cut

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SearchResult:
    """One matching sentence. ``score`` is the cosine similarity of question and sentence."""

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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchResponse:
    query: str
    results: list[SearchResult]
    took_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
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


@dataclass(frozen=True)
class _DocumentRecord:
    path: str
    text: str


@dataclass(frozen=True)
class _LoadedIndex:
    generation: str
    manifest: Manifest
    store: VectorStore
    passages: list[Passage]
    documents: dict[str, _DocumentRecord]


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
    ) -> None:
        self.index_dir = index_dir
        self.embedder = embedder
        self.default_k = default_k
        self.max_k = max_k
        self.max_query_chars = max_query_chars
        self._loaded: _LoadedIndex | None = None
        self._lock = threading.Lock()

    # -- building -----------------------------------------------------------------------------

    def build(
        self, paths: Sequence[Path], progress: Progress | None = None, batch_size: int = 32
    ) -> BuildSummary:
        """Index every document below ``paths`` into a new generation and make it current."""
        started = time.perf_counter()
        read = read_documents(paths)
        if not read.documents:
            names = ", ".join(str(p) for p in paths)
            raise SourceNotFoundError(
                f"no readable .txt or .md documents in {names}",
                "point `findling index` at a folder of UTF-8 text or Markdown files",
            )
        passages = [p for doc in read.documents for p in split_document(doc)]
        vectors = self._embed_passages(passages, progress, batch_size)
        folder = write_generation(
            self.index_dir,
            lambda tmp, name: self._write_files(tmp, name, read.documents, passages, vectors),
        )
        return BuildSummary(
            index_dir=str(self.index_dir),
            generation=folder.name,
            model=self.embedder.name,
            documents=len(read.documents),
            passages=len(passages),
            skipped=read.skipped,
            seconds=time.perf_counter() - started,
        )

    def _embed_passages(
        self, passages: list[Passage], progress: Progress | None, batch_size: int
    ) -> np.ndarray:
        # sorting by length keeps padding inside each batch small; order is restored below
        order = sorted(range(len(passages)), key=lambda i: len(passages[i].text))
        chunks = []
        for begin in range(0, len(order), batch_size):
            batch = [passages[i].text for i in order[begin : begin + batch_size]]
            chunks.append(self.embedder.embed_documents(batch))
            if progress:
                progress(min(begin + batch_size, len(order)), len(order))
        sorted_vectors = np.concatenate(chunks).astype(np.float32)
        vectors = np.empty_like(sorted_vectors)
        vectors[np.asarray(order)] = sorted_vectors
        return vectors

    def _write_files(
        self,
        folder: Path,
        generation: str,
        documents: list[Document],
        passages: list[Passage],
        vectors: np.ndarray,
    ) -> None:
        # a passage's FAISS id is its line number in passages.jsonl
        VectorStore.build(vectors, np.arange(len(passages), dtype=np.int64)).save(folder / VECTORS)
        _write_jsonl(folder / PASSAGES, (_passage_row(p) for p in passages))
        _write_jsonl(folder / DOCUMENTS, (_document_row(d) for d in documents))
        counts: dict[str, int] = {}
        for p in passages:
            counts[p.doc_id] = counts.get(p.doc_id, 0) + 1
        manifest = Manifest(
            model=self.embedder.name,
            dimension=int(vectors.shape[1]),
            documents=len(documents),
            passages=len(passages),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            generation=generation,
            splitter=f"pysbd=={_package_version('pysbd')}",
            findling_version=_package_version("findling"),
            sources=[
                SourceEntry(d.id, d.path, d.sha256, d.language, counts.get(d.id, 0))
                for d in documents
            ],
            files={name: sha256_file(folder / name) for name in (VECTORS, PASSAGES, DOCUMENTS)},
        )
        (folder / MANIFEST_NAME).write_text(
            json.dumps(manifest.to_json(), ensure_ascii=False, indent=2), encoding="utf-8"
        )

    # -- reading ------------------------------------------------------------------------------

    def info(self) -> Manifest:
        """The live generation's manifest (no model is loaded)."""
        return read_manifest(current_generation(self.index_dir))

    def load(self) -> None:
        """Load the index and the model now, so the first search is fast."""
        self._current()
        self.embedder.load()

    def _current(self) -> _LoadedIndex:
        folder = current_generation(self.index_dir)
        with self._lock:
            # another process may have committed a newer generation: pick it up, no restart
            if self._loaded is None or self._loaded.generation != folder.name:
                self._loaded = _load_generation(folder)
        return self._loaded

    def search(self, query: str, k: int | None = None) -> SearchResponse:
        """The ``k`` sentences most similar to ``query``, best first.

        ``took_ms`` excludes the one-time loading of model and index.
        """
        query = self._check_query(query)
        k = self._check_k(k)
        loaded = self._current()
        if loaded.manifest.model != self.embedder.name:
            raise ModelMismatchError(
                f"the index was built with model {loaded.manifest.model!r}, "
                f"but the configured model is {self.embedder.name!r}",
                f"set FINDLING_MODEL={loaded.manifest.model} or rebuild with `findling index`",
            )
        self.embedder.load()
        started = time.perf_counter()
        hits = loaded.store.search(self.embedder.embed_query(query), k)
        results = [
            _result(loaded, int(pid), float(score), rank)
            for rank, (pid, score) in enumerate(zip(hits.ids, hits.scores, strict=True), start=1)
        ]
        return SearchResponse(query, results, (time.perf_counter() - started) * 1000)

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


def _result(loaded: _LoadedIndex, pid: int, score: float, rank: int) -> SearchResult:
    passage = loaded.passages[pid]
    document = loaded.documents[passage.doc_id]
    ctx_start, ctx_end = _context_span(loaded.passages, pid)
    return SearchResult(
        rank=rank,
        score=round(score, 6),
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
    )


def _context_span(passages: list[Passage], pid: int) -> tuple[int, int]:
    """The paragraph around a sentence, or a window of its neighbours if the paragraph is long."""
    hit = passages[pid]
    if hit.paragraph_end - hit.paragraph_start <= MAX_CONTEXT_CHARS:
        return hit.paragraph_start, hit.paragraph_end
    first, last = pid, pid
    while first > 0 and pid - first < CONTEXT_WINDOW and _same_paragraph(passages[first - 1], hit):
        first -= 1
    while (
        last + 1 < len(passages)
        and last - pid < CONTEXT_WINDOW
        and _same_paragraph(passages[last + 1], hit)
    ):
        last += 1
    return passages[first].start, passages[last].end


def _same_paragraph(a: Passage, b: Passage) -> bool:
    return a.doc_id == b.doc_id and a.paragraph == b.paragraph


def _load_generation(folder: Path) -> _LoadedIndex:
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    store = VectorStore.load(folder / VECTORS)
    documents = {
        row["id"]: _DocumentRecord(row["path"], row["text"])
        for row in _read_jsonl(folder / DOCUMENTS)
    }
    texts = {doc_id: record.text for doc_id, record in documents.items()}
    passages = [_passage_from_row(row, texts) for row in _read_jsonl(folder / PASSAGES)]
    if len(store) != len(passages) or store.dimension != manifest.dimension:
        raise IndexCorruptError(
            f"{folder} is inconsistent: {len(store)} vectors of dimension {store.dimension}, "
            f"{len(passages)} passages, manifest dimension {manifest.dimension}",
            "rebuild with `findling index`",
        )
    return _LoadedIndex(folder.name, manifest, store, passages, documents)


def _passage_row(p: Passage) -> dict[str, Any]:
    row = asdict(p)
    del row["text"]  # the document text holds it; offsets recover it exactly
    return row


def _passage_from_row(row: dict[str, Any], texts: dict[str, str]) -> Passage:
    return Passage(**row, text=texts[row["doc_id"]][row["start"] : row["end"]])


def _document_row(d: Document) -> dict[str, Any]:
    return {"id": d.id, "path": d.path, "sha256": d.sha256, "language": d.language, "text": d.text}


def _write_jsonl(path: Path, rows: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def create_service(settings: Settings) -> SearchService:
    """The service the settings describe; the model is not loaded yet."""
    return SearchService(
        settings.index_dir,
        make_embedder(settings),
        default_k=settings.default_k,
        max_k=settings.max_k,
        max_query_chars=settings.max_query_chars,
    )
