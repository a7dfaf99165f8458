"""Bad input never stops a run, and more formats: HTML, PDF and JSONL with metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.cli import app
from indexer.documents import read_documents
from indexer.model.embedder import HashingEmbedder
from indexer.service import SearchService
from indexer.settings import Settings
from tests.makers import write_pdf

GOOD = "Ein guter Satz über den Rhein."


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """A folder with one good file beside every kind of bad input."""
    root = tmp_path / "messy"
    (root / "sub").mkdir(parents=True)
    (root / "good.txt").write_text(GOOD, encoding="utf-8")
    (root / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (root / "latin1.txt").write_bytes("Größe".encode("latin-1"))
    (root / "empty.md").write_text("", encoding="utf-8")
    (root / "huge.txt").write_text("Satz. " * 400_000, encoding="utf-8")  # ~2.4 MB
    (root / "loop.txt").symlink_to(root / "loop.txt")  # a link to itself
    (root / "sub" / "up").symlink_to(root)  # a folder loop
    outside = tmp_path / "secret.txt"
    outside.write_text("Nicht indexieren.", encoding="utf-8")
    (root / "outside.txt").symlink_to(outside)
    (root / "dangling.md").symlink_to(tmp_path / "missing.md")
    return root


def test_every_bad_input_is_skipped_with_a_reason(messy: Path) -> None:
    result = read_documents([messy], max_bytes=1024 * 1024)
    assert [d.text for d in result.documents] == [GOOD]
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert reasons["binary.txt"].startswith("binary file")
    assert "UTF-8" in reasons["latin1.txt"]
    assert reasons["empty.md"] == "no text"
    assert reasons["huge.txt"].startswith("larger than 1 MB")
    assert "symlink loop" in reasons["loop.txt"]
    assert "symlink loop" in reasons["up"]
    assert "outside the indexed folder" in reasons["outside.txt"]
    assert "broken symbolic link" in reasons["dangling.md"]
    assert len(result.skipped) == 8


def test_an_index_inside_the_indexed_folder_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`findling index .` where ./index/ is: the index's own files are not documents."""
    (tmp_path / "good.txt").write_text(GOOD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    service = SearchService(Path("index", "default"), HashingEmbedder(64))
    assert service.build([Path(".")]).documents == 1
    again = service.build([Path(".")])
    assert (again.documents, again.unchanged, again.skipped) == (1, 1, [])


def test_unreadable_file_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "good.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / "locked.txt").write_text("geheim", encoding="utf-8")
    original = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        # root may read anything, so a chmod cannot make a file unreadable in CI
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied")
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = read_documents([tmp_path])
    assert [d.text for d in result.documents] == [GOOD]
    assert result.skipped[0].reason == "unreadable (Permission denied)"


def test_cli_warns_once_per_bad_file_and_indexes_the_good_one(
    hashing_env: Settings, messy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FINDLING_MAX_FILE_MB", "1")
    result = CliRunner().invoke(app, ["index", str(messy), "--json"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 8
    summary = json.loads(result.stdout)
    assert (summary["documents"], summary["passages"]) == (1, 1)
    assert len(summary["skipped"]) == 8


def test_html_main_text_only(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(
        "<html><head><title>Der Rhein</title><script>var secret = 1;</script>"
        "<style>p { color: red }</style></head><body><nav>Home | Impressum</nav>"
        "<article><h1>Der Rhein</h1><p>Der Rhein ist ein Fluss in Europa. Er fließt durch "
        "Köln und Düsseldorf und mündet in die Nordsee.</p></article></body></html>",
        encoding="utf-8",
    )
    document = read_documents([tmp_path]).documents[0]
    assert "Der Rhein ist ein Fluss in Europa." in document.text
    assert "secret" not in document.text and "color" not in document.text
    assert "<" not in document.text
    assert document.title == "Der Rhein"


def test_pdf_text_layer(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Bericht")
    for text in ("Der Rhein ist ein Fluss in Europa.", "Die Mosel mündet in Koblenz."):
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.cell(text=text)
    pdf.output(str(tmp_path / "bericht.pdf"))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    result = read_documents([tmp_path])
    document = result.documents[0]
    assert document.text == "Der Rhein ist ein Fluss in Europa.\n\nDie Mosel mündet in Koblenz."
    assert document.title == "Bericht"
    assert [Path(s.path).name for s in result.skipped] == ["broken.pdf"]


def test_a_pdf_without_a_text_layer_is_reported_as_probably_scanned(tmp_path: Path) -> None:
    write_pdf(tmp_path / "scan.pdf", ["", ""])
    write_pdf(tmp_path / "partly.pdf", ["Der Rhein ist ein Fluss in Europa.", ""])
    result = read_documents([tmp_path])
    assert [d.text for d in result.documents] == ["Der Rhein ist ein Fluss in Europa."]
    [skipped] = result.skipped
    assert Path(skipped.path).name == "scan.pdf"
    assert skipped.reason.startswith("no text layer in its 2 page(s): probably a scanned PDF")


def test_no_damage_to_a_pdf_makes_reading_fail(tmp_path: Path) -> None:
    """Cut and flipped bytes anywhere: a document or a skip with a reason, never a crash."""
    import random

    good = write_pdf(tmp_path / "good.pdf", ["Der Rhein.", "Die Mosel."]).read_bytes()
    rng = random.Random(18)  # among these, pypdf fails with NotImplementedError and others
    folder = tmp_path / "fuzz"
    folder.mkdir()
    for i in range(60):
        raw = bytearray(good[: rng.randrange(len(good))] if i % 2 else good)
        for _ in range(0 if i % 2 else 8):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        (folder / f"{i:02d}.pdf").write_bytes(bytes(raw))
    result = read_documents([folder])
    assert len(result.documents) + len(result.skipped) == 60


def test_jsonl_records_with_metadata_and_filters(tmp_path: Path, service: SearchService) -> None:
    lines = [
        {"id": "a1", "text": "Der Rhein fließt durch Köln.", "lang": "de", "team": "geo"},
        {"id": "a2", "text": "The Thames flows through London.", "team": "geo"},
        {"id": "a3", "text": "Pasta needs salted water.", "team": "food", "title": "Kochen"},
        "not an object",
    ]
    (tmp_path / "feed.jsonl").write_text(
        "\n".join(json.dumps(line) for line in lines) + "\n{broken\n", encoding="utf-8"
    )
    summary = service.build([tmp_path])
    assert summary.documents == 3
    assert [s.reason.split(":")[0] for s in summary.skipped] == ["line 4", "line 5"]
    only_geo = service.search("river", k=10, mode="dense", filters={"team": "geo"}).results
    assert {r.source.rsplit("#", 1)[1] for r in only_geo} == {"a1", "a2"}
    german = service.search("river", k=10, filters={"lang": "de"}).results
    assert [r.text for r in german] == ["Der Rhein fließt durch Köln."]
    titled = service.search("water", k=10, filters={"title": "Kochen"}).results
    assert [r.text for r in titled] == ["Pasta needs salted water."]
    assert service.search("water", filters={"team": "nobody"}).results == []
