"""Segments: the immutable pieces a collection is made of (as in Lucene).

A segment folder holds, for its sentences in document order (row 0, 1, ...):

``segment.json``       what the segment is: counts, id range, languages, files and checksums
``ids.npy``            each row's sentence id (int64, ascending; stable, never reused)
``sentences.npy``      each row's document row, paragraph, sentence, offsets and language
``vectors.npy`` / ``graph.faiss``  the vectors (see store.py)
``postings-*.npy``     the lexical index (see lexical.py)
``documents.sqlite``   the documents (id, path, title, metadata, full text, page starts, ...):
                       random access by row or id, and a sentence's text by offsets (SQLite's
                       ``substr`` counts characters, as the offsets do)

Every file is written once and never changed; arrays are opened memory-mapped, so a reader
holds vectors, not text, and reads text only for the hits it returns. A deleted document is
recorded outside the segment, by the generation (see generations.py).
"""

from __future__ import annotations

import fnmatch
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

import numpy as np

from indexer.dates import day_of, instant_of
from indexer.defaults import Quantize
from indexer.documents import Document, Sentence, public_id
from indexer.errors import IndexCorruptError
from indexer.fsutil import fsync_path, mapped, sha256_file
from indexer.lexical import ANALYZER_VERSION, Postings
from indexer.store import GRAPH, VectorStore, grow_store, write_store

SEGMENT_FORMAT = 1
META = "segment.json"
IDS = "ids.npy"
SENTENCES = "sentences.npy"
DOCUMENTS = "documents.sqlite"
SENTENCE_DTYPE = np.dtype(
    [
        ("doc", "<i4"),  # the document's row in documents.sqlite
        ("paragraph", "<i4"),
        ("sentence", "<i4"),
        ("start", "<i4"),
        ("end", "<i4"),
        ("paragraph_start", "<i4"),
        ("paragraph_end", "<i4"),
        ("language", "u1"),  # index into SegmentInfo.languages
    ]
)
_DOCUMENT_COLUMNS = ("id", "path", "title", "modified", "sha256", "language", "metadata", "text")
# ``pages``: where each page of a paged document (PDF) starts in its text, as a JSON list ("" for
# none). A column of its own, not metadata: it is structure, like offsets, and must not show up
# among (or be overwritten by) a document's own fields. Segments written before it lack the
# column; their documents have no pages, and findling versions before it ignore it.
PAGES = "pages"


@dataclass(frozen=True)
class SegmentInfo:
    """What a segment holds; written as ``segment.json``, last, when the segment is complete."""

    name: str
    sentences: int
    documents: int
    dimension: int
    first_id: int
    last_id: int
    vector_index: str
    languages: list[str]
    created_at: str
    analyzer: str = ANALYZER_VERSION
    format: int = SEGMENT_FORMAT
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def read(cls, folder: Path) -> SegmentInfo:
        try:
            data = json.loads((folder / META).read_text(encoding="utf-8"))
            info = cls(**data)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, TypeError) as exc:
            raise IndexCorruptError(
                f"{folder / META} is not readable ({exc})", "run `findling verify`"
            ) from exc
        if info.format != SEGMENT_FORMAT or info.analyzer != ANALYZER_VERSION:
            raise IndexCorruptError(
                f"segment {folder.name} has format {info.format}/{info.analyzer}, this findling "
                f"reads {SEGMENT_FORMAT}/{ANALYZER_VERSION}",
                "rebuild with `findling index --rebuild`",
            )
        return info


@dataclass(frozen=True)
class Excerpt:
    """A piece of a document's text, with what a hit shows of the document."""

    id: str
    path: str
    title: str
    modified: str
    metadata: dict[str, Any]
    pages: tuple[int, ...]  # where each page starts (paged documents only)
    text: str


@dataclass(frozen=True)
class SegmentData:
    """Everything a new segment is written from, rows in document order."""

    documents: Sequence[Document]
    sentences: Sequence[Sentence]  # each document's sentences, in order, documents in order
    ids: np.ndarray
    vectors: np.ndarray
    postings: Postings


def write_segment(
    folder: Path, name: str, data: SegmentData, ann_threshold: int, quantize: Quantize = "none"
) -> SegmentInfo:
    """Write a complete segment into the (new, empty) ``folder``; ``segment.json`` goes last."""
    languages = sorted({s.language for s in data.sentences})
    rows = _sentence_rows(data.documents, data.sentences, languages)
    first, count = _document_ranges(rows, len(data.documents))
    with _new_database(folder / DOCUMENTS) as db:
        _insert_documents(db, data.documents, first, count, 0)
    return _finish(
        folder,
        name,
        data.ids,
        rows,
        data.postings,
        languages,
        _Vectors(
            len(data.vectors),
            data.vectors.shape[1],
            lambda into: write_store(into, data.vectors, ann_threshold, quantize),
        ),
    )


