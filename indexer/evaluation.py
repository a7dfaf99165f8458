"""Retrieval evaluation on SQuAD-format files: R@1, R@5, MRR@10 and nDCG@10.

The paragraphs of one or more corpus files are indexed (one document each, into a temporary
index). A question of a queries file is relevant to every corpus paragraph that holds the same
question id (with parallel files, such as XQuAD's languages, a paragraph and its translation),
and to the sentence of such a paragraph in which its answer starts. ``articles`` limits the
questions to some articles of their file, so that settings can be chosen on one part and
reported on another (see the README, "Retrieval quality").

Three levels are scored: the paragraph (its rank among distinct paragraphs), the sentence (its
rank among all ranked sentences) and the shown sentence (its rank among the results a search
shows, one per paragraph, each with its best sentence highlighted).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from indexer.defaults import Mode
from indexer.documents import Document, Sentence, detect_language, split_document
from indexer.errors import InvalidRequestError, SourceNotFoundError
from indexer.model.embedder import Embedder
from indexer.options import SearchOptions
from indexer.service import Progress, SearchService

CUTOFF = 10
SENTENCE_DEPTH = 200  # sentences ranked per question; enough to find 10 distinct paragraphs


class Placed(Protocol):
    """Where a ranked sentence stands: a Sentence, or a SentenceRef from the service."""

    @property
    def doc_id(self) -> str: ...

    @property
    def paragraph(self) -> int: ...

    @property
    def sentence(self) -> int: ...


Key = tuple[str, int, int]  # (document id, paragraph, sentence)


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    documents: frozenset[str]  # the corpus paragraphs holding the same question id
    sentences: frozenset[Key]  # the sentences of those paragraphs in which the answer starts
    article: int  # position of its article in its file


@dataclass(frozen=True)
class Corpus:
    documents: list[Document]
    answers: dict[str, list[tuple[str, int]]]  # question id -> (document id, answer_start)s


@dataclass(frozen=True)
class Metrics:
    """Binary-relevance metrics; a question's rank is that of its first relevant item."""

    count: int
    r1: float
    r5: float
    mrr10: float
    ndcg10: float


@dataclass(frozen=True)
class MethodReport:
    queries: str
    method: str
    questions: int
    paragraph: Metrics
    sentence: Metrics
    shown: Metrics
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"no such file: {path}", "give a SQuAD-format JSON file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"{path} is not JSON ({exc})", "give a SQuAD v1.1 file") from exc
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InvalidRequestError(f"{path} has no 'data' list", "give a SQuAD v1.1 file")
    return data


def load_corpus(paths: Sequence[Path]) -> Corpus:
    """Every paragraph of the SQuAD files as a document, and where each question's answers are.

    With several files, document ids start with the file's name, so that parallel files keep
    their paragraphs apart.
    """
    documents: list[Document] = []
    answers: dict[str, list[tuple[str, int]]] = {}
    for path in paths:
        prefix = f"{path.name}:" if len(paths) > 1 else ""
        for a, article in enumerate(_load_json(path)["data"]):
            title = str(article.get("title", a))
            for p, paragraph in enumerate(article.get("paragraphs", [])):
                text = paragraph["context"]
                doc_id = f"{prefix}{a:03d}-{p:03d}"
                documents.append(
                    Document(
                        id=doc_id,
                        path=f"{path.name}#{title}/{p}",
                        text=text,
                        sha256=hashlib.sha256(text.encode()).hexdigest(),
                        language=detect_language(text),
                    )
                )
                for qa in paragraph.get("qas", []):
                    if qa.get("answers"):
                        start = int(qa["answers"][0]["answer_start"])
                        answers.setdefault(qa["id"], []).append((doc_id, start))
    if not documents:
        names = ", ".join(str(p) for p in paths)
        raise InvalidRequestError(f"{names} holds no paragraphs", "give a SQuAD v1.1 file")
    return Corpus(documents, answers)


def load_questions(
    path: Path, corpus: Corpus, split: dict[str, list[Sentence]], articles: range | None = None
) -> list[Question]:
    """The questions of ``path`` whose id the corpus knows (of ``articles`` only, if given);
    ``split`` maps each corpus document to its sentences as the index holds them."""
    questions = []
    for a, article in enumerate(_load_json(path)["data"]):
        if articles is not None and a not in articles:
            continue
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                places = corpus.answers.get(qa["id"], [])
                if places:
                    documents = frozenset(doc_id for doc_id, _ in places)
                    sentences = frozenset(
                        (doc_id, *answer_sentence(split[doc_id], start)) for doc_id, start in places
                    )
                    questions.append(Question(qa["id"], qa["question"], documents, sentences, a))
    if not questions:
        raise InvalidRequestError(
            f"no question in {path} has an id found in the corpus (in the articles asked for)",
            "the corpus and queries files must share question ids (e.g. parallel XQuAD files)",
        )
    return questions


