"""Documents of every format, written for the tests by the libraries people write them with:
Word with python-docx, OpenDocument with odfpy, PDF with fpdf2; EPUB with zipfile, as the
format is a zip of XHTML pages and XML that says their order."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

RHEIN = "Der Rhein ist ein Fluss in Europa. Er fließt durch Köln und Düsseldorf."
MOSEL = "Die Mosel mündet in Koblenz in den Rhein."
THAMES = "The Thames flows through London."


def write_docx(path: Path, title: str = "Flüsse") -> Path:
    """A Word document: a title property, a heading, paragraphs, a table of contents entry,
    a merged table cell, a list item and a line break."""
    from docx import Document

    document = Document()
    document.core_properties.title = title
    document.add_paragraph("Inhalt ... 1", style="TOC Heading")
    document.add_heading("Der Rhein", level=1)
    document.add_paragraph(RHEIN)
    document.add_heading("Die Mosel", level=2)
    paragraph = document.add_paragraph(MOSEL)
    paragraph.add_run().add_break()
    paragraph.add_run("Sie ist 544 km lang.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Fluss und Länge"
    table.cell(1, 0).text = "Mosel"
    table.cell(1, 1).text = "544 km"
    document.add_paragraph("Ein Punkt in einer Liste.", style="List Bullet")
    document.add_paragraph("")  # empty paragraphs are spacing, not text
    document.save(str(path))
    return path


def write_odt(path: Path, title: str = "Flüsse") -> Path:
    """An OpenDocument text: title in meta.xml, a heading, a footnote, a comment, a list and a
    table of contents."""
    from odf import dc, office
    from odf import text as odf_text
    from odf.opendocument import OpenDocumentText

    document = OpenDocumentText()
    if title:
        document.meta.addElement(dc.Title(text=title))
    toc = odf_text.TableOfContent(name="Inhalt")
    body = odf_text.IndexBody()
    body.addElement(odf_text.P(text="Der Rhein 1"))
    toc.addElement(body)
    document.text.addElement(toc)
    document.text.addElement(odf_text.H(outlinelevel=1, text="Der Rhein"))
    paragraph = odf_text.P(text="Der Rhein ist ein Fluss in Europa.")
    paragraph.addElement(odf_text.S(c=1))
    paragraph.addText("Er fließt durch Köln und Düsseldorf.")
    note = odf_text.Note(noteclass="footnote", id="n1")
    note.addElement(odf_text.NoteCitation(text="1"))
    note_body = odf_text.NoteBody()
    note_body.addElement(odf_text.P(text="Gemessen an der Mündung."))
    note.addElement(note_body)
    paragraph.addElement(note)
    comment = office.Annotation()
    comment.addElement(odf_text.P(text="Ein Kommentar, kein Text."))
    paragraph.addElement(comment)
    document.text.addElement(paragraph)
    items = odf_text.List()
    item = odf_text.ListItem()
    item.addElement(odf_text.P(text=MOSEL))
    items.addElement(item)
    document.text.addElement(items)
    document.save(str(path))
    return path


def write_epub(
    path: Path,
    chapters: Sequence[str],
    title: str = "Flüsse",
    encrypted: bool = False,
) -> Path:
    """An EPUB 3 whose spine holds ``chapters`` (XHTML bodies) after a navigation document.

    The first chapter's file name has a space (URL-encoded in the manifest); ``encrypted``
    lists the chapters in META-INF/encryption.xml, as DRM does.
    """
    names = [f"Text/chapter {i}.xhtml" for i in range(1, len(chapters) + 1)]
    manifest = "".join(
        f'<item id="c{i}" href="{name.replace(" ", "%20")}" media-type="application/xhtml+xml"/>'
        for i, name in enumerate(names, start=1)
    )
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(1, len(names) + 1))
    package = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:identifier id="id">urn:test</dc:identifier><dc:title>{title}</dc:title>'
        "<dc:language>de</dc:language></metadata>"
        '<manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
        f'properties="nav"/>{manifest}</manifest>'
        f'<spine><itemref idref="nav"/>{spine}</spine></package>'
    )
    container = (
        '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")  # stored, first
        archive.writestr("META-INF/container.xml", container)
        archive.writestr("OEBPS/content.opf", package)
        archive.writestr("OEBPS/nav.xhtml", _xhtml("<nav><ol><li>Kapitel 1</li></ol></nav>"))
        for name, body in zip(names, chapters, strict=True):
            archive.writestr(f"OEBPS/{name}", _xhtml(body))
        if encrypted:
            references = "".join(
                f'<EncryptedData xmlns="http://www.w3.org/2001/04/xmlenc#"><CipherData>'
                f'<CipherReference URI="OEBPS/{name.replace(" ", "%20")}"/></CipherData>'
                "</EncryptedData>"
                for name in names
            )
            archive.writestr(
                "META-INF/encryption.xml",
                '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                f"{references}</encryption>",
            )
    return path


def _xhtml(body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE html>'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f"<head><title>Kapitel</title><style>p {{ margin: 0 }}</style></head><body>{body}"
        "</body></html>"
    )


def write_pdf(path: Path, pages: Sequence[str], title: str = "") -> Path:
    """A PDF with one page per text; an empty text makes a page with a drawing and no text,
    as a scanner writes it."""
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.set_font("Helvetica", size=12)
            pdf.cell(text=text)
        else:
            pdf.rect(20, 20, 100, 140, style="F")
    pdf.output(str(path))
    return path
