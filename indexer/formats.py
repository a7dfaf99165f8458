"""Turning file contents into text: plain text and Markdown, HTML, PDF, Word, OpenDocument,
EPUB and JSONL records.

Offsets in findling count characters of the text these functions return: for .txt/.md that is
the file itself, for HTML the extracted main text, for PDF the text layer (pages separated by
blank lines), for .docx/.odt/.epub their paragraphs and headings separated by blank lines (see
:mod:`indexer.packages`), for JSONL each record's ``text``.
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic_core

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
JSONL_SUFFIXES = frozenset({".jsonl"})
DOCX_SUFFIXES = frozenset({".docx"})
ODT_SUFFIXES = frozenset({".odt"})
EPUB_SUFFIXES = frozenset({".epub"})
SUFFIXES = (
    TEXT_SUFFIXES
    | HTML_SUFFIXES
    | PDF_SUFFIXES
    | JSONL_SUFFIXES
    | DOCX_SUFFIXES
    | ODT_SUFFIXES
    | EPUB_SUFFIXES
)


PAGE_SEPARATOR = "\n\n"  # between the pages of a PDF: a blank line, so paragraphs end with pages


class FormatError(ValueError):
    """A file (or one record of it) cannot be turned into text; the message says why."""


@dataclass(frozen=True)
class Extracted:
    """Text taken from a file or record, with what else it told about itself."""

    text: str
    key: str = ""  # a record's own id inside its file (JSONL)
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    pages: tuple[int, ...] = ()  # where each page starts in ``text`` (PDF), see page_starts


def extract(raw: bytes, suffix: str) -> Iterator[Extracted | FormatError]:
    """The texts in a file's bytes; a bad JSONL line yields a FormatError and the rest goes on."""
    if suffix in PDF_SUFFIXES:
        yield _parsed("PDF", _pdf, raw)
    elif suffix in DOCX_SUFFIXES | ODT_SUFFIXES | EPUB_SUFFIXES:
        from indexer.packages import read_docx, read_epub, read_odt

        if suffix in DOCX_SUFFIXES:
            kind, read = "Word document", read_docx
        elif suffix in ODT_SUFFIXES:
            kind, read = "OpenDocument text", read_odt
        else:
            kind, read = "EPUB", read_epub
        yield _parsed(kind, lambda data: _titled(*read(data)), raw)
    elif suffix in HTML_SUFFIXES:
        yield _html(_decode(raw))
    elif suffix in JSONL_SUFFIXES:
        yield from _jsonl(_decode(raw))
    else:
        yield Extracted(_decode(raw))


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise FormatError("binary file (contains NUL bytes)")
    try:
        # utf-8-sig: a BOM is not text, so offsets start after it
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not valid UTF-8 (byte {exc.start})") from None


def _html(markup: str) -> Extracted:
    import trafilatura

    # the main text only: navigation, scripts, styles and boilerplate are left out
    text = trafilatura.extract(markup, include_comments=False, include_tables=True)
    metadata = trafilatura.extract_metadata(markup)
    title = (metadata.title or "") if metadata else ""
    return Extracted(text or "", title=title)


def _titled(text: str, title: str) -> Extracted:
    return Extracted(text, title=title)


def _parsed(kind: str, parse: Callable[[bytes], Extracted], raw: bytes) -> Extracted:
    """``parse(raw)``, with any failure of the parser turned into a :class:`FormatError`."""
    try:
        return parse(raw)
    except FormatError:
        raise
    except Exception as exc:
        # a damaged file can make a parser fail in any way (zlib, XML, its own checks, a bug
        # it trips over); one bad file must never stop a run
        detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # no quotes
        reason = str(detail) or type(exc).__name__
        raise FormatError(f"not a readable {kind} ({reason})") from None


def _pdf(raw: bytes) -> Extracted:
    import logging

    from pypdf import PdfReader

    # pypdf logs every repair it makes; the skip warning (or nothing) is what users need
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(io.BytesIO(raw))
    pages = [(page.extract_text() or "").strip() for page in reader.pages]
    title = str(reader.metadata.title or "") if reader.metadata else ""
    if pages and not any(pages):
        raise FormatError(
            f"no text layer in its {len(pages)} page(s): probably a scanned PDF "
            "(findling does not run OCR; run one such as ocrmypdf first)"
        )
    text = PAGE_SEPARATOR.join(p for p in pages if p)
    return Extracted(text, title=title, pages=page_starts(pages))


def page_starts(pages: list[str]) -> tuple[int, ...]:
    """Where each page starts in the pages' texts joined by PAGE_SEPARATOR, empty ones left
    out: an empty page starts where the next page with text does, so the page of an offset is
    the number of pages starting at or before it (:func:`page_of`)."""
    starts, at = [], 0
    for page in pages:
        starts.append(at)
        if page:
            at += len(page) + len(PAGE_SEPARATOR)
    return tuple(starts)


def page_of(starts: Sequence[int], offset: int) -> int | None:
    """The page (from 1) holding the character at ``offset``; None for a text without pages."""
    return bisect.bisect_right(starts, offset) if starts else None


def parse_json(data: str | bytes) -> Any:
    """Untrusted JSON (an HTTP body, a JSONL line) as Python values, or a FormatError.

    Stricter than :func:`json.loads`: text must be UTF-8 without lone surrogates
    (``"\\ud800"`` cannot be stored or shown), and nesting stops at 200 levels, long before
    Python's recursion limit.
    """
    try:
        return pydantic_core.from_json(data)
    except ValueError as exc:
        raise FormatError(f"not JSON ({exc})") from None


def _jsonl(text: str) -> Iterator[Extracted | FormatError]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except FormatError as exc:
            yield FormatError(f"line {number}: {exc}")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            yield FormatError(f'line {number}: needs an object with a "text" string')
            continue
        key = str(record.get("id", number))
        metadata = {k: v for k, v in record.items() if k not in ("id", "text")}
        yield Extracted(
            record["text"], key=key, title=str(record.get("title", "")), metadata=metadata
        )
