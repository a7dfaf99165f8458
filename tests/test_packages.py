"""Word, OpenDocument and EPUB files: their text and title, headings standing alone, and
damaged files skipped with one warning each."""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer import packages
from indexer.cli import app
from indexer.documents import paragraph_spans, read_documents
from indexer.service import SearchService
from indexer.settings import Settings
from tests.makers import MOSEL, RHEIN, THAMES, write_docx, write_epub, write_odt

CHAPTERS = [
    f"<h1>Der Rhein</h1><p>{RHEIN}</p><p>Zeile&nbsp;eins<br/>Zeile zwei</p>",
    f"<section><h2>Die Mosel</h2><ul><li>{MOSEL}</li></ul><script>var x = 1;</script></section>",
]


def _read_one(path: Path) -> tuple[str, str]:
    result = read_documents([path])
    assert result.skipped == [], result.skipped
    [document] = result.documents
    return document.text, document.title


def test_docx_text_title_and_headings(tmp_path: Path) -> None:
    text, title = _read_one(write_docx(tmp_path / "flüsse.docx"))
    assert title == "Flüsse"
    assert text == "\n\n".join(
        [
            "Der Rhein",
            RHEIN,
            "Die Mosel",
            f"{MOSEL}\nSie ist 544 km lang.",  # a line break stays inside its paragraph
            "Fluss und Länge",  # the merged cell once, not once per column
            "Mosel",
            "544 km",
            "Ein Punkt in einer Liste.",
        ]
    )
    # every heading is a paragraph of its own, as a Markdown heading is
    paragraphs = [text[s:e] for s, e in paragraph_spans(text)]
    assert paragraphs[:3] == ["Der Rhein", RHEIN, "Die Mosel"]


def test_odt_text_title_footnote_and_what_is_left_out(tmp_path: Path) -> None:
    text, title = _read_one(write_odt(tmp_path / "flüsse.odt"))
    assert title == "Flüsse"
    # the table of contents and the comment are left out; the footnote follows its paragraph
    assert text == "\n\n".join(["Der Rhein", RHEIN, "Gemessen an der Mündung.", MOSEL])


def test_epub_text_in_reading_order_without_navigation(tmp_path: Path) -> None:
    text, title = _read_one(write_epub(tmp_path / "flüsse.epub", CHAPTERS))
    assert title == "Flüsse"
    assert text == "\n\n".join(["Der Rhein", RHEIN, "Zeile eins\nZeile zwei", "Die Mosel", MOSEL])
    assert "Kapitel" not in text and "margin" not in text and "var x" not in text


@pytest.mark.parametrize("write", [write_docx, write_odt])
def test_without_a_title_property_the_first_heading_is_the_title(
    tmp_path: Path, write: Callable[..., Path]
) -> None:
    suffix = ".docx" if write is write_docx else ".odt"
    assert _read_one(write(tmp_path / f"untitled{suffix}", title=""))[1] == "Der Rhein"


def test_documents_of_every_package_format_are_searchable(
    tmp_path: Path, service: SearchService
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write_docx(folder / "rhein.docx")
    write_odt(folder / "rhein.odt")
    write_epub(folder / "thames.epub", [f"<h1>London</h1><p>{THAMES}</p>"], title="London")
    summary = service.build([folder])
    assert (summary.documents, summary.skipped) == (3, [])
    hits = service.search("Thames London", k=3, mode="bm25").results
    assert hits[0].text == THAMES and hits[0].source.endswith("thames.epub")
    texts = {d.path: d.text for d in read_documents([folder]).documents}
    for hit in service.search("Mosel Koblenz", k=5, mode="bm25").results:
        assert texts[hit.source][hit.start : hit.end] == hit.text  # offsets into the text


def _good(suffix: str, folder: Path) -> bytes:
    path = folder / f"good{suffix}"
    if suffix == ".docx":
        write_docx(path)
    elif suffix == ".odt":
        write_odt(path)
    else:
        write_epub(path, CHAPTERS)
    return path.read_bytes()


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


KINDS = {".docx": "Word document", ".odt": "OpenDocument text", ".epub": "EPUB"}


@pytest.mark.parametrize("suffix", sorted(KINDS))
def test_damaged_files_are_skipped_with_a_reason(tmp_path: Path, suffix: str) -> None:
    good = _good(suffix, tmp_path)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / f"good{suffix}").write_bytes(good)
    bad = {
        "garbage": b"this is not a zip file at all",
        "truncated": good[: len(good) // 2],
        "empty-zip": _zip({"readme.txt": "no document in here"}),
        "bad-xml": _zip(
            {
                "[Content_Types].xml": "<Types",
                "content.xml": "<office:document-content",
                "META-INF/container.xml": "<container",
            }
        ),
        "encrypted": bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00" * 512,
    }
    for name, raw in bad.items():
        (folder / f"{name}{suffix}").write_bytes(raw)
    result = read_documents([folder])
    assert [Path(d.path).name for d in result.documents] == [f"good{suffix}"]
    reasons = {Path(s.path).stem: s.reason for s in result.skipped}
    assert set(reasons) == set(bad)
    assert all(r.startswith(f"not a readable {KINDS[suffix]} (") for r in reasons.values())
    assert "password-protected" in reasons["encrypted"]


@pytest.mark.parametrize("suffix", sorted(KINDS))
def test_no_damage_makes_a_reader_fail_other_than_with_a_reason(
    tmp_path: Path, suffix: str
) -> None:
    """Cut and flipped bytes anywhere: every outcome is a document or a skip, never a crash."""
    good = _good(suffix, tmp_path)
    rng = random.Random(17)
    folder = tmp_path / "fuzz"
    folder.mkdir()
    for i in range(40):
        raw = bytearray(good[: rng.randrange(len(good))] if i % 2 else good)
        for _ in range(0 if i % 2 else 8):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        (folder / f"{i:02d}{suffix}").write_bytes(bytes(raw))
    result = read_documents([folder])
    assert len(result.documents) + len(result.skipped) == 40


def test_a_zip_bomb_is_refused_before_it_is_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_epub(tmp_path / "big.epub", ["<p>" + "Viel Text. " * 2000 + "</p>"])
    monkeypatch.setattr(packages, "MAX_UNPACKED_BYTES", 10_000)
    [skipped] = read_documents([tmp_path]).skipped
    assert "unpacks to" in skipped.reason


def test_a_drm_protected_epub_says_so(tmp_path: Path) -> None:
    write_epub(tmp_path / "locked.epub", CHAPTERS, encrypted=True)
    [skipped] = read_documents([tmp_path]).skipped
    assert skipped.reason == "not a readable EPUB (DRM-protected: its chapters are encrypted)"


def test_cli_warns_once_per_damaged_file(hashing_env: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    write_docx(folder / "good.docx")
    for suffix in KINDS:
        (folder / f"broken{suffix}").write_bytes(b"PK\x03\x04 broken")
    result = CliRunner().invoke(app, ["index", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 3 and all(line.startswith("warning: skipped") for line in warnings)
    assert json.loads(result.stdout)["documents"] == 1