def extend_segment(folder: Path, name: str, base: Segment, data: SegmentData) -> SegmentInfo:
    """Write one segment holding ``base``'s rows (an fp32 graph segment none of whose documents
    is deleted) and then ``data``'s. Its graph is ``base``'s with only ``data``'s vectors
    inserted: a large run grows one graph rather than starting one per segment, for the same
    graph work (see defaults.GRAPH_SENTENCES). Nothing of ``base`` is analysed again."""
    languages = sorted(set(base.info.languages) | {s.language for s in data.sentences})
    old = np.array(base.sentences)
    codes = np.array([languages.index(lang) for lang in base.info.languages] or [0])
    old["language"] = codes[old["language"]]
    new = _sentence_rows(data.documents, data.sentences, languages)
    new["doc"] += base.info.documents
    rows = np.concatenate([old, new])
    first, count = _document_ranges(rows, base.info.documents + len(data.documents))
    with _new_database(folder / DOCUMENTS) as db:
        kept = [(r, r, int(first[r]), int(count[r])) for r in range(base.info.documents)]
        _copy_documents(db, base, kept)
        _insert_documents(db, data.documents, first, count, base.info.documents)
    everything = [
        (base.postings, np.ones(len(base), dtype=bool)),
        (data.postings, np.ones(len(data.sentences), dtype=bool)),
    ]
    return _finish(
        folder,
        name,
        np.concatenate([np.asarray(base.ids), data.ids]),
        rows,
        Postings.merge(everything),
        languages,
        _Vectors(
            len(base) + len(data.vectors),
            base.info.dimension,
            lambda into: grow_store(into, base.folder / GRAPH, data.vectors),
        ),
    )


def _insert_documents(
    db: sqlite3.Connection,
    documents: Sequence[Document],
    first: np.ndarray,
    count: np.ndarray,
    offset: int,
) -> None:
    """Insert ``documents`` as rows ``offset`` on (``first``/``count``: every row's sentences)."""
    db.executemany(
        "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (
                row,
                *_document_values(doc),
                int(first[row]),
                int(count[row]),
                _pages_value(doc.pages),
            )
            for row, doc in enumerate(documents, start=offset)
        ),
    )


@dataclass(frozen=True)
class _Vectors:
    """A segment's vectors as :func:`_finish` writes them: how many, their dimension, and what
    writes the store into a folder (returning its kind and files)."""

    count: int
    dimension: int
    write: Callable[[Path], tuple[str, list[str]]]


def _finish(
    folder: Path,
    name: str,
    ids: np.ndarray,
    rows: np.ndarray,
    postings: Postings,
    languages: list[str],
    vectors: _Vectors,
) -> SegmentInfo:
    if not (len(ids) == len(rows) == vectors.count == len(postings.lengths)):
        raise ValueError("a segment's ids, sentences, vectors and postings must agree in length")
    np.save(folder / IDS, np.asarray(ids, dtype=np.int64), allow_pickle=False)
    np.save(folder / SENTENCES, rows, allow_pickle=False)
    postings.save(folder)
    kind, vector_files = vectors.write(folder)
    documents = int(rows["doc"].max()) + 1 if len(rows) else 0
    files = [IDS, SENTENCES, DOCUMENTS, *Postings.files(), *vector_files]
    for file in files:
        fsync_path(folder / file)
    info = SegmentInfo(
        name=name,
        sentences=len(ids),
        documents=documents,
        dimension=vectors.dimension,
        first_id=int(ids[0]) if len(ids) else 0,
        last_id=int(ids[-1]) if len(ids) else -1,
        vector_index=kind,
        languages=languages,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        files={file: sha256_file(folder / file) for file in files},
    )
    (folder / META).write_text(json.dumps(info.to_json(), indent=1), encoding="utf-8")
    fsync_path(folder / META)
    fsync_path(folder)
    return info


