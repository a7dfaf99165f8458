"""The language identifier read from its unpacked model classifies exactly as py3langid does."""

from __future__ import annotations

from pathlib import Path

import py3langid

from indexer.identifier import ARRAYS, load_identifier, unpacked_folder

TEXTS = [
    "",
    "Wer ist Blinken?",
    "Der 1. FC Köln gewann am 3. Oktober gegen Bayern München.",
    "Who is the foreign minister of Ukraine?",
    "Großbritannien sagt der Ukraine weitere Millionen Pfund Hilfe zu.",
    "La réunion aura lieu demain à Paris.",
    "El presidente visitó la ciudad ayer por la tarde.",
    "12345 !!! ???",
    "Привет, как дела?",
    "東京は日本の首都です。",
]


def test_the_unpacked_model_classifies_as_py3langid_does(tmp_path: Path) -> None:
    first = load_identifier(tmp_path)  # unpacks
    assert all((unpacked_folder(tmp_path) / f"{name}.npy").is_file() for name in ARRAYS)
    again = load_identifier(tmp_path)  # maps what the first wrote
    for text in TEXTS:
        expected = py3langid.classify(text)
        assert first.classify(text) == expected
        assert again.classify(text) == expected
    assert [p.name for p in tmp_path.iterdir()] == [unpacked_folder(tmp_path).name]  # no temps


def test_a_cache_that_cannot_be_written_falls_back_to_py3langid(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("the cache folder cannot be made under a file")
    identifier = load_identifier(blocked / "cache")
    assert identifier.classify(TEXTS[2]) == py3langid.classify(TEXTS[2])


def test_a_damaged_unpacked_model_falls_back_to_py3langid(tmp_path: Path) -> None:
    load_identifier(tmp_path)
    (unpacked_folder(tmp_path) / "ptc.npy").write_bytes(b"not an array")
    identifier = load_identifier(tmp_path)
    assert identifier.classify(TEXTS[3]) == py3langid.classify(TEXTS[3])
