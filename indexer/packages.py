"""Text and title out of zip-packaged documents: Word (.docx), OpenDocument text (.odt), EPUB.

Each reader returns ``(text, title)``. The text holds the document's paragraphs, headings, list
items and table cells in reading order, each a block of its own between blank lines: a heading
stands alone as a paragraph, as a Markdown heading does, and a sentence's context is its own
paragraph. Left out, as not the document's running text: headers and footers, comments, text
deleted under change tracking, and tables of contents (they repeat the headings). Footnotes
follow the paragraph that cites them (OpenDocument). The title is the document's own title
property, else its first heading.
"""

from __future__ import annotations

import codecs
import io
import posixpath
import re
import zipfile
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from xml.etree import ElementTree

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

# a 20 MB file (FINDLING_MAX_FILE_MB) of text documents unpacks to far less; more is a zip bomb
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
# the start of an OLE compound file: how Office stores encrypted .docx files, and old .doc files
OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")

Block = tuple[str, bool]  # a paragraph's text, and whether it is a heading


class PackageError(ValueError):
    """A package that cannot be read as its kind of document; the message says why."""


def read_docx(raw: bytes) -> tuple[str, str]:
    """A Word document's text and title, read with python-docx."""
    from docx import Document

    _open_zip(raw).close()  # checks what python-docx would load whole
    document = Document(io.BytesIO(raw))
    blocks = list(_docx_blocks(document.iter_inner_content()))
    return _join(blocks), document.core_properties.title or _first_heading(blocks)


def _docx_blocks(items: Iterable[Paragraph | Table]) -> Iterator[Block]:
    from docx.text.paragraph import Paragraph

    for item in items:
        if isinstance(item, Paragraph):
            style = (item.style.name if item.style is not None else None) or ""
            if not style.lower().startswith("toc"):  # a table of contents repeats the headings
                yield item.text, style == "Title" or style.startswith("Heading")
            continue
        for row in item.rows:
            seen: set[int] = set()
            for cell in row.cells:
                if id(cell._tc) not in seen:  # a merged cell comes once per column it spans
                    seen.add(id(cell._tc))
                    yield from _docx_blocks(cell.iter_inner_content())


_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_ODF_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_DC = "http://purl.org/dc/elements/1.1/"
_P, _H, _NOTE = f"{{{_ODF_TEXT}}}p", f"{{{_ODF_TEXT}}}h", f"{{{_ODF_TEXT}}}note"
_SPACE, _TAB, _BREAK = (f"{{{_ODF_TEXT}}}{n}" for n in ("s", "tab", "line-break"))
_ODF_SKIPPED = frozenset(
    [f"{{{_ODF_OFFICE}}}annotation", f"{{{_ODF_TEXT}}}tracked-changes"]
    + [
        f"{{{_ODF_TEXT}}}{index}"
        for index in (
            "table-of-content",
            "illustration-index",
            "table-index",
            "object-index",
            "user-index",
            "alphabetical-index",
            "bibliography",
        )
    ]
)


def read_odt(raw: bytes) -> tuple[str, str]:
    """An OpenDocument text's text and title, from its content.xml and meta.xml."""
    archive = _open_zip(raw)
    if b"encryption-data" in _member(archive, "META-INF/manifest.xml", b""):
        raise PackageError("password-protected")
    body = ElementTree.fromstring(_member(archive, "content.xml")).find(
        f"{{{_ODF_OFFICE}}}body/{{{_ODF_OFFICE}}}text"
    )
    if body is None:
        raise PackageError("no text body: a spreadsheet, drawing or slides under this name?")
    blocks: list[Block] = []
    _odt_blocks(body, blocks)
    meta = _member(archive, "meta.xml", b"")
    title = ElementTree.fromstring(meta).findtext(f".//{{{_DC}}}title", "") if meta else ""
    return _join(blocks), title.strip() or _first_heading(blocks)


def _odt_blocks(element: ElementTree.Element, out: list[Block]) -> None:
    for child in element:
        if child.tag in _ODF_SKIPPED:
            continue
        if child.tag in (_P, _H):
            style = child.get(f"{{{_ODF_TEXT}}}style-name")
            out.append((_odt_text(child), child.tag == _H or style == "Title"))
        # lists, tables and sections hold paragraphs; a paragraph may hold footnotes and frames
        _odt_blocks(child, out)


def _odt_text(element: ElementTree.Element) -> str:
    parts = [element.text or ""]
    for child in element:
        if child.tag == _SPACE:
            count = child.get(f"{{{_ODF_TEXT}}}c", "1")
            parts.append(" " * min(int(count) if count.isdigit() else 1, 100))
        elif child.tag == _TAB:
            parts.append("\t")
        elif child.tag == _BREAK:
            parts.append("\n")
        elif child.tag.startswith(f"{{{_ODF_TEXT}}}") and child.tag not in (_P, _H, _NOTE):
            parts.append(_odt_text(child))  # spans, links, fields; nested paragraphs stand alone
        parts.append(child.tail or "")
    return "".join(parts)


_XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})


