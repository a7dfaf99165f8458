"""What a stored vector is: the vector recipe, recorded whole in every index it builds.

A sentence is embedded alone and, unless the recipe is ``none``, together with its context (its
paragraph, cut into pieces when long, or a window of neighbouring sentences); the stored vector
is the mean of the two. One index holds one kind of vector, so readers and incremental updates
use the recipe of the index they opened, never the configured one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from indexer.defaults import PIECE_CHARS, RECIPE, RECIPE_WINDOW, RecipeKind
from indexer.documents import Sentence, neighbours
from indexer.errors import IndexCorruptError, InvalidRequestError

if TYPE_CHECKING:
    from indexer.model.embedder import Embedder

KINDS: tuple[str, ...] = get_args(RecipeKind)


@dataclass(frozen=True)
class VectorRecipe:
    """``kind``: what a sentence is embedded with besides itself (paragraph, window or none);
    ``window``: neighbours either side for ``window``; ``piece_chars``: the longest paragraph
    piece for ``paragraph``."""

    kind: str = RECIPE
    window: int = RECIPE_WINDOW
    piece_chars: int = PIECE_CHARS

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidRequestError(
                f"unknown vector recipe {self.kind!r}", f"use one of: {', '.join(KINDS)}"
            )

    @property
    def sentence_alone(self) -> bool:
        """Whether a stored vector is the bare sentence's embedding (no context with it)."""
        return self.kind == "none" or (self.kind == "window" and self.window == 0)

    def describe(self) -> str:
        """What a stored vector is, as a formula."""
        if self.sentence_alone:
            return "embed(sentence)"
        if self.kind == "paragraph":
            return (
                "mean(embed(sentence), embed(its paragraph, or the piece of at most "
                f"{self.piece_chars} characters of it that holds the sentence))"
            )
        return (
            "mean(embed(sentence), embed(sentence with its neighbours in the paragraph, "
            f"up to {self.window} each side))"
        )

    def dense_score_meaning(self) -> str:
        """What a dense score is under this recipe, in words (for people and chatbots)."""
        if self.sentence_alone:
            return "the cosine similarity of the question with the sentence, in [-1, 1]"
        context = (
            f"with its paragraph (or the piece of a paragraph over {self.piece_chars:,} "
            "characters that holds it)"
            if self.kind == "paragraph"
            else f"with it and its neighbours (up to {self.window} each side)"
        )
        return (
            "the mean of the cosine similarities of the question with the sentence and "
            f"{context}, in [-1, 1]"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any]) -> VectorRecipe:
        """The recipe a manifest records; manifests written before the recipe was recorded
        whole name ``context`` and ``context_window`` (and, before those, used a window of 1)."""
        try:
            if "recipe" in data:
                return cls(**data["recipe"])
            return cls(str(data.get("context", "window")), int(data.get("context_window", 1)))
        except (TypeError, ValueError, InvalidRequestError) as exc:
            raise IndexCorruptError(
                f"the manifest's vector recipe is not readable ({exc})",
                "rebuild with `findling index --rebuild`",
            ) from exc

    def context_texts(
        self, sentences: Sequence[Sentence], texts: Mapping[str, str]
    ) -> list[str] | None:
        """The text each sentence is embedded with besides itself, or None for the bare sentence.

        ``sentences`` come in document order; ``texts`` maps document ids to their text.
        """
        if self.sentence_alone:
            return None
        if self.kind == "window":
            by_position = dict(enumerate(sentences))
            contexts = []
            for i, sentence in by_position.items():
                first, last = neighbours(by_position, i, self.window)
                text = texts[sentence.doc_id]
                contexts.append(text[by_position[first].start : by_position[last].end])
            return contexts
        contexts = []
        for _, paragraph in groupby(sentences, key=lambda s: (s.doc_id, s.paragraph)):
            for piece in pieces(list(paragraph), self.piece_chars):
                contexts += [texts[piece[0].doc_id][piece[0].start : piece[-1].end]] * len(piece)
        return contexts

    def vectors(
        self,
        embedder: Embedder,
        sentences: Sequence[Sentence],
        texts: Mapping[str, str],
        batch_size: int,
    ) -> np.ndarray:
        """The stored vector of each sentence, shape (len(sentences), dimension).

        Each text is embedded once, however many sentences share it (a paragraph serves all
        its sentences).
        """
        # the context gives a sentence what it refers to ("he", "the city"); measured better
        # than either alone. The mean is not re-normalised: a sentence that agrees with its
        # context keeps a longer vector and scores higher, which measured 0.015 MRR@10 better.
        bare = [s.text for s in sentences]
        contexts = self.context_texts(sentences, texts)
        unique = list(dict.fromkeys(bare + (contexts or [])))
        embedded = _embed_all(embedder, unique, batch_size)
        row = {text: i for i, text in enumerate(unique)}
        sentence_vectors = embedded[[row[t] for t in bare]]
        if contexts is None:
            return np.asarray(sentence_vectors, dtype=np.float32)
        context_vectors = embedded[[row[t] for t in contexts]]
        return np.asarray((sentence_vectors + context_vectors) / 2, dtype=np.float32)


def pieces(sentences: list[Sentence], limit: int) -> list[list[Sentence]]:
    """A paragraph's sentences cut, between sentences, into runs of about equal length.

    As many runs as ``limit`` characters need; a run ends at the first sentence reaching its share.
    """
    first = sentences[0].start
    count = -(-(sentences[-1].end - first) // limit)
    share = (sentences[-1].end - first) / count
    runs: list[list[Sentence]] = [[]]
    for sentence in sentences:
        runs[-1].append(sentence)
        if len(runs) < count and sentence.end - first >= share * len(runs):
            runs.append([])
    return [run for run in runs if run]


def _embed_all(embedder: Embedder, texts: list[str], batch_size: int) -> np.ndarray:
    # sorting by length keeps padding inside each batch small; order is restored below
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunks = []
    for begin in range(0, len(order), batch_size):
        batch = [texts[i] for i in order[begin : begin + batch_size]]
        chunks.append(embedder.embed_documents(batch))
    sorted_vectors = np.concatenate(chunks).astype(np.float32)
    vectors = np.empty_like(sorted_vectors)
    vectors[np.asarray(order, dtype=np.int64)] = sorted_vectors
    return vectors
