"""What a stored vector is: the vector recipe, recorded whole in every index it builds.

A sentence is embedded alone and, unless the recipe is ``none``, together with its context (its
paragraph, cut into pieces when long, or a window of neighbouring sentences); the stored vector
is the mean of the two. With ``centring="language"`` (the default for a model that ships
language means) every embedding is first moved away from its language's mean and brought back to
unit length, questions too: what is left says what a text is about more than which language it
is in, so a question finds its answer in the other language although its own language's texts
are there too. One index holds one kind of vector, so readers and incremental updates use the
recipe of the index they opened, never the configured one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from indexer.defaults import CENTRING, PIECE_CHARS, RECIPE, RECIPE_WINDOW, Centring, RecipeKind
from indexer.documents import Sentence, neighbours
from indexer.errors import IndexCorruptError, InvalidRequestError

if TYPE_CHECKING:
    from indexer.model.embedder import Embedder

KINDS: tuple[str, ...] = get_args(RecipeKind)
CENTRINGS: tuple[str, ...] = get_args(Centring)
LANGUAGE_MEANS_FILE = Path(__file__).with_name("language_means.json")
# what is centred: a bare sentence, the context it is embedded with, a question (e5's prompts
# differ, and so do their means)
Role = str
ROLES = ("sentence", "context", "query")


@dataclass(frozen=True)
class LanguageMeans:
    """Each language's mean embedding by one model, per role, and how much of it is taken away
    (``strength``); fitted by ``bench/centre.py`` on dev data."""

    model: str
    strength: float
    means: Mapping[str, Mapping[str, np.ndarray]]  # role -> language -> mean

    def centre(self, vectors: np.ndarray, languages: Sequence[str], role: Role) -> np.ndarray:
        """``vectors`` moved away from their language's mean, at unit length. A language
        without a mean of its own takes the mean of those known (the part they share)."""
        known = self.means[role]
        shared = np.mean(list(known.values()), axis=0)
        table = np.stack([known.get(language, shared) for language in languages])
        moved = np.asarray(vectors, dtype=np.float32) - self.strength * table
        norms = np.linalg.norm(moved, axis=-1, keepdims=True)
        return np.asarray(moved / np.where(norms > 0, norms, 1.0), dtype=np.float32)


@lru_cache(maxsize=8)
def language_means(model: str) -> LanguageMeans | None:
    """The shipped language means of ``model`` (``indexer/language_means.json``), if any."""
    if not LANGUAGE_MEANS_FILE.is_file():
        return None
    data = json.loads(LANGUAGE_MEANS_FILE.read_text(encoding="utf-8"))
    if data.get("model") != model:
        return None
    means = {
        role: {lang: np.asarray(v, dtype=np.float32) for lang, v in data["means"][role].items()}
        for role in ROLES
    }
    return LanguageMeans(model, float(data["strength"]), means)


@dataclass(frozen=True)
class VectorRecipe:
    """``kind``: what a sentence is embedded with besides itself (paragraph, window or none);
    ``window``: neighbours either side for ``window``; ``piece_chars``: the longest paragraph
    piece for ``paragraph``; ``centring``: ``language`` moves every embedding away from its
    language's mean (see the module's docstring), ``none`` keeps them as the model gives them."""

    kind: str = RECIPE
    window: int = RECIPE_WINDOW
    piece_chars: int = PIECE_CHARS
    centring: str = CENTRING

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidRequestError(
                f"unknown vector recipe {self.kind!r}", f"use one of: {', '.join(KINDS)}"
            )
        if self.centring not in CENTRINGS:
            raise InvalidRequestError(
                f"unknown centring {self.centring!r}", f"use one of: {', '.join(CENTRINGS)}"
            )

    def for_model(self, model: str) -> VectorRecipe:
        """The recipe a new index of ``model`` gets: no centring if the model ships no means."""
        if self.centring == "language" and language_means(model) is None:
            return replace(self, centring="none")
        return self

    def _means(self, model: str) -> LanguageMeans | None:
        if self.centring == "none":
            return None
        means = language_means(model)
        if means is None:
            raise IndexCorruptError(
                f"the index centres {model}'s vectors on language means this version does not ship",
                "rebuild with `findling index --rebuild`",
            )
        return means

    def query_vector(self, embedder: Embedder, query: str, language: str) -> np.ndarray:
        """A question's vector, made as this recipe makes stored vectors."""
        vector = embedder.embed_query(query)
        means = self._means(embedder.name)
        return vector if means is None else means.centre(vector[None, :], [language], "query")[0]

    def text_vector(self, embedder: Embedder, text: str, language: str, role: Role) -> np.ndarray:
        """A text's vector embedded as a question (``role="query"``) or as a passage."""
        if role == "query":
            return self.query_vector(embedder, text, language)
        vector = embedder.embed_documents([text])[0]
        means = self._means(embedder.name)
        return vector if means is None else means.centre(vector[None, :], [language], role)[0]

    @property
    def sentence_alone(self) -> bool:
        """Whether a stored vector is the bare sentence's embedding (no context with it)."""
        return self.kind == "none" or (self.kind == "window" and self.window == 0)

    def describe(self) -> str:
        """What a stored vector is, as a formula."""
        if self.sentence_alone:
            formula = "embed(sentence)"
        elif self.kind == "paragraph":
            formula = (
                "mean(embed(sentence), embed(its paragraph, or the piece of at most "
                f"{self.piece_chars} characters of it that holds the sentence))"
            )
        else:
            formula = (
                "mean(embed(sentence), embed(sentence with its neighbours in the paragraph, "
                f"up to {self.window} each side))"
            )
        if self.centring == "language":
            formula += (
                "; embed(x) = unit(model(x) - s x mean(model, language of x)), the question's too"
            )
        return formula

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
        centred = " (each centred on its language's mean)" if self.centring == "language" else ""
        return (
            "the mean of the cosine similarities of the question with the sentence and "
            f"{context}{centred}, in [-1, 1]"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any]) -> VectorRecipe:
        """The recipe a manifest records; manifests written before the recipe was recorded
        whole name ``context`` and ``context_window`` (and, before those, used a window of 1)."""
        try:
            if "recipe" in data:
                # indexes written before centring existed hold model vectors as they are
                return cls(**{"centring": "none", **data["recipe"]})
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
        means = self._means(embedder.name)
        languages = [s.language for s in sentences]
        if means is not None:
            sentence_vectors = means.centre(sentence_vectors, languages, "sentence")
        if contexts is None:
            return np.asarray(sentence_vectors, dtype=np.float32)
        context_vectors = embedded[[row[t] for t in contexts]]
        if means is not None:
            context_vectors = means.centre(context_vectors, languages, "context")
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