def merge_segments(
    folder: Path,
    name: str,
    parts: Sequence[tuple[Segment, np.ndarray]],
    ann_threshold: int,
    quantize: Quantize = "none",
) -> SegmentInfo:
    """Write one segment holding the live documents of ``parts`` (segment, deleted-document
    mask), in order. Nothing is analysed or embedded again: rows are copied."""
    languages = sorted({lang for segment, _ in parts for lang in segment.info.languages})
    ids, rows, vectors, postings_parts, kept_documents = [], [], [], [], []
    offset = 0
    for segment, deleted in parts:
        keep = ~deleted[segment.sentences["doc"]]
        renumber = np.cumsum(~deleted) - 1 + offset
        part = np.array(segment.sentences[keep])
        part["doc"] = renumber[part["doc"]]
        codes = np.array([languages.index(lang) for lang in segment.info.languages] or [0])
        part["language"] = codes[part["language"]]
        rows.append(part)
        ids.append(np.asarray(segment.ids[keep]))
        vectors.append(segment.store.vectors(np.flatnonzero(keep)))
        postings_parts.append((segment.postings, keep))
        kept_documents.append((segment, np.flatnonzero(~deleted)))
        offset += int((~deleted).sum())
    all_rows = np.concatenate(rows)
    first, count = _document_ranges(all_rows, offset)
    with _new_database(folder / DOCUMENTS) as db:
        new_row = 0
        for segment, live in kept_documents:
            mapping = [
                (int(old), new_row + i, int(first[new_row + i]), int(count[new_row + i]))
                for i, old in enumerate(live.tolist())
            ]
            _copy_documents(db, segment, mapping)
            new_row += len(mapping)
    merged = np.concatenate(vectors)
    return _finish(
        folder,
        name,
        np.concatenate(ids),
        all_rows,
        Postings.merge(postings_parts),
        languages,
        _Vectors(
            len(merged),
            merged.shape[1],
            lambda into: write_store(into, merged, ann_threshold, quantize),
        ),
    )


def _copy_documents(
    db: sqlite3.Connection, segment: Segment, mapping: list[tuple[int, int, int, int]]
) -> None:
    """Copy documents inside SQLite: (old row, new row, first sentence, sentences) each."""
    columns = ", ".join(_DOCUMENT_COLUMNS)
    values = ", ".join(f"d.{c}" for c in _DOCUMENT_COLUMNS)
    pages = f"d.{PAGES}" if segment.has_pages else "''"
    db.execute("ATTACH DATABASE ? AS source", (segment.database_uri(),))
    try:
        db.execute("CREATE TEMP TABLE moved (old INTEGER PRIMARY KEY, new, first, count)")
        db.executemany("INSERT INTO moved VALUES (?, ?, ?, ?)", mapping)
        db.execute(
            f"INSERT INTO documents (row, {columns}, first, count, {PAGES}) "
            f"SELECT m.new, {values}, m.first, m.count, {pages} "
            "FROM source.documents d JOIN moved m ON d.row = m.old ORDER BY m.new"
        )
        db.execute("DROP TABLE moved")
        db.commit()
    finally:
        db.execute("DETACH DATABASE source")


def _sentence_rows(
    documents: Sequence[Document], sentences: Sequence[Sentence], languages: list[str]
) -> np.ndarray:
    row_of = {doc.id: row for row, doc in enumerate(documents)}
    code = {lang: i for i, lang in enumerate(languages)}
    rows = np.zeros(len(sentences), dtype=SENTENCE_DTYPE)
    for i, s in enumerate(sentences):
        rows[i] = (
            row_of[s.doc_id],
            s.paragraph,
            s.sentence,
            s.start,
            s.end,
            s.paragraph_start,
            s.paragraph_end,
            code[s.language],
        )
    return rows


def _document_ranges(rows: np.ndarray, documents: int) -> tuple[np.ndarray, np.ndarray]:
    """Each document's first sentence row and number of sentences (rows are grouped by doc)."""
    count = np.bincount(rows["doc"], minlength=documents) if len(rows) else np.zeros(documents)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]) if documents else np.zeros(0)
    return first.astype(np.int64), count.astype(np.int64)


def _document_values(doc: Document) -> tuple[Any, ...]:
    metadata = json.dumps(doc.metadata, ensure_ascii=False, sort_keys=True)
    return (doc.id, doc.path, doc.title, doc.modified, doc.sha256, doc.language, metadata, doc.text)


def _pages_value(pages: Sequence[int]) -> str:
    return json.dumps(list(pages)) if pages else ""


def _read_pages(value: str) -> tuple[int, ...]:
    return tuple(json.loads(value)) if value else ()


def _uri(path: Path, mode: str) -> str:
    return f"file:{pathname2url(str(path.resolve()))}?mode={mode}"


