"""Reading files into documents and splitting documents into sentence passages with offsets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.defaults import MAX_FILE_MB, MAX_METADATA_DEPTH
from indexer.errors import InvalidRequestError, SourceNotFoundError
from indexer.formats import SUFFIXES, Extracted, FormatError, extract

if TYPE_CHECKING:
    from indexer.identifier import BatchIdentifier

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = int(MAX_FILE_MB * 1024 * 1024)
# characters language detection reads: its cost grows with the text, and a paragraph's first
# 300 characters named the same language as the whole paragraph for all 376 paragraphs of
# XQuAD dev, the seeds and the hold-out check
DOCUMENT_SAMPLE = 1000
PARAGRAPH_SAMPLE = 300
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_LINE_BREAK = re.compile(r"\r?\n\s*")
_MD_HEADING = re.compile(r"^#{1,6}\s", re.MULTILINE)
# ISO 639-1 (or 639-3) code, optionally with region or script subtags: de, en-GB, pt_BR, zh-Hant
LANGUAGE_TAG = r"^([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8}){0,3}$"
_LANGUAGE_TAG = re.compile(LANGUAGE_TAG)
# what every findling collection folder holds (generations.py): an index kept inside the folder
# it indexes (`findling index .` beside ./index/) must not read its own files as documents
INDEX_MARKERS = ("CURRENT", ".lock")


@dataclass(frozen=True)
class Document:
    """A source's full text. ``id`` is the resolved file path (plus ``#key`` for JSONL records),
    ``path`` the file as it was given."""

    id: str
    path: str
    text: str
    sha256: str
    language: str
    title: str = ""
    modified: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    pages: tuple[int, ...] = ()  # where each page starts in ``text`` (PDFs; see formats.py)


@dataclass(frozen=True)
class Sentence:
    """One sentence: where it stands in its document and in its paragraph.

    Offsets count Unicode code points of the document text, end exclusive, so
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
    """A file (or record) that was not indexed, and why. ``id`` is the document id it has."""

    path: str
    reason: str
    id: str = ""


@dataclass(frozen=True)
class ReadResult:
    documents: list[Document]
    skipped: list[Skipped]
    roots: list[str]  # resolved paths that were read: what a prune may remove documents under


def check_paths(paths: Iterable[Path]) -> None:
    """Fail early, before any model is loaded, if a path to index does not exist."""
    for path in paths:
        if not path.exists():
            raise SourceNotFoundError(
                f"no such file or folder: {path}", "check the path, or index the shipped `seeds/`"
            )


def discover_files(paths: Iterable[Path]) -> Iterator[Path | Skipped]:
    """Every supported file below the given files and folders, or why one was passed over."""
    paths = list(paths)
    check_paths(paths)
    for path in paths:
        if path.is_dir():
            yield from _walk(path)
        else:
            yield path  # a file named explicitly is read whatever its suffix says


def _walk(root: Path) -> Iterator[Path | Skipped]:
    real_root = root.resolve()
    visited = {real_root}
    for folder, subfolders, files in os.walk(root, followlinks=True):
        kept = []
        for name in sorted(subfolders):
            if name.startswith("."):  # .git, .venv and friends are not documents
                continue
            if all(Path(folder, name, marker).is_file() for marker in INDEX_MARKERS):
                continue
            problem = _link_problem(Path(folder, name), real_root, visited)
            if isinstance(problem, Skipped):
                yield problem
            else:
                visited.add(problem)
                kept.append(name)
        subfolders[:] = kept
        for name in sorted(files):
            file = Path(folder, name)
            if name.startswith(".") or file.suffix.lower() not in SUFFIXES:
                continue
            problem = _link_problem(file, real_root, set())
            yield problem if isinstance(problem, Skipped) else file


