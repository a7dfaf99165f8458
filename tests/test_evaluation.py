"""Evaluation metrics on hand-made cases, and `findling eval` end to end on a tiny SQuAD pair."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexer.cli import app
from indexer.documents import Sentence
from indexer.evaluation import (
    answer_sentence,
    metrics,
    paragraph_rank,
    parse_articles,
    sentence_rank,
    shown_rank,
)
from indexer.settings import Settings


def test_metrics_on_known_ranks() -> None:
    m = metrics([1, 2, None, 11])
    assert m.count == 4
    assert m.r1 == 0.25
    assert m.r5 == 0.5
    assert m.mrr10 == pytest.approx((1 + 1 / 2) / 4)  # rank 11 is past the cut-off
    assert m.ndcg10 == pytest.approx((1 + 1 / math.log2(3)) / 4)


def test_metrics_of_nothing() -> None:
    assert metrics([]).count == 0


def _p(doc: str, paragraph: int, sentence: int, start: int, end: int) -> Sentence:
    return Sentence(doc, paragraph, sentence, start, end, 0, 100, "x", "en")


def test_paragraph_rank_counts_distinct_paragraphs() -> None:
    ranked = [_p("a", 0, 0, 0, 5), _p("a", 0, 1, 6, 9), _p("b", 0, 0, 0, 5), _p("c", 0, 0, 0, 5)]
    assert paragraph_rank(ranked, frozenset({"b"})) == 2
    assert paragraph_rank(ranked, frozenset({"c", "b"})) == 2  # the first relevant one counts
    assert paragraph_rank(ranked, frozenset({"z"})) is None


def test_answer_sentence_and_its_rank() -> None:
    sentences = [_p("a", 0, 0, 0, 10), _p("a", 0, 1, 11, 20), _p("a", 0, 2, 21, 30)]
    assert answer_sentence(sentences, 12) == (0, 1)
    assert answer_sentence(sentences, 10) == (0, 0)  # in the gap after a sentence
    ranked = [sentences[2], sentences[1]]
    assert sentence_rank(ranked, frozenset({("a", 0, 1)})) == 2
    assert sentence_rank(ranked, frozenset({("a", 0, 0)})) is None


def test_shown_rank_counts_the_best_sentence_of_each_paragraph() -> None:
    ranked = [_p("a", 0, 2, 0, 5), _p("b", 0, 0, 0, 5), _p("a", 0, 1, 6, 9), _p("c", 1, 0, 0, 5)]
    # the right sentence of paragraph a ranks third, but a search shows a's best one (2)
    assert shown_rank(ranked, frozenset({("a", 0, 1)})) is None
    assert shown_rank(ranked, frozenset({("c", 1, 0)})) == 3
    assert sentence_rank(ranked, frozenset({("a", 0, 1)})) == 3


def test_articles_are_a_range() -> None:
    assert parse_articles("12-23") == range(12, 24) and parse_articles("3") == range(3, 4)


def _squad(path: Path, paragraphs: list[tuple[str, list[tuple[str, str, int]]]]) -> Path:
    data = {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {"id": qid, "question": q, "answers": [{"answer_start": a, "text": ""}]}
                            for qid, q, a in qas
                        ],
                    }
                    for context, qas in paragraphs
                ],
            }
        ],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_eval_command_reports_every_method(hashing_env: Settings, tmp_path: Path) -> None:
    corpus = _squad(
        tmp_path / "corpus.json",
        [
            ("Pasta is cooked in salted water. Drain it early.", [("q1", "unused", 33)]),
            ("The oven is preheated. Bread bakes for forty minutes.", [("q2", "unused", 0)]),
        ],
    )
    queries = _squad(
        tmp_path / "queries.json",
        [("", [("q1", "drain early", 0), ("q2", "oven preheated", 0), ("q9", "unknown", 0)])],
    )
    result = CliRunner().invoke(
        app, ["eval", "--corpus", str(corpus), "--queries", str(queries), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["method"] for r in report["reports"]] == ["dense", "bm25", "hybrid"]
    bm25 = report["reports"][1]
    assert bm25["questions"] == 2  # q9 has no paragraph in the corpus
    assert bm25["paragraph"]["r1"] == 1.0
    assert bm25["sentence"]["r1"] == 1.0  # "Drain it early." and "The oven is preheated."

    # the table, piped: every column and number whole (rich assumes 80 columns otherwise)
    table = (
        CliRunner().invoke(app, ["eval", "--corpus", str(corpus), "--queries", str(queries)]).stdout
    )
    rows = [line for line in table.splitlines() if "queries.json" in line]
    assert len(rows) == 9 and all("…" not in row for row in rows)
    assert "MRR@10" in table and "nDCG@10" in table


def test_parallel_corpora_count_a_translation_as_relevant(
    hashing_env: Settings, tmp_path: Path
) -> None:
    german = _squad(
        tmp_path / "de.json",
        [("Nudeln kocht man in Salzwasser.", [("q1", "Wie kocht man Nudeln?", 0)])],
    )
    english = _squad(
        tmp_path / "en.json",
        [("Pasta is cooked in salted water.", [("q1", "How is pasta cooked in water?", 0)])],
    )
    args = ["eval", "--corpus", str(german), "--corpus", str(english), "--queries", str(english)]
    result = CliRunner().invoke(app, [*args, "--method", "bm25", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["reports"][0]
    assert report["paragraph"]["r1"] == 1.0 and report["shown"]["r1"] == 1.0
    none = CliRunner().invoke(app, [*args, "--articles", "1-2"])
    assert none.exit_code == 1 and "in the articles asked for" in none.stderr


def test_eval_rejects_files_that_share_no_question(hashing_env: Settings, tmp_path: Path) -> None:
    corpus = _squad(tmp_path / "c.json", [("Some text.", [("a", "q", 0)])])
    queries = _squad(tmp_path / "q.json", [("", [("b", "q", 0)])])
    result = CliRunner().invoke(app, ["eval", "--corpus", str(corpus), "--queries", str(queries)])
    assert result.exit_code == 1
    assert "share question ids" in result.stderr