class _new_database:
    """A new SQLite file for a segment's documents, written without a journal: the segment is
    not visible to anyone until its folder is complete and committed."""

    def __init__(self, path: Path) -> None:
        # URI mode also lets ATTACH (merges) open other segments read-only
        self.db = sqlite3.connect(_uri(path, "rwc"), uri=True)
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute(
            "CREATE TABLE documents (row INTEGER PRIMARY KEY, id TEXT NOT NULL, "
            "path TEXT NOT NULL, title TEXT NOT NULL, modified TEXT NOT NULL, "
            "sha256 TEXT NOT NULL, language TEXT NOT NULL, metadata TEXT NOT NULL, "
            "text TEXT NOT NULL, first INTEGER NOT NULL, count INTEGER NOT NULL, "
            f"{PAGES} TEXT NOT NULL DEFAULT '')"
        )

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.db.execute("CREATE INDEX documents_id ON documents (id)")
                # documents are found by id or by public id (the path as given): without this
                # index every lookup (each PUT and DELETE) read every row of every segment
                # (41 ms per DELETE at a million sentences)
                self.db.execute("CREATE INDEX documents_path ON documents (path)")
                self.db.commit()
        finally:
            self.db.close()


def _glob_matches(text: str, pattern: str) -> int:
    return int(fnmatch.fnmatch(text, pattern))


# functions the documents table can be queried with (filters.py): a glob as fnmatch matches it,
# and the day or the UTC instant of an ISO date (NULL for other values), as comparable text
SQL_FUNCTIONS: dict[str, tuple[int, Any]] = {
    "glob_matches": (2, _glob_matches),
    "filter_day": (1, day_of),
    "filter_instant": (1, instant_of),
}


