"""Retrieval evaluation on SQuAD-format files: R@1, R@5, MRR@10 and nDCG@10.

The corpus file's paragraphs are indexed (one document each, into a temporary index); each
question of a queries file is relevant to the corpus paragraph that holds the same question id,
and to the sentence of that paragraph in which the answer starts.
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


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    document_id: str  # the corpus paragraph holding the same question id
    answer_start: int  # offset of the answer in that paragraph


@dataclass(frozen=True)
class Corpus:
    documents: list[Document]
    answers: dict[str, tuple[str, int]]  # question id -> (document id, answer_start)


@dataclass(frozen=True)
class Metrics:
    """Binary-relevance metrics with one relevant item per question."""

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


def load_corpus(path: Path) -> Corpus:
    """Every paragraph of a SQuAD file as a document, and where each question's answer is."""
    documents, answers = [], {}
    for a, article in enumerate(_load_json(path)["data"]):
        title = str(article.get("title", a))
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            text = paragraph["context"]
            doc_id = f"{a:03d}-{p:03d}"
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
                    answers[qa["id"]] = (doc_id, int(qa["answers"][0]["answer_start"]))
    if not documents:
        raise InvalidRequestError(f"{path} holds no paragraphs", "give a SQuAD v1.1 file")
    return Corpus(documents, answers)


def load_questions(path: Path, corpus: Corpus) -> list[Question]:
    """The questions of ``path`` whose id the corpus knows."""
    questions = []
    for article in _load_json(path)["data"]:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                if qa["id"] in corpus.answers:
                    doc_id, start = corpus.answers[qa["id"]]
                    questions.append(Question(qa["id"], qa["question"], doc_id, start))
    if not questions:
        raise InvalidRequestError(
            f"no question in {path} has an id found in the corpus file",
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


def paragraph_rank(ranked: Sequence[Placed], document_id: str) -> int | None:
    """Rank of the relevant paragraph among distinct paragraphs, in order of first hit."""
    seen: list[str] = []
    for sentence in ranked:
        if sentence.doc_id not in seen:
            seen.append(sentence.doc_id)
            if sentence.doc_id == document_id:
                return len(seen)
    return None


def answer_sentence(sentences: Sequence[Sentence], answer_start: int) -> tuple[int, int]:
    """(paragraph, sentence) of the sentence in which the answer starts (or the gap after it)."""
    holding = [s for s in sentences if s.start <= answer_start] or list(sentences[:1])
    return holding[-1].paragraph, holding[-1].sentence


def sentence_rank(ranked: Sequence[Placed], document_id: str, key: tuple[int, int]) -> int | None:
    """Rank of the relevant sentence among the ranked sentences."""
    for rank, sentence in enumerate(ranked, start=1):
        if sentence.doc_id == document_id and (sentence.paragraph, sentence.sentence) == key:
            return rank
    return None


def evaluate(
    service: SearchService,
    questions: Sequence[Question],
    method: Mode,
    queries_name: str,
    split: dict[str, list[Sentence]],
) -> MethodReport:
    """Ask every question with one method and score paragraph and sentence ranks.

    ``split`` maps each corpus document id to its sentences as the index holds them.
    """
    started = time.perf_counter()
    paragraph_ranks, sentence_ranks = [], []
    for question in questions:
        ranked = [p for p, _ in service.rank_sentences(question.text, method, SENTENCE_DEPTH)]
        paragraph_ranks.append(paragraph_rank(ranked, question.document_id))
        key = answer_sentence(split[question.document_id], question.answer_start)
        sentence_ranks.append(sentence_rank(ranked[:CUTOFF], question.document_id, key))
    return MethodReport(
        queries=queries_name,
        method=method,
        questions=len(questions),
        paragraph=metrics(paragraph_ranks),
        sentence=metrics(sentence_ranks),
        seconds=time.perf_counter() - started,
    )


def run_evaluation(
    embedder: Embedder,
    options: SearchOptions,
    corpus_path: Path,
    queries_paths: Sequence[Path],
    methods: Sequence[Mode],
    progress: Progress | None = None,
) -> tuple[float, list[MethodReport]]:
    """Index the corpus into a temporary index and evaluate every queries file and method.

    Returns the indexing time and one report per (queries file, method).
    """
    corpus = load_corpus(corpus_path)
    question_sets = [(p.name, load_questions(p, corpus)) for p in queries_paths]
    with tempfile.TemporaryDirectory(prefix="findling-eval-") as tmp:
        service = SearchService(Path(tmp) / "index", embedder, options)
        summary = service.build_documents(corpus.documents, progress=progress)
        split = {d.id: split_document(d) for d in corpus.documents}
        reports = [
            evaluate(service, questions, method, name, split)
            for name, questions in question_sets
            for method in methods
        ]
    return summary.seconds, reports
