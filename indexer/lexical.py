"""Lexical search: language-aware analysis (stop words, Snowball stems, umlauts) and BM25."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import IndexCorruptError

ANALYZER_VERSION = "1"
_WORD = re.compile(r"\w+", re.UNICODE)
_SNOWBALL = {
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "it": "italian",
    "nl": "dutch",
    "no": "norwegian",
    "pt": "portuguese",
    "ru": "russian",
    "sv": "swedish",
}
# Snowball's German stemmer maps ä/ö/ü to a/o/u itself; folding before stemming makes the
# other spellings people type ("Aerger", "Strasse") meet it there
_UMLAUTS = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss"})
_DIGRAPHS = re.compile(r"(?<=[a-z])(ae|oe|ue)|^(ae|oe|ue)")


@lru_cache(maxsize=32)
def _stemmer(language: str) -> Any:
    import Stemmer

    return Stemmer.Stemmer(_SNOWBALL.get(language, "english"))


@lru_cache(maxsize=32)
def _stop_words(language: str) -> frozenset[str]:
    from bm25s import stopwords

    if language == "de":
        return frozenset(_fold_german(w) for w in stopwords.STOPWORDS_GERMAN)
    return frozenset(stopwords.STOPWORDS_EN if language == "en" else ())


def _fold_german(token: str) -> str:
    token = token.translate(_UMLAUTS)
    return _DIGRAPHS.sub(lambda m: (m.group(1) or m.group(2))[0], token)


def analyze(text: str, language: str) -> list[str]:
    """Terms of ``text`` as the index stores them: lower-cased words, stop words removed,
    umlauts and their digraphs folded (German), stemmed with the language's Snowball stemmer.
    Unknown languages are analysed with English rules."""
    stop = _stop_words(language)
    stemmer = _stemmer(language)
    terms = []
    for word in _WORD.findall(text.lower()):
        if language == "de":
            word = _fold_german(word)
        if word in stop:
            continue
        terms.append(stemmer.stemWord(word).translate(_UMLAUTS))
    return terms


@dataclass(frozen=True)
class LexicalScores:
    """BM25 scores of every passage for one query (0 where no term matches).

    ``full`` is what a sentence of average length holding every query term once would score,
    counting terms the index does not know at their highest weight.
    """

    scores: np.ndarray
    full: float = 0.0

    def normalised(self) -> np.ndarray:
        """Scores as the share of the query they match, in [0, 1], in BM25's own order.

        Dividing by the query's full score rather than by its best hit keeps weak evidence weak:
        a sentence that shares only a common word ("Ukraine" in an article about Ukraine) with
        the question is not made to look like a perfect lexical match (measured: fixes a seed
        question, and paragraph MRR@10 on XQuAD dev stays within 0.003, better at sentence level).
        A hit above the full score (repeated words, a short sentence) sets the scale instead.
        """
        scale = max(self.full, float(self.scores.max(initial=0.0)))
        return self.scores / scale if scale > 0 else self.scores


class LexicalIndex:
    """BM25 (Lucene variant, via bm25s) over analysed passages; ids are passage row numbers."""

    PARAMS = "lexical.json"

    def __init__(self, retriever: Any) -> None:
        self._retriever = retriever  # None for an empty index: bm25s cannot index nothing

    @classmethod
    def build(cls, texts: Sequence[str], languages: Sequence[str]) -> LexicalIndex:
        import bm25s

        # bm25s sets its own logger to DEBUG on import, which floods stderr
        logging.getLogger("bm25s").setLevel(logging.WARNING)

        if not texts:
            return cls(None)
        retriever = bm25s.BM25()
        corpus = [
            analyze(t, lang) or ["\x00empty"] for t, lang in zip(texts, languages, strict=True)
        ]
        retriever.index(corpus, show_progress=False)
        return cls(retriever)

    def save(self, folder: Path) -> None:
        """Write plain .npy and .json files (no pickle) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(folder), show_progress=False)
        params = {"analyzer_version": ANALYZER_VERSION, "empty": self._retriever is None}
        (folder / self.PARAMS).write_text(json.dumps(params), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import bm25s

        try:
            params = json.loads((folder / cls.PARAMS).read_text(encoding="utf-8"))
            if params.get("empty"):
                return cls(None)
            retriever = bm25s.BM25.load(str(folder), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"cannot read the lexical index in {folder} ({exc})",
                "rebuild with `findling index`",
            ) from exc
        if params.get("analyzer_version") != ANALYZER_VERSION:
            raise IndexCorruptError(
                f"the lexical index in {folder} was analysed differently",
                "rebuild with `findling index`",
            )
        return cls(retriever)

    def scores(self, query: str, language: str) -> LexicalScores:
        if self._retriever is None:
            return LexicalScores(np.zeros(0, dtype=np.float32))
        retriever = self._retriever
        analysed = analyze(query, language)
        terms = [t for t in analysed if t in retriever.vocab_dict]
        if not terms:
            return LexicalScores(np.zeros(retriever.scores["num_docs"], dtype=np.float32))
        scores = np.asarray(retriever.get_scores(terms), dtype=np.float32)
        return LexicalScores(scores, self._full_score(analysed))

    def _full_score(self, terms: Sequence[str]) -> float:
        """Lucene BM25 of an average-length sentence holding each of ``terms`` once."""
        retriever = self._retriever
        documents = int(retriever.scores["num_docs"])
        starts = retriever.scores["indptr"]  # column j of the score matrix is term j's postings
        total = 0.0
        for term in terms:
            column = retriever.vocab_dict.get(term)
            frequency = 0 if column is None else int(starts[column + 1] - starts[column])
            idf = math.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))
            total += idf / (1 + retriever.k1)  # tf 1 at average length: tf / (tf + k1)
        return total