def _link_problem(path: Path, real_root: Path, visited: set[Path]) -> Path | Skipped:
    """The resolved path, or why following it would loop or leave the root."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return Skipped(str(path), "broken symbolic link or symlink loop")
    if not real.is_relative_to(real_root):
        return Skipped(str(path), f"links outside the indexed folder (to {real})")
    if real in visited:
        return Skipped(str(path), "symlink loop (folder already read)")
    return real


def read_documents(paths: Iterable[Path], max_bytes: int = DEFAULT_MAX_BYTES) -> ReadResult:
    """Read every supported file below ``paths``; bad files are skipped with a reason."""
    paths = list(paths)
    documents: list[Document] = []
    skipped: list[Skipped] = []
    for item in readable_files(paths):
        if isinstance(item, Skipped):
            skipped.append(item)
            continue
        for result in read_file(*item, max_bytes):
            if isinstance(result, Skipped):
                skipped.append(result)
            else:
                documents.append(result)
    return ReadResult(documents, skipped, [p.resolve().as_posix() for p in paths])


def readable_files(paths: Iterable[Path]) -> Iterator[tuple[Path, Path] | Skipped]:
    """Each file to read below ``paths`` once, as (path, resolved path), or why not."""
    seen: set[Path] = set()
    for item in discover_files(paths):
        if isinstance(item, Skipped):
            yield item
            continue
        try:
            real = item.resolve(strict=True)
        except (OSError, RuntimeError):
            yield Skipped(str(item), "broken symbolic link or symlink loop")
            continue
        if real not in seen:
            seen.add(real)
            yield item, real


def read_file(file: Path, real: Path, max_bytes: int) -> Iterator[Document | Skipped]:
    """The documents of one file (one, or one per JSONL record), or why it was skipped."""
    doc_id = real.as_posix()
    try:
        stat = file.stat()
        if stat.st_size > max_bytes:
            limit = f"{max_bytes / 1024 / 1024:g} MB"
            yield Skipped(str(file), f"larger than {limit} (FINDLING_MAX_FILE_MB)", doc_id)
            return
        raw = file.read_bytes()
    except OSError as exc:
        yield Skipped(str(file), f"unreadable ({exc.strerror or exc})", doc_id)
        return
    modified = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds")
    try:
        for item in extract(raw, file.suffix.lower()):
            yield _document(file, doc_id, raw, modified, item)
    except FormatError as exc:
        yield Skipped(str(file), str(exc), doc_id)


def _document(
    file: Path, doc_id: str, raw: bytes, modified: str, item: Extracted | FormatError
) -> Document | Skipped:
    if isinstance(item, FormatError):
        return Skipped(str(file), str(item), doc_id)
    if item.key:
        doc_id = f"{doc_id}#{item.key}"
        raw = json.dumps([item.text, item.title, item.metadata], sort_keys=True).encode()
    if not item.text.strip():
        return Skipped(str(file) + (f"#{item.key}" if item.key else ""), "no text", doc_id)
    declared = item.metadata.get("language") or item.metadata.get("lang")
    try:
        check_metadata(item.metadata)
        # detected later, with the splitting (in worker processes on a large run)
        language = language_code(str(declared)) if declared else ""
    except InvalidRequestError as exc:
        return Skipped(str(file) + (f"#{item.key}" if item.key else ""), exc.message, doc_id)
    return Document(
        id=doc_id,
        path=str(file) + (f"#{item.key}" if item.key else ""),
        text=item.text,
        sha256=hashlib.sha256(raw).hexdigest(),
        language=language,
        title=item.title,
        modified=modified,
        metadata=item.metadata,
        pages=item.pages,
    )


def public_id(doc_id: str, path: str) -> str:
    """The id a document is shown and addressed by. A document read from a file is stored
    under its resolved absolute path (so the same file is recognised however it was named),
    but shown by its path as the user gave it: clients never see the server's folders."""
    return path if os.path.isabs(doc_id.partition("#")[0]) else doc_id


