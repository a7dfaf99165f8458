"""Reading files into documents and splitting documents into sentence passages with offsets."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from indexer.errors import SourceNotFoundError

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_LINE_BREAK = re.compile(r"\r?\n\s*")
_MD_HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)


@dataclass(frozen=True)
class Document:
    """A source file's full text. ``id`` is its path relative to the indexed root."""

    id: str
    path: str
    text: str
    sha256: str
    language: str


@dataclass(frozen=True)
class Passage:
    """One sentence: where it stands in its document and in its paragraph.

    Offsets count Unicode code points of the decoded document text, end exclusive, so
    ``document.text[start:end] == text``.
    """

    doc_id: str
    paragraph: int
    sentence: int
    start: int
    end: int
    paragraph_start: int
    paragraph_end: int
    text: str
    language: str


@dataclass(frozen=True)
class Skipped:
    """A file that was not indexed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class ReadResult:
    documents: list[Document]
    skipped: list[Skipped]


def check_paths(paths: Iterable[Path]) -> None:
    """Fail early, before any model is loaded, if a path to index does not exist."""
    for path in paths:
        if not path.exists():
            raise SourceNotFoundError(
                f"no such file or folder: {path}", "check the path, or index the shipped `seeds/`"
            )


def discover_files(paths: Iterable[Path]) -> Iterator[tuple[Path, Path]]:
    """Yield ``(file, root)`` for every supported file below the given files and folders."""
    paths = list(paths)
    check_paths(paths)
    for path in paths:
        if path.is_file():
            yield path, path.parent
            continue
        for file in sorted(path.rglob("*")):
            if file.is_file() and file.suffix.lower() in SUFFIXES:
                yield file, path


def read_documents(paths: Iterable[Path]) -> ReadResult:
    """Read every ``.txt``/``.md`` file below ``paths`` as UTF-8; undecodable files are skipped."""
    documents: list[Document] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for file, root in discover_files(paths):
        resolved = file.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        raw = file.read_bytes()
        try:
            # utf-8-sig: a BOM is not text, so offsets start after it
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            skipped.append(Skipped(str(file), f"not valid UTF-8 (byte {exc.start})"))
            continue
        if not text.strip():
            skipped.append(Skipped(str(file), "empty"))
            continue
        doc_id = file.relative_to(root).as_posix() if root != file.parent else file.name
        documents.append(
            Document(
                id=_unique_id(doc_id, documents),
                path=str(file),
                text=text,
                sha256=hashlib.sha256(raw).hexdigest(),
                language=detect_language(text),
            )
        )
    return ReadResult(documents, skipped)


def _unique_id(doc_id: str, documents: list[Document]) -> str:
    # two roots may hold the same relative name; ids must stay unique
    taken = {d.id for d in documents}
    candidate, n = doc_id, 2
    while candidate in taken:
        candidate, n = f"{doc_id}#{n}", n + 1
    return candidate


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Return ``(start, end)`` of each paragraph, whitespace trimmed.

    Paragraphs are separated by blank lines. A text without any blank line (one paragraph per
    line, as many exports write it) is split at every line break instead. Markdown headings
    always stand alone.
    """
    separator = _BLANK_LINE if _BLANK_LINE.search(text) else _LINE_BREAK
    spans: list[tuple[int, int]] = []
    pos = 0
    for match in [*separator.finditer(text), None]:
        end = match.start() if match else len(text)
        spans.extend(_split_headings(text, pos, end))
        pos = match.end() if match else len(text)
    return [_trim(text, s, e) for s, e in spans if text[s:e].strip()]


def _split_headings(text: str, start: int, end: int) -> list[tuple[int, int]]:
    block = text[start:end]
    cuts = [m.start() for m in _MD_HEADING.finditer(block)]
    if not cuts:
        return [(start, end)]
    spans, bounds = [], sorted({0, *cuts, len(block)})
    for a, b in pairwise(bounds):
        line_end = block.find("\n", a, b) if a in cuts else -1
        if line_end != -1:  # the heading line, then the rest of the block
            spans += [(start + a, start + line_end), (start + line_end, start + b)]
        else:
            spans.append((start + a, start + b))
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    segment = text[start:end]
    lead = len(segment) - len(segment.lstrip())
    trail = len(segment) - len(segment.rstrip())
    return start + lead, end - trail


@lru_cache(maxsize=16)
def _segmenter(language: str) -> Any:
    import pysbd
    from pysbd.languages import LANGUAGE_CODES

    # pysbd handles German ordinals ("3. Oktober"), "z. B." and quotes spanning sentences,
    # which syntok splits wrongly; unknown languages fall back to English rules
    return pysbd.Segmenter(
        language=language if language in LANGUAGE_CODES else "en", clean=False, char_span=True
    )


def sentence_spans(paragraph: str, language: str) -> list[tuple[int, int]]:
    """Return ``(start, end)`` of each sentence inside ``paragraph``, whitespace trimmed."""
    spans = []
    for span in _segmenter(language).segment(paragraph):
        start, end = _trim(paragraph, span.start, span.end)
        if end > start:
            spans.append((start, end))
    return spans or [_trim(paragraph, 0, len(paragraph))]


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language (py3langid ships its own model)."""
    import py3langid

    code, _ = py3langid.classify(text[:5000])
    return str(code)


def split_document(document: Document) -> list[Passage]:
    """Split a document into sentence passages, in reading order."""
    passages: list[Passage] = []
    for p_no, (p_start, p_end) in enumerate(paragraph_spans(document.text)):
        paragraph = document.text[p_start:p_end]
        # mixed-language documents exist; short texts are too little evidence to judge
        language = detect_language(paragraph) if len(paragraph) >= 80 else document.language
        for s_no, (s_start, s_end) in enumerate(sentence_spans(paragraph, language)):
            text = paragraph[s_start:s_end]
            passages.append(
                Passage(
                    doc_id=document.id,
                    paragraph=p_no,
                    sentence=s_no,
                    start=p_start + s_start,
                    end=p_start + s_end,
                    paragraph_start=p_start,
                    paragraph_end=p_end,
                    text=text,
                    language=detect_language(text) if len(text) >= 60 else language,
                )
            )
    return passages