class Segment:
    """An open segment: memory-mapped arrays, the vector store, and its documents on demand.

    Thread-safe for reading; the documents database is opened read-only and immutable.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.info = SegmentInfo.read(folder)
        try:
            self.ids = mapped(folder / IDS)
            self.sentences = mapped(folder / SENTENCES)
        except FileNotFoundError:
            raise  # pruned by a commit after the reader read CURRENT: it reads CURRENT again
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"cannot read segment {folder} ({exc})", "run `findling verify`"
            ) from exc
        self.postings = Postings.load(folder)
        self.store = VectorStore.open(folder, self.info.vector_index)
        if not len(self.ids) == len(self.sentences) == len(self.store) == self.info.sentences:
            raise IndexCorruptError(
                f"segment {folder} is inconsistent: {len(self.ids)} ids, "
                f"{len(self.sentences)} sentences, {len(self.store)} vectors",
                "run `findling verify`",
            )
        self._lock = threading.Lock()
        # connected now: once open, the segment stays readable even if a commit prunes it
        if not (folder / DOCUMENTS).is_file():
            raise FileNotFoundError(folder / DOCUMENTS)
        self._db = sqlite3.connect(self.database_uri(), uri=True, check_same_thread=False)
        for function, (arity, implementation) in SQL_FUNCTIONS.items():
            self._db.create_function(function, arity, implementation, deterministic=True)
        self.cache: dict[str, Any] = {}  # derived data readers keep (e.g. filter masks)
        columns = {str(c[1]) for c in self._query("PRAGMA table_info(documents)")}
        self.has_pages = PAGES in columns  # segments written before page numbers lack it

    @property
    def name(self) -> str:
        return self.info.name

    def __len__(self) -> int:
        return self.info.sentences

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.DatabaseError as exc:
                raise IndexCorruptError(
                    f"cannot read the documents of segment {self.folder} ({exc})",
                    "run `findling verify`",
                ) from exc

    def database_uri(self) -> str:
        """The documents database, read-only and immutable (no locks: it never changes)."""
        return _uri(self.folder / DOCUMENTS, "ro") + "&immutable=1"

    def close(self) -> None:
        """Close the documents database now (a segment nobody reads any more is closed when
        it is freed; see SegmentCache.keep_only)."""
        with self._lock:
            self._db.close()

    def document_values(self, row: int) -> tuple[Any, ...]:
        """One document's stored columns (id, path, title, ..., text), as written."""
        found = self._query(
            f"SELECT {', '.join(_DOCUMENT_COLUMNS)} FROM documents WHERE row = ?", (int(row),)
        )
        if not found:
            raise IndexCorruptError(f"segment {self.name} has no document row {row}")
        return found[0]

    def document(self, row: int) -> Document:
        values = dict(zip(_DOCUMENT_COLUMNS, self.document_values(row), strict=True))
        values["metadata"] = json.loads(values["metadata"])
        return Document(**values, pages=self._pages(row))

    def _pages(self, row: int) -> tuple[int, ...]:
        if not self.has_pages:
            return ()
        found = self._query(f"SELECT {PAGES} FROM documents WHERE row = ?", (int(row),))
        return _read_pages(found[0][0]) if found else ()

    def sentence_range(self, row: int) -> tuple[int, int]:
        """A document's first sentence row and its number of sentences."""
        found = self._query("SELECT first, count FROM documents WHERE row = ?", (int(row),))
        if not found:
            raise IndexCorruptError(f"segment {self.name} has no document row {row}")
        return int(found[0][0]), int(found[0][1])

    def titles(self, rows: Sequence[int]) -> list[tuple[str, str, str]]:
        """(id, path, title) of the documents at ``rows``, in that order."""
        found: dict[int, tuple[str, str, str]] = {}
        for begin in range(0, len(rows), 500):
            chunk = [int(r) for r in rows[begin : begin + 500]]
            marks = ", ".join("?" * len(chunk))
            for row, doc_id, path, title in self._query(
                f"SELECT row, id, path, title FROM documents WHERE row IN ({marks})", chunk
            ):
                found[int(row)] = (str(doc_id), str(path), str(title))
        return [found[int(r)] for r in rows]

    def find_documents(self, ids: Sequence[str]) -> list[tuple[str, int, str]]:
        """(key, row, sha256) of the documents whose id, or public id (see
        documents.public_id), is one of ``ids``, live or deleted (a segment may hold an id
        more than once: the caller knows which rows are deleted). ``key`` is the one asked for."""
        wanted = set(ids)
        found = []
        for begin in range(0, len(ids), 400):  # SQLite limits the parameters of one query
            chunk = list(ids[begin : begin + 400])
            marks = ", ".join("?" * len(chunk))
            for doc_id, path, row, sha256 in self._query(
                f"SELECT id, path, row, sha256 FROM documents WHERE id IN ({marks}) "
                f"OR path IN ({marks})",
                chunk + chunk,
            ):
                key = doc_id if doc_id in wanted else public_id(doc_id, path)
                if key in wanted:
                    found.append((str(key), int(row), str(sha256)))
        return found

    def document_ids(self, rows: Sequence[int]) -> dict[int, str]:
        """Ids of the documents at ``rows``."""
        found: dict[int, str] = {}
        for begin in range(0, len(rows), 500):
            chunk = [int(r) for r in rows[begin : begin + 500]]
            marks = ", ".join("?" * len(chunk))
            for row, doc_id in self._query(
                f"SELECT row, id FROM documents WHERE row IN ({marks})", chunk
            ):
                found[int(row)] = str(doc_id)
        return found

    def catalogue(self) -> Iterator[tuple[int, str, str, str, str, int]]:
        """(row, id, path, sha256, language, sentences) of every document."""
        for row, doc_id, path, sha256, language, count in self._query(
            "SELECT row, id, path, sha256, language, count FROM documents ORDER BY row"
        ):
            yield int(row), str(doc_id), str(path), str(sha256), str(language), int(count)

    def excerpt(self, row: int, start: int, end: int) -> Excerpt:
        """What a hit shows of its document, with the characters ``start:end`` of its text."""
        pages = PAGES if self.has_pages else "''"
        found = self._query(
            f"SELECT id, path, title, modified, metadata, {pages}, substr(text, ?, ?) "
            "FROM documents WHERE row = ?",
            (int(start) + 1, int(end) - int(start), int(row)),
        )
        if not found:
            raise IndexCorruptError(f"segment {self.name} has no document row {row}")
        doc_id, path, title, modified, metadata, page_starts, text = found[0]
        return Excerpt(
            str(doc_id),
            str(path),
            str(title),
            str(modified),
            json.loads(metadata),
            _read_pages(page_starts),
            str(text),
        )

    def select_documents(self, where: str, parameters: Sequence[Any]) -> np.ndarray:
        """Rows of the documents matching an SQL condition over the documents table."""
        rows = self._query(f"SELECT row FROM documents WHERE {where}", parameters)
        return np.array([r[0] for r in rows], dtype=np.int64)

    def verify(self) -> list[str]:
        """Problems found by re-reading every file against its recorded checksum."""
        problems = []
        for file, expected in self.info.files.items():
            path = self.folder / file
            if not path.is_file():
                problems.append(f"{path} is missing")
            elif sha256_file(path) != expected:
                problems.append(f"{path} is damaged (checksum differs from segment.json)")
        return problems
