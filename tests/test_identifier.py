"""The language identifier read from its unpacked model classifies exactly as py3langid does."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import py3langid

from indexer.identifier import ARRAYS, BatchIdentifier, load_identifier, unpacked_folder

SEEDS = Path(__file__).resolve().parent.parent / "seeds"

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


def _many_texts() -> list[str]:
    """Texts of every kind the identifier meets: whole documents, paragraphs, questions,
    other scripts, shouting, digits only, empty, one letter, text cut inside a word."""
    rng = random.Random(7)
    seed = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt")))
    paragraphs = [p for p in seed.split("\n\n") if p.strip()]
    words = seed.split() + " ".join(TEXTS).split()
    made = [" ".join(rng.choices(words, k=rng.randint(1, 60))) for _ in range(300)]
    cut = [p[: rng.randint(1, len(p))] for p in paragraphs]
    return (
        TEXTS
        + [seed[:1000]]
        + paragraphs
        + cut
        + made
        + [t.upper() for t in made[:30]]
        + [
            "x",
            "ÄÖÜ",
            "   ",
            "🙂 🙂",
            "Ünïcödé ñ " * 40,
        ]
    )


def test_many_texts_at_once_get_the_answers_py3langid_gives_each(tmp_path: Path) -> None:
    identifier = load_identifier(tmp_path)
    texts = _many_texts()
    expected = [identifier.classify(t)[0] for t in texts]
    assert len(set(expected)) > 5  # many languages, not one answer for everything
    batch = BatchIdentifier(identifier, fewest=2)  # even two texts are walked together
    assert batch.classify_many(texts) == expected
    assert batch.classify_many(texts[::-1]) == expected[::-1]  # order is kept
    assert batch.classify_many(texts[:1]) == expected[:1] and batch.classify_many([]) == []
    nothing = ["", ""]  # the longest text has no bytes: nothing to walk at all
    assert batch.classify_many(nothing) == [identifier.classify(t)[0] for t in nothing]


def test_an_identifier_the_walk_does_not_know_is_asked_one_text_at_a_time() -> None:
    normalising = py3langid.langid.LanguageIdentifier.from_model_file(
        py3langid.langid.MODEL_FILE, norm_probs=True
    )
    texts = TEXTS[2:8]
    batch = BatchIdentifier(normalising)
    assert batch.classify_many(texts) == [normalising.classify(t)[0] for t in texts]


def test_a_few_texts_are_classified_without_loading_scipy(tmp_path: Path) -> None:
    """A one-document write classifies a few paragraphs: not worth importing scipy for."""
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from indexer.identifier import BatchIdentifier, load_identifier\n"
        "batch = BatchIdentifier(load_identifier(Path(sys.argv[1])))\n"
        "print(batch.classify_many(['Der Rhein fließt durch Köln.', 'The river is long.']))\n"
        "print('scipy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[:2] == ["['de', 'en']", "False"]
