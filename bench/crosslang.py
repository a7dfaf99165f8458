"""Cross-language retrieval beside same-language texts: ``python -m bench.crosslang``.

XQuAD's German and English files are parallel, so ``findling eval`` over both (a translation
counts as relevant) never asks the hard question: does an English question find its answer when
that answer exists in German only, among English texts on other subjects? Here the collection
holds the German paragraphs of half the articles and the English paragraphs of the other half
(and then the other way round), and every question is asked in both languages. Reported per
direction (question > answer language), paragraph, sentence and shown MRR@10, for the vector
centrings given (``--centrings language,none``) and the modes given. Settings are chosen on
``--articles 0-11``; 12-23 is the report half.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from indexer.documents import split_document
from indexer.evaluation import Corpus, evaluate, load_corpus, load_questions, parse_articles
from indexer.model.factory import make_embedder
from indexer.options import SearchOptions
from indexer.service import SearchService
from indexer.settings import Settings

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
LANGUAGES = ("de", "en")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.crosslang", description=__doc__)
    parser.add_argument("--eval-dir", default=str(EVAL))
    parser.add_argument("--articles", default="12-23")
    parser.add_argument("--centrings", default="language,none")
    parser.add_argument("--modes", default="hybrid,dense")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    articles = parse_articles(args.articles)
    settings = Settings()
    embedder = make_embedder(settings)
    files = {lang: Path(args.eval_dir) / f"xquad-dev.{lang}.json" for lang in LANGUAGES}
    everything = load_corpus([files[lang] for lang in LANGUAGES])
    half = len(articles) // 2
    report: dict[str, Any] = {"articles": args.articles, "model": embedder.name, "results": {}}
    for centring in args.centrings.split(","):
        options = SearchOptions.from_settings(settings)
        options = replace(options, recipe=replace(options.recipe, centring=centring))
        ranks: dict[str, dict[str, list[float]]] = {}
        for swap in (0, 1):
            # swap 0: German paragraphs for the first half of the articles, English for the rest
            first, second = LANGUAGES if swap == 0 else LANGUAGES[::-1]

            def language_of(article: int, first: str = first, second: str = second) -> str:
                return first if article - articles.start < half else second

            kept = [
                d
                for d in everything.documents
                if _article(d.id) in articles
                and d.id.startswith(files[language_of(_article(d.id))].name)
            ]
            ids = {d.id for d in kept}
            corpus = Corpus(
                kept,
                {
                    q: [(d, s) for d, s in places if d in ids]
                    for q, places in everything.answers.items()
                },
            )
            split = {d.id: split_document(d) for d in kept}
            with tempfile.TemporaryDirectory(prefix="findling-crosslang-") as tmp:
                service = SearchService(Path(tmp) / "index", embedder, options)
                service.build_documents(kept)
                for asked in LANGUAGES:
                    questions = load_questions(files[asked], corpus, split, articles)
                    for mode in args.modes.split(","):
                        for answer in LANGUAGES:
                            subset = [q for q in questions if language_of(q.article) == answer]
                            result = evaluate(service, subset, mode, asked)
                            cell = ranks.setdefault(f"{mode} {asked}>{answer}", {})
                            for level in ("paragraph", "sentence", "shown"):
                                metric = getattr(result, level)
                                cell.setdefault(level, []).append(metric.mrr10 * metric.count)
                            cell.setdefault("n", []).append(result.questions)
        table = {
            key: {
                level: round(sum(cell[level]) / sum(cell["n"]), 3)
                for level in ("paragraph", "sentence", "shown")
            }
            | {"questions": int(sum(cell["n"]))}
            for key, cell in sorted(ranks.items())
        }
        report["results"][centring] = table
        for key, row in table.items():
            print(f"{args.articles} centring={centring:8} {key:14} {row}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _article(doc_id: str) -> int:
    # ids of a corpus read from several files: "<file name>:<article>-<paragraph>"
    return int(doc_id.rpartition(":")[2].split("-")[0])


if __name__ == "__main__":
    main()
