"""Reading files and splitting them into sentences with exact offsets."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.documents import (
    paragraph_spans,
    read_documents,
    sentence_spans,
    split_document,
    with_language,
)
from indexer.errors import SourceNotFoundError
from tests.helpers import SEEDS


def _sentences(text: str, language: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text, language)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Das ist z. B. ein Test. Dr. Müller kam am 3. Oktober nach Berlin.",
            ["Das ist z. B. ein Test.", "Dr. Müller kam am 3. Oktober nach Berlin."],
        ),
        (
            "Er sagte: „Ich komme. Wirklich.“ Dann ging er.",
            ["Er sagte: „Ich komme. Wirklich.“", "Dann ging er."],
        ),
        (
            "Am 1. Januar 2024 trat das Gesetz in Kraft. Die Firma u. a. war betroffen.",
            ["Am 1. Januar 2024 trat das Gesetz in Kraft.", "Die Firma u. a. war betroffen."],
        ),
        (
            "Der Bericht (vgl. S. 12 ff.) nennt 3 Mio. Euro. Nr. 5 ist wichtig!",
            ["Der Bericht (vgl. S. 12 ff.) nennt 3 Mio. Euro.", "Nr. 5 ist wichtig!"],
        ),
    ],
)
def test_german_sentences(text: str, expected: list[str]) -> None:
    assert _sentences(text, "de") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # an ordinal before a noun, a number ending a sentence before a function word
            "Der 1. FC Köln liegt an der Route 99. Sie ist breit. Im 16. und 17. Jahrhundert kam"
            " die Pest.",
            [
                "Der 1. FC Köln liegt an der Route 99.",
                "Sie ist breit.",
                "Im 16. und 17. Jahrhundert kam die Pest.",
            ],
        ),
        (  # a year ends a sentence; so does a number before a sentence-opening adverb
            "Sie starben 1348-50. Der Ausbruch kam 1654. Laut Chronik auf Platz 3. Danach nie.",
            [
                "Sie starben 1348-50.",
                "Der Ausbruch kam 1654.",
                "Laut Chronik auf Platz 3.",
                "Danach nie.",
            ],
        ),
        (  # a sentence may start with a number; abbreviations before numbers do not end one
            "Er geriet in Vergessenheit. 1960 benannte man ca. 5 Straßen (vgl. S. 12) nach ihm,"
            " zzgl. 19 Prozent, insbes. 3 Plätze.",
            [
                "Er geriet in Vergessenheit.",
                "1960 benannte man ca. 5 Straßen (vgl. S. 12) nach ihm, zzgl. 19 Prozent, insbes. 3"
                " Plätze.",
            ],
        ),
    ],
)
def test_german_ordinals_and_numbers(text: str, expected: list[str]) -> None:
    assert _sentences(text, "de") == expected


def test_english_sentences_starting_with_numbers() -> None:
    text = "The storm hit Washington. 25 people died. It was 5 km wide, see p. 12 and no. 3."
    assert _sentences(text, "en") == [
        "The storm hit Washington.",
        "25 people died.",
        "It was 5 km wide, see p. 12 and no. 3.",
    ]


@pytest.mark.parametrize("space", ["\u00a0", "\u2009", "\u202f", "\u3000", "\u2028"])
@pytest.mark.parametrize("language", ["de", "en", "fr"])
def test_unicode_spaces_are_split_like_ascii_ones(space: str, language: str) -> None:
    # sentencex 1.0.32 panics on these in its abbreviation rules ("Dr.\u00a0Müller")
    text = f"Dr.{space}Müller kam um 10{space}Uhr. Er sagte{space}nichts. A.{space}B. ging."
    plain = text.replace(space, " ")
    assert [(s, e) for s, e in sentence_spans(text, language)] == sentence_spans(plain, language)
    assert len(sentence_spans(text, language)) >= 2


def test_english_sentences() -> None:
    text = 'He met Dr. Smith at 5 p.m. on Jan. 3. "It is bad. Very bad," he said. Then he left.'
    assert _sentences(text, "en") == [
        "He met Dr. Smith at 5 p.m. on Jan. 3.",
        '"It is bad. Very bad," he said.',
        "Then he left.",
    ]


def test_paragraphs_by_blank_lines_and_markdown_headings() -> None:
    text = "# Title\nFirst line\nstill first.\n\n\nSecond para.\n"
    assert [text[s:e] for s, e in paragraph_spans(text)] == [
        "# Title",
        "First line\nstill first.",
        "Second para.",
    ]


def test_one_paragraph_per_line_when_there_are_no_blank_lines() -> None:
    text = "Erster Absatz. Noch ein Satz.\nZweiter Absatz.\r\nDritter.\n"
    assert [text[s:e] for s, e in paragraph_spans(text)] == [
        "Erster Absatz. Noch ein Satz.",
        "Zweiter Absatz.",
        "Dritter.",
    ]


def test_seed_article_offsets_are_exact() -> None:
    documents = read_documents([SEEDS]).documents
    assert len(documents) == 1
    document = documents[0]
    passages = split_document(document)
    assert len(passages) == 19
    # a file's language is detected when it is split (in a worker process on large runs)
    assert document.language == "" and with_language(document).language == "de"
    for p in passages:
        assert document.text[p.start : p.end] == p.text
        assert p.paragraph_start <= p.start < p.end <= p.paragraph_end
    quoted = [p.text for p in passages if p.text.startswith("„Im Hinblick")]
    assert quoted and quoted[0].endswith("sagte Blinken.")  # a quote spanning two sentences


def test_offsets_count_characters_after_a_bom(tmp_path: Path) -> None:
    (tmp_path / "bom.txt").write_bytes("\ufeffÄrger über Öl. Zweiter Satz.".encode())
    document = read_documents([tmp_path]).documents[0]
    assert document.text.startswith("Ärger")
    assert [p.text for p in split_document(document)] == ["Ärger über Öl.", "Zweiter Satz."]


def test_invalid_utf8_and_empty_files_are_skipped_and_named(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Ein guter Satz.", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Größe".encode("latin-1"))
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    result = read_documents([tmp_path])
    assert [Path(d.id).name for d in result.documents] == ["good.txt"]
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert "UTF-8" in reasons["latin1.txt"]
    assert reasons["empty.md"] == "no text"


def test_document_ids_are_resolved_paths_read_once(corpus: Path) -> None:
    ids = [d.id for d in read_documents([corpus, corpus / "rhein.txt"]).documents]
    root = corpus.resolve().as_posix()
    assert ids == [f"{root}/rhein.txt", f"{root}/sub/cooking.md"]  # a file given twice: once


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="no such file or folder"):
        read_documents([tmp_path / "missing"])


def test_language_is_detected_per_document(corpus: Path) -> None:
    documents = read_documents([corpus]).documents
    languages = {Path(d.id).name: with_language(d).language for d in documents}
    assert languages == {"rhein.txt": "de", "cooking.md": "en"}


_PIECES = [
    *"abcXYZäöüß.!?…;:\"'„“«»()[]0123456789 \n\t",
    "\u00a0",
    "\u2009",
    "e\u0301",
    "😀",
    "。",
    " z. B. ",
    "Dr. ",
    " 3. ",
    " Sie ",
    " 1960 ",
    "Jahrhundert",
    "U.S.A.",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=40).map("".join),
    st.sampled_from(["de", "en", "fr", "xx"]),
)
def test_sentences_are_ordered_trimmed_slices_covering_the_text(text: str, language: str) -> None:
    spans = sentence_spans(text, language)
    assert bool(spans) == bool(text.strip())
    position = 0
    for start, end in spans:
        assert position <= start <= end <= len(text)
        assert text[start:end] == text[start:end].strip()
        assert not text[position:start].strip()  # nothing but space between sentences
        position = end
    assert not text[position:].strip()