def make_document(
    doc_id: str,
    text: str,
    *,
    title: str = "",
    language: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Document:
    """A document handed over by a program (HTTP API, library) rather than read from a file.

    Raises:
        InvalidRequestError: a language that is no language code, metadata that is not JSON or
            nested deeper than MAX_METADATA_DEPTH, or text with a lone surrogate (not Unicode).
    """
    metadata = dict(metadata or {})
    check_metadata(metadata)
    try:
        content = json.dumps([text, title, metadata], sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(content.encode()).hexdigest()
        doc_id.encode()  # an id is stored as UTF-8 too
    except UnicodeEncodeError:
        raise InvalidRequestError(
            f"document {doc_id[:100]!r} holds a lone surrogate, which is not Unicode text",
            "send text as UTF-8, with surrogate pairs only in pairs",
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(
            f"the metadata of document {doc_id[:100]!r} is not JSON ({exc})",
            "use strings, numbers, booleans, lists and objects with string keys",
        ) from None
    return Document(
        id=doc_id,
        path=str(metadata.get("source") or doc_id),
        text=text,
        sha256=digest,
        language=language_code(language) if language else detect_language(text),
        title=title,
        modified=datetime.now(UTC).isoformat(timespec="seconds"),
        metadata=metadata,
    )


def language_code(tag: str) -> str:
    """The ISO 639 code of a language tag: ``de``, ``en-GB`` and ``pt_BR`` give de, en, pt.

    Sentence languages, the ``lang`` filter and sentence splitting all use the bare code.
    """
    match = _LANGUAGE_TAG.fullmatch(tag)
    if match is None:
        raise InvalidRequestError(
            f"{tag[:40]!r} is not a language code",
            "give an ISO 639-1 code such as de or en (a tag such as en-GB is read as en), "
            "or leave it out to have the language detected",
        )
    return match.group(1).lower()


def check_metadata(metadata: Mapping[str, Any]) -> None:
    """Refuse metadata nested deeper than MAX_METADATA_DEPTH (what stores it recurses), or
    holding NaN or infinity (which JSON, and so SQLite and every client, cannot read)."""
    pending: list[tuple[Any, int]] = [(metadata, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequestError(
                f"metadata holds the number {value}, which JSON cannot hold",
                "use finite numbers, or null",
            )
        if isinstance(value, Mapping):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list | tuple):
            children = value
        else:
            continue
        if depth > MAX_METADATA_DEPTH:
            raise InvalidRequestError(
                f"metadata nested more than {MAX_METADATA_DEPTH} levels deep",
                "flatten the metadata: filters compare top-level fields only",
            )
        pending.extend((child, depth + 1) for child in children)


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


# What sentencex cannot be handed: its German and English rules slice at byte offsets that fall
# inside a multi-byte space (U+00A0 and kin), which panics in its Rust core (found by fuzzing
# 1.0.32). Each becomes an ASCII space in the copy it reads; str offsets stay the same.
_UNICODE_SPACES = str.maketrans(
    dict.fromkeys(
        [*"\u00a0\u1680\u2028\u2029\u202f\u205f\u3000\u200b\x85\x0b\x0c\x1c\x1d\x1e\x1f"]
        + [chr(c) for c in range(0x2000, 0x200B)],
        " ",
    )
)
# A German ordinal ("am 3. Oktober", "im 19. Jahrhundert", "der 1. FC") ends in a period that
# sentencex takes for a sentence end when a capitalised word follows. Numbers of one to three
# digits followed by a word that is not a function word or a sentence-opening adverb are
# ordinals; "Route 99. Sie ..." and years ("im Jahr 1990. Danach") still end a sentence.
_ORDINAL_END = re.compile(r"(?<![\d.,])\d{1,3}\.\s*$")
_FIRST_WORD = re.compile(r"\s*([^\W\d_]+)")
# sentencex's German rules never end a sentence before one that starts with a digit ("...
# Vergessenheit. 1960 benannte ..."); a period after a word of five or more letters that is no
# abbreviation does.
_BEFORE_DIGIT = re.compile(r"(?<=[^\W\d_]{5}[.!?])\s+(?=\d)")
_LAST_WORD = re.compile(r"([^\W\d_]+)[.!?]\s*$")
_LONG_ABBREVIATIONS = frozenset({"einschl", "insbes", "ungef", "jährl", "zusätzl"})


# words that start a sentence but never follow an ordinal, besides the stop words
_GERMAN_STARTERS = [
    "ab",
    "allerdings",
    "anschließend",
    "außerdem",
    "bereits",
    "bisher",
    "dabei",
    "damals",
    "danach",
    "darauf",
    "daher",
    "davor",
    "derzeit",
    "deshalb",
    "ebenfalls",
    "entweder",
    "erst",
    "gestern",
    "gleichzeitig",
    "heute",
    "immer",
    "insgesamt",
    "inzwischen",
    "jedoch",
    "laut",
    "letztlich",
    "mittlerweile",
    "nie",
    "oft",
    "rund",
    "schließlich",
    "schon",
    "seit",
    "seitdem",
    "sogar",
    "somit",
    "sowohl",
    "später",
    "stattdessen",
    "trotz",
    "trotzdem",
    "vielleicht",
    "wann",
    "warum",
    "wegen",
    "weder",
    "wer",
    "wohl",
    "zudem",
    "zunächst",
    "zuvor",
]


@lru_cache(maxsize=1)
def _german_function_words() -> frozenset[str]:
    from indexer.stopwords import GERMAN

    return frozenset(GERMAN) | frozenset(_GERMAN_STARTERS)


def sentence_spans(paragraph: str, language: str) -> list[tuple[int, int]]:
    """Return ``(start, end)`` of each sentence inside ``paragraph``, whitespace trimmed.

    Split by sentencex (Wikimedia; rules for some 300 languages, abbreviations such as "z. B.",
    "Dr." or "p.m.", quotes spanning sentences), plus the two German rules above. Empty for a
    blank paragraph.
    """
    import sentencex

    readable = paragraph.translate(_UNICODE_SPACES)
    try:
        found = _located(readable, list(sentencex.segment(language, readable)))
    except BaseException as error:  # a Rust panic is a BaseException: keep the paragraph whole
        if isinstance(error, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        log.warning("sentence splitting failed (%s); paragraph kept as one passage", error)
        found = None
    found = found or [(0, len(readable))]
    if language == "de":
        found = _ordinals_joined(readable, _after_digits(readable, found))
    spans = []
    for span_start, span_end in found:
        start, end = _trim(paragraph, span_start, span_end)
        if end > start:
            spans.append((start, end))
    return spans


def _after_digits(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for start, end in spans:
        for match in _BEFORE_DIGIT.finditer(text, start, end):
            word = _LAST_WORD.search(text, max(start, match.start() - 40), match.start())
            if word and word.group(1).lower() not in _LONG_ABBREVIATIONS:
                out.append((start, match.start()))
                start = match.start()
        out.append((start, end))
    return out


def _ordinals_joined(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if joined and _ORDINAL_END.search(text, joined[-1][0], joined[-1][1]):
            word = _FIRST_WORD.match(text, start)
            if word and word.group(1).lower() not in _german_function_words():
                joined[-1] = (joined[-1][0], end)
                continue
        joined.append((start, end))
    return joined


def _located(text: str, sentences: list[str]) -> list[tuple[int, int]] | None:
    """Where each sentence stands in ``text``, in order; None if one is not found verbatim."""
    spans, position = [], 0
    for sentence in sentences:
        at = text.find(sentence, position)
        if at < 0:
            return None
        spans.append((at, at + len(sentence)))
        position = at + len(sentence)
    return spans


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language (py3langid ships its own model)."""
    return _language_identifier().classify(text[:DOCUMENT_SAMPLE])


def detect_languages(texts: Sequence[str]) -> list[str]:
    """:func:`detect_language` of each text, all at once (several times faster)."""
    return _language_identifier().classify_many([t[:DOCUMENT_SAMPLE] for t in texts])


@lru_cache(maxsize=1024)
def query_language(query: str) -> str:
    """:func:`detect_language` of a question, remembered: a search needs it for ranking and
    again for calibration, and chatbots and search pages repeat their questions."""
    return detect_language(query)


_IDENTIFIER_LOCK = threading.Lock()
_identifier: BatchIdentifier | None = None
_language_cache: Path | None = None


def use_language_cache(cache_dir: Path) -> None:
    """Keep the language identifier's unpacked model in ``cache_dir`` (the model cache; set by
    the edge that read the settings, before the first text is classified)."""
    global _language_cache
    _language_cache = cache_dir


def _language_identifier() -> BatchIdentifier:
    # loaded once, under a lock: 32 threads of a server that wrote at once each loaded
    # py3langid's model otherwise (18 s)
    global _identifier
    if _identifier is None:
        with _IDENTIFIER_LOCK:
            if _identifier is None:
                from indexer.identifier import BatchIdentifier, load_identifier

                if _language_cache is None:
                    from indexer.settings import default_model_cache

                    use_language_cache(default_model_cache())
                assert _language_cache is not None
                _identifier = BatchIdentifier(load_identifier(_language_cache))
    return _identifier


def language_cache() -> Path | None:
    """The folder :func:`use_language_cache` set (to hand on to worker processes)."""
    return _language_cache


def load_language_identifier(cache_dir: Path | None = None) -> None:
    """Load the language identifier now (servers do it at start), not on the first text;
    its model from ``cache_dir`` if given (see :func:`use_language_cache`)."""
    if cache_dir is not None:
        use_language_cache(cache_dir)
    _language_identifier()


def with_language(document: Document) -> Document:
    """The document with its language detected if it was not declared (read from a file)."""
    return with_languages([document])[0]


def with_languages(documents: Sequence[Document]) -> list[Document]:
    """:func:`with_language` of each document, detected all at once."""
    unknown = [i for i, d in enumerate(documents) if not d.language]
    found = detect_languages([documents[i].text for i in unknown])
    out = list(documents)
    for i, language in zip(unknown, found, strict=True):
        out[i] = dataclasses.replace(out[i], language=language)
    return out


def split_document(document: Document) -> list[Sentence]:
    """Split a document into sentences, in reading order."""
    return split_documents([document])[0]


def split_documents(documents: Sequence[Document]) -> list[list[Sentence]]:
    """:func:`split_document` of each document; languages are detected for all at once."""
    documents = with_languages(documents)
    paragraphs = [paragraph_spans(d.text) for d in documents]
    # mixed-language documents exist; short texts are too little evidence to judge. A
    # sentence takes its paragraph's language: detecting each sentence as well cost more
    # than splitting and changed 1 of 1,387 sentences (XQuAD dev, seeds, hold-out check)
    judged = [
        (d, p)
        for d, spans in enumerate(paragraphs)
        for p, (start, end) in enumerate(spans)
        if end - start >= 80
    ]
    samples = [_sample(documents[d].text, *paragraphs[d][p]) for d, p in judged]
    detected = dict(zip(judged, _language_identifier().classify_many(samples), strict=True))
    return [
        _sentences(
            document, spans, [detected.get((d, p), document.language) for p in range(len(spans))]
        )
        for d, (document, spans) in enumerate(zip(documents, paragraphs, strict=True))
    ]


def _sample(text: str, start: int, end: int) -> str:
    return text[start : min(end, start + PARAGRAPH_SAMPLE)]


def _sentences(
    document: Document, paragraphs: list[tuple[int, int]], languages: list[str]
) -> list[Sentence]:
    """The document's sentences, paragraph by paragraph, each in its paragraph's language."""
    sentences: list[Sentence] = []
    for p_no, ((p_start, p_end), language) in enumerate(zip(paragraphs, languages, strict=True)):
        paragraph = document.text[p_start:p_end]
        for s_no, (s_start, s_end) in enumerate(sentence_spans(paragraph, language)):
            text = paragraph[s_start:s_end]
            sentences.append(
                Sentence(
                    doc_id=document.id,
                    paragraph=p_no,
                    sentence=s_no,
                    start=p_start + s_start,
                    end=p_start + s_end,
                    paragraph_start=p_start,
                    paragraph_end=p_end,
                    text=text,
                    language=language,
                )
            )
    return sentences


def neighbours(sentences: Mapping[int, Sentence], key: int, n: int) -> tuple[int, int]:
    """Keys of the first and last sentence within ``n`` of ``key`` in the same paragraph.

    ``sentences`` holds a document's sentences under consecutive keys (positions or ids), so
    the neighbours of ``key`` are ``key - 1`` and ``key + 1``.
    """
    hit = sentences[key]
    first, last = key, key
    while key - first < n and _same_paragraph(sentences.get(first - 1), hit):
        first -= 1
    while last - key < n and _same_paragraph(sentences.get(last + 1), hit):
        last += 1
    return first, last


def _same_paragraph(a: Sentence | None, b: Sentence) -> bool:
    return a is not None and a.doc_id == b.doc_id and a.paragraph == b.paragraph
