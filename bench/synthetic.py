"""Synthetic German and English documents for scale benchmarks (no model needed to read them).

Each document has paragraphs of sentences drawn from a fixed vocabulary with a Zipf-like word
distribution, so postings lists look like a real collection's: a few very common words, many
rare ones. Deterministic for a given seed.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

GERMAN_START = ["Der", "Die", "Das", "Ein", "Im", "Am", "Seit", "Nach", "Heute", "Laut"]
ENGLISH_START = ["The", "A", "In", "On", "Since", "After", "Today", "According", "Many", "Our"]
SYLLABLES_DE = [
    "bau",
    "ber",
    "burg",
    "dorf",
    "feld",
    "gang",
    "hal",
    "haus",
    "heim",
    "kirch",
    "land",
    "lich",
    "mann",
    "mark",
    "rat",
    "stein",
    "tal",
    "wald",
    "weg",
]
SYLLABLES_EN = [
    "ber",
    "bridge",
    "dale",
    "field",
    "ford",
    "gate",
    "ham",
    "hill",
    "land",
    "ley",
    "mill",
    "moor",
    "port",
    "ridge",
    "stead",
    "ton",
    "vale",
    "well",
]


def vocabulary(syllables: list[str], size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(syllables, k=rng.randint(2, 4))))
    return sorted(words)


def write_corpus(folder: Path, sentences: int, per_document: int = 25, seed: int = 1) -> int:
    """Write documents of ``per_document`` sentences (in paragraphs of 5) until ``sentences``
    sentences are written; returns the number of documents."""
    rng = random.Random(seed)
    german = vocabulary(SYLLABLES_DE, 20_000, rng)
    english = vocabulary(SYLLABLES_EN, 20_000, rng)
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(20_000)))
    folder.mkdir(parents=True, exist_ok=True)
    documents = -(-sentences // per_document)
    for number in range(documents):
        is_german = number % 2 == 0
        words, starts = (german, GERMAN_START) if is_german else (english, ENGLISH_START)
        count = min(per_document, sentences - number * per_document)
        paragraphs, paragraph = [], []
        for i in range(count):
            picked = rng.choices(words, cum_weights=cumulative, k=rng.randint(6, 16))
            paragraph.append(f"{rng.choice(starts)} {' '.join(picked)} {number}.")
            if len(paragraph) == 5 or i == count - 1:
                paragraphs.append(" ".join(paragraph))
                paragraph = []
        suffix = "de" if is_german else "en"
        sub = folder / f"{number // 1000:04d}"
        sub.mkdir(exist_ok=True)
        (sub / f"doc{number:07d}.{suffix}.txt").write_text("\n\n".join(paragraphs), "utf-8")
    return documents