def metrics(ranks: Sequence[int | None]) -> Metrics:
    """Metrics from each question's 1-based rank of its relevant item (None: not found)."""
    n = len(ranks)
    if n == 0:
        return Metrics(0, 0.0, 0.0, 0.0, 0.0)
    found = [r for r in ranks if r is not None]
    return Metrics(
        count=n,
        r1=sum(r == 1 for r in found) / n,
        r5=sum(r <= 5 for r in found) / n,
        mrr10=sum(1 / r for r in found if r <= CUTOFF) / n,
        ndcg10=sum(1 / math.log2(r + 1) for r in found if r <= CUTOFF) / n,
    )


def paragraph_rank(ranked: Sequence[Placed], documents: frozenset[str]) -> int | None:
    """Rank of the first relevant paragraph among distinct paragraphs, in order of first hit."""
    seen: list[str] = []
    for sentence in ranked:
        if sentence.doc_id not in seen:
            seen.append(sentence.doc_id)
            if sentence.doc_id in documents:
                return len(seen)
    return None


def answer_sentence(sentences: Sequence[Sentence], answer_start: int) -> tuple[int, int]:
    """(paragraph, sentence) of the sentence in which the answer starts (or the gap after it)."""
    holding = [s for s in sentences if s.start <= answer_start] or list(sentences[:1])
    return holding[-1].paragraph, holding[-1].sentence


def sentence_rank(ranked: Sequence[Placed], keys: frozenset[Key]) -> int | None:
    """Rank of the first relevant sentence among the ranked sentences."""
    for rank, sentence in enumerate(ranked, start=1):
        if (sentence.doc_id, sentence.paragraph, sentence.sentence) in keys:
            return rank
    return None


def shown_rank(ranked: Sequence[Placed], keys: frozenset[Key]) -> int | None:
    """Rank of the first result that highlights a relevant sentence, among the results a
    search shows: the best sentence of each paragraph, paragraphs in order of first hit."""
    seen: set[tuple[str, int]] = set()
    for sentence in ranked:
        paragraph = (sentence.doc_id, sentence.paragraph)
        if paragraph in seen:
            continue
        seen.add(paragraph)
        if (sentence.doc_id, sentence.paragraph, sentence.sentence) in keys:
            return len(seen)
    return None


def evaluate(
    service: SearchService, questions: Sequence[Question], method: Mode, queries_name: str
) -> MethodReport:
    """Ask every question with one method and score paragraph, sentence and shown ranks."""
    started = time.perf_counter()
    paragraph_ranks, sentence_ranks, shown_ranks = [], [], []
    for question in questions:
        ranked = [p for p, _ in service.rank_sentences(question.text, method, SENTENCE_DEPTH)]
        paragraph_ranks.append(paragraph_rank(ranked, question.documents))
        sentence_ranks.append(sentence_rank(ranked[:CUTOFF], question.sentences))
        shown_ranks.append(shown_rank(ranked, question.sentences))
    return MethodReport(
        queries=queries_name,
        method=method,
        questions=len(questions),
        paragraph=metrics(paragraph_ranks),
        sentence=metrics(sentence_ranks),
        shown=metrics(shown_ranks),
        seconds=time.perf_counter() - started,
    )


def run_evaluation(
    embedder: Embedder,
    options: SearchOptions,
    corpus_paths: Sequence[Path],
    queries_paths: Sequence[Path],
    methods: Sequence[Mode],
    progress: Progress | None = None,
    articles: range | None = None,
) -> tuple[float, list[MethodReport]]:
    """Index the corpus files into a temporary index and evaluate every queries file and
    method (on the questions of ``articles`` only, if given).

    Returns the indexing time and one report per (queries file, method).
    """
    corpus = load_corpus(corpus_paths)
    split = {d.id: split_document(d) for d in corpus.documents}
    question_sets = [(p.name, load_questions(p, corpus, split, articles)) for p in queries_paths]
    with tempfile.TemporaryDirectory(prefix="findling-eval-") as tmp:
        service = SearchService(Path(tmp) / "index", embedder, options)
        summary = service.build_documents(corpus.documents, progress=progress)
        reports = [
            evaluate(service, questions, method, name)
            for name, questions in question_sets
            for method in methods
        ]
    return summary.seconds, reports


def parse_articles(text: str) -> range:
    """``"12-23"`` -> range(12, 24); ``"5"`` -> range(5, 6)."""
    first, _, last = text.partition("-")
    try:
        return range(int(first), int(last or first) + 1)
    except ValueError:
        raise InvalidRequestError(
            f"articles {text!r} is not a range", "write a range of article numbers, e.g. 12-23"
        ) from None
