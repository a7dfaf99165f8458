"""A snapshot: the files of one index generation, written, and opened back verified.

A generation folder holds ``manifest.json`` (written last), ``vectors.faiss`` (FAISS's own
format), ``passages.jsonl`` (one sentence per line; a passage's FAISS id is its line number),
``documents.jsonl`` (id, path, hash, language and full text of each source) and ``bm25/``
(the lexical index as plain .npy/.json files). No pickle anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexer.documents import Document, Sentence
from indexer.errors import IndexCorruptError
from indexer.fsutil import sha256_file
from indexer.lexical import LexicalIndex
from indexer.manifest import MANIFEST_NAME, Manifest, SourceEntry, read_manifest, verify_files
from indexer.recipe import VectorRecipe
from indexer.store import VectorStore
from indexer.versions import findling_version, package_version

VECTORS = "vectors.faiss"
PASSAGES = "passages.jsonl"
DOCUMENTS = "documents.jsonl"
LEXICAL = "bm25"


@dataclass(frozen=True)
class Snapshot:
    """Everything a search needs from one generation, in memory.

    ``sentences`` maps each sentence id (its FAISS id, stable across generations) to the sentence;
    ``ids`` lists the ids in file order, which is the lexical index's row order.
    """

    generation: str
    manifest: Manifest
    store: VectorStore
    lexical: LexicalIndex
    sentences: dict[int, Sentence]
    ids: np.ndarray
    documents: dict[str, Document]

    @property
    def recipe(self) -> VectorRecipe:
        """What the stored vectors are; an index keeps the recipe it was built with."""
        return self.manifest.recipe


def write_snapshot(
    folder: Path,
    generation: str,
    model: str,
    documents: list[Document],
    passages: list[tuple[int, Sentence]],
    store: VectorStore,
    recipe: VectorRecipe,
) -> None:
    """Write a complete generation into ``folder``; the manifest goes last.

    ``passages`` pairs each sentence with its id; ``store`` holds one vector per sentence id.
    """
    ids = np.array([pid for pid, _ in passages], dtype=np.int64)
    store.save(folder / VECTORS)
    LexicalIndex.build([p.text for _, p in passages], [p.language for _, p in passages]).save(
        folder / LEXICAL
    )
    _write_jsonl(folder / PASSAGES, (_passage_row(pid, p) for pid, p in passages))
    _write_jsonl(folder / DOCUMENTS, (_document_row(d) for d in documents))
    counts: dict[str, int] = {}
    for _, p in passages:
        counts[p.doc_id] = counts.get(p.doc_id, 0) + 1
    manifest = Manifest(
        model=model,
        dimension=store.dimension,
        documents=len(documents),
        passages=len(passages),
        next_id=int(ids.max()) + 1 if len(ids) else 0,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        generation=generation,
        splitter=f"pysbd=={package_version('pysbd')}",
        findling_version=findling_version(),
        vectors=recipe.describe(),
        recipe=recipe,
        vector_index=store.kind,
        sources=[
            SourceEntry(d.id, d.path, d.sha256, d.language, counts.get(d.id, 0)) for d in documents
        ],
        files={
            path.relative_to(folder).as_posix(): sha256_file(path)
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        },
    )
    (folder / MANIFEST_NAME).write_text(
        json.dumps(manifest.to_json(), ensure_ascii=False, indent=2), encoding="utf-8"
    )


def open_snapshot(folder: Path) -> Snapshot:
    """Read and verify a generation written by :func:`write_snapshot`."""
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    store = VectorStore.load(folder / VECTORS)
    documents = {row["id"]: _document_from_row(row) for row in _read_jsonl(folder / DOCUMENTS)}
    texts = {doc_id: document.text for doc_id, document in documents.items()}
    rows = [_passage_from_row(row, texts) for row in _read_jsonl(folder / PASSAGES)]
    passages = dict(rows)
    if len(store) != len(passages) or store.dimension != manifest.dimension:
        raise IndexCorruptError(
            f"{folder} is inconsistent: {len(store)} vectors of dimension {store.dimension}, "
            f"{len(passages)} passages, manifest dimension {manifest.dimension}",
            "rebuild with `findling index`",
        )
    lexical = LexicalIndex.load(folder / LEXICAL)
    ids = np.array([pid for pid, _ in rows], dtype=np.int64)
    return Snapshot(folder.name, manifest, store, lexical, passages, ids, documents)


def _passage_row(pid: int, p: Sentence) -> dict[str, Any]:
    row = {"id": pid, **asdict(p)}
    del row["text"]  # the document text holds it; offsets recover it exactly
    return row


def _passage_from_row(row: dict[str, Any], texts: dict[str, str]) -> tuple[int, Sentence]:
    try:
        fields = {k: v for k, v in row.items() if k != "id"}
        text = texts[row["doc_id"]][row["start"] : row["end"]]
        return int(row["id"]), Sentence(**fields, text=text)
    except (KeyError, TypeError) as exc:
        raise IndexCorruptError(
            f"a passage row does not fit the index ({exc})", "rebuild with `findling index`"
        ) from exc


def _document_row(d: Document) -> dict[str, Any]:
    return asdict(d)


def _document_from_row(row: dict[str, Any]) -> Document:
    try:
        return Document(**row)
    except TypeError as exc:
        raise IndexCorruptError(
            f"a document row does not fit the index ({exc})", "rebuild with `findling index`"
        ) from exc


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
