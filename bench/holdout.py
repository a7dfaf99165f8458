"""The hold-out check: ``python -m bench.holdout [--index-dir DIR] [--json]`` (see bench/holdout/).

Indexes ``bench/holdout/docs/`` with the configured settings (``FINDLING_*``) into a temporary
index (or ``--index-dir``), asks every question of ``bench/holdout/questions.jsonl`` (k=3, the
default mode) and reports, per language pair (question → document) and overall:

- top-1: the first result's sentence is the answer sentence;
- top-3: one of the first three results is;
- paragraph@1: the answer sentence stands in the first result's context (the right paragraph).

A report only: never choose a setting, weight or recipe by these figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from indexer import open_index

HOLDOUT = Path(__file__).resolve().parent / "holdout"
DOCS = HOLDOUT / "docs"
QUESTIONS = HOLDOUT / "questions.jsonl"
K = 3
PAIRS = ("de→de", "en→de", "de→en", "en→en")  # question language → document language


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    language: str  # of the question
    document: str  # file name in docs/; its language is the part before the suffix: name.de.md
    answer: str  # the one sentence that answers it, verbatim

    @property
    def pair(self) -> str:
        return f"{self.language}→{self.document.split('.')[-2]}"


class _Result(Protocol):  # read-only: the library's results are frozen
    @property
    def text(self) -> str: ...
    @property
    def context(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def score(self) -> float: ...


class _Response(Protocol):
    @property
    def results(self) -> Sequence[_Result]: ...


class _Index(Protocol):
    """The part of the library's search service this check uses."""

    def search(self, query: str, k: int) -> _Response: ...


@dataclass(frozen=True)
class Outcome:
    id: str
    pair: str
    rank: int | None  # of the answer sentence among the first K results
    paragraph_top1: bool


def load_questions(path: Path = QUESTIONS, docs: Path = DOCS) -> list[Question]:
    """The questions, each checked to quote its answer verbatim from its document."""
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            question = Question(**json.loads(line))
            if question.answer not in (docs / question.document).read_text(encoding="utf-8"):
                raise SystemExit(f"{question.id}: the answer is not in {question.document}")
            questions.append(question)
    return questions


def ask(index: _Index, question: Question) -> Outcome:
    results = index.search(question.question, k=K).results[:K]
    hits = [Path(r.source).name == question.document for r in results]
    ranks = [n for n, (r, hit) in enumerate(zip(results, hits, strict=True), 1) if hit]
    rank = next((n for n in ranks if results[n - 1].text == question.answer), None)
    paragraph = bool(results) and hits[0] and question.answer in results[0].context
    return Outcome(question.id, question.pair, rank, paragraph)


def run(index_dir: Path, questions: Sequence[Question]) -> dict[str, Any]:
    index = open_index(index_dir)
    summary = index.build([DOCS])
    outcomes = [ask(index, q) for q in questions]
    pairs = [*PAIRS, *sorted({o.pair for o in outcomes} - set(PAIRS))]
    table = {p: _score([o for o in outcomes if o.pair == p]) for p in pairs}
    table["all"] = _score(outcomes)
    return {
        "model": str(getattr(summary, "model", "")),
        "documents": len({q.document for q in questions}),
        "questions": len(questions),
        "k": K,
        "scores": table,
        "outcomes": [asdict(o) for o in outcomes],
    }


def _score(outcomes: Sequence[Outcome]) -> dict[str, float | int]:
    n = len(outcomes)
    top1 = sum(o.rank == 1 for o in outcomes)
    top3 = sum(o.rank is not None for o in outcomes)
    paragraph = sum(o.paragraph_top1 for o in outcomes)
    return {
        "n": n,
        "top1": top1,
        "top3": top3,
        "paragraph_top1": paragraph,
        "top1_rate": round(top1 / n, 3) if n else 0.0,
        "top3_rate": round(top3 / n, 3) if n else 0.0,
        "paragraph_top1_rate": round(paragraph / n, 3) if n else 0.0,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"hold-out check: {report['questions']} questions on {report['documents']} documents, "
        f"model {report['model'] or '?'}, k={report['k']}, default mode (report only, never tune)"
    )
    print(f"{'pair':<6} {'n':>3}  {'top-1':>11}  {'top-3':>11}  {'paragraph@1':>11}")
    for pair, s in report["scores"].items():
        cells = [
            f"{s[key]:>3} {s[key + '_rate']:.3f}".rjust(11)
            for key in ("top1", "top3", "paragraph_top1")
        ]
        print(f"{pair:<6} {s['n']:>3}  " + "  ".join(cells))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.holdout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--index-dir", type=Path, help="index here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    questions = load_questions()
    if args.index_dir:
        report = run(args.index_dir, questions)
    else:
        with tempfile.TemporaryDirectory(prefix="findling-holdout-") as tmp:
            report = run(Path(tmp) / "index", questions)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