def read_epub(raw: bytes) -> tuple[str, str]:
    """An EPUB's text (its reading order, the spine) and title (``dc:title``)."""
    archive = _open_zip(raw)
    container = ElementTree.fromstring(_member(archive, "META-INF/container.xml"))
    rootfile = next((e for e in container.iter() if _local(e.tag) == "rootfile"), None)
    if rootfile is None or not rootfile.get("full-path"):
        raise PackageError("META-INF/container.xml names no package document")
    opf_path = str(rootfile.get("full-path"))
    package = ElementTree.fromstring(_member(archive, opf_path))
    items = {e.get("id"): e for e in package.iter() if _local(e.tag) == "item"}
    encrypted = _epub_encrypted(archive)
    blocks: list[Block] = []
    for ref in (e for e in package.iter() if _local(e.tag) == "itemref"):
        item = items.get(ref.get("idref"))
        if item is None or item.get("media-type") not in _XHTML_TYPES:
            continue
        if "nav" in (item.get("properties") or "").split():
            continue  # the table of contents repeats the headings
        name = _resolve(opf_path, item.get("href") or "")
        if name in encrypted:
            raise PackageError("DRM-protected: its chapters are encrypted")
        chapter = _member(archive, name, b"")  # a chapter missing from the zip is passed over
        blocks += [(text, False) for text in html_blocks(_decode_markup(chapter))]
    title = next((e.text for e in package.iter() if e.tag == f"{{{_DC}}}title" and e.text), "")
    return _join(blocks), title.strip()


def _epub_encrypted(archive: zipfile.ZipFile) -> set[str]:
    """Members that META-INF/encryption.xml lists (obfuscated fonts are listed too)."""
    listing = _member(archive, "META-INF/encryption.xml", b"")
    if not listing:
        return set()
    return {
        posixpath.normpath(unquote(str(e.get("URI"))))
        for e in ElementTree.fromstring(listing).iter()
        if _local(e.tag) == "CipherReference" and e.get("URI")
    }


def _resolve(opf_path: str, href: str) -> str:
    """A manifest href (relative to the package document, URL-encoded) as a zip member name."""
    relative = unquote(href.split("#", 1)[0])
    return posixpath.normpath(posixpath.join(posixpath.dirname(opf_path), relative))


class _BlockParser(HTMLParser):
    """Collects the text of an (X)HTML page block by block: paragraphs, headings, list items."""

    BLOCKS = frozenset(
        {"address", "article", "aside", "blockquote", "caption", "dd", "div", "dl", "dt"}
        | {"figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr"}
        | {"li", "main", "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul"}
    )
    SKIPPED = frozenset({"head", "script", "style", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # &nbsp; and friends, even without a DTD
        self.blocks: list[str] = []
        self._parts: list[str] = []
        self._skipping = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        elif tag == "br":
            self._parts.append("\n")
        elif tag in self.BLOCKS:
            self._flush()
            self._pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        if tag == "br":
            self._parts.append("\n")
        elif tag in self.BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCKS:
            self._flush()
            self._pre = max(0, self._pre - (tag == "pre"))

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._parts.append(data if self._pre else data.replace("\n", " "))

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        lines = ("".join(self._parts)).split("\n")
        self._parts = []
        block = "\n".join(" ".join(line.split()) for line in lines if line.strip())
        if block:
            self.blocks.append(block)


def html_blocks(markup: str) -> list[str]:
    """The text of each block of an (X)HTML page, whitespace collapsed, ``<br>`` kept."""
    parser = _BlockParser()
    parser.feed(markup)
    parser.close()
    return parser.blocks


def _decode_markup(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :].decode("utf-8", "replace")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16", "replace")
    declared = re.match(rb"""<\?xml[^>]*encoding=["']([A-Za-z0-9._-]+)""", raw)
    try:
        return raw.decode(declared.group(1).decode() if declared else "utf-8", "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def _open_zip(raw: bytes) -> zipfile.ZipFile:
    if raw.startswith(OLE_MAGIC):
        raise PackageError("password-protected, or an older binary format under this name")
    archive = zipfile.ZipFile(io.BytesIO(raw))
    unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        limit = MAX_UNPACKED_BYTES // 2**20
        raise PackageError(f"unpacks to {unpacked // 2**20} MB, more than {limit} MB")
    return archive


def _member(archive: zipfile.ZipFile, name: str, missing: bytes | None = None) -> bytes:
    """A member's bytes; ``missing`` if it is absent (an error if that is None)."""
    try:
        return archive.read(name)
    except KeyError:
        if missing is None:
            raise PackageError(f"{name} is missing") from None
        return missing


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _join(blocks: Iterable[Block]) -> str:
    # a blank line inside a block would split it; one line break keeps it one paragraph
    texts = (re.sub(r"\n\s*\n", "\n", text.strip()) for text, _ in blocks)
    return "\n\n".join(text for text in texts if text)


def _first_heading(blocks: Iterable[Block]) -> str:
    return next((text.strip() for text, heading in blocks if heading and text.strip()), "")
