"""How well "more like this" finds a document's translation: ``python -m bench.similar``.

XQuAD's German and English development paragraphs are translations of each other. Both are
indexed as one collection (default settings, the real model); then, for every paragraph, the
other language's documents are searched (``filters={"lang": ...}``, ``group="document"``) with

- ``document``: ``similar(document_id=...)``, the mean of its stored sentence vectors;
- ``text/query`` and ``text/passage``: ``similar(text=...)`` with the paragraph's text, embedded
  with e5's ``query: `` or ``passage: `` prompt;
- ``sentence/query`` and ``sentence/passage``: the same with its first sentence only,

and the rank of its translation among the documents found gives R@1 and MRR@10: among the other
language's documents, and among all other documents, where paragraphs of the same article in the
same language compete with the translation. This chose ``SIMILAR_TEXT_AS`` (indexer/service.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from indexer import open_index, service
from indexer.documents import Document, split_document
from indexer.evaluation import load_corpus
from indexer.results import Answer

# the XQuAD dev files (not shipped): the team's shared folder beside the checkout, as bench.run
EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
CUTOFF = 10


def _documents(corpus: Path, language: str) -> list[Document]:
    return [
        replace(d, id=f"{language}-{d.id}", metadata={"id": f"{language}-{d.id}"})
        for d in load_corpus([corpus]).documents
    ]


def _rank(answer: Answer, wanted: str) -> int | None:
    documents = list(dict.fromkeys(hit.document_id for hit in answer.results))
    return documents.index(wanted) + 1 if wanted in documents else None


def _metrics(ranks: list[int | None]) -> dict[str, float]:
    return {
        "r1": sum(r == 1 for r in ranks) / len(ranks),
        "mrr10": sum(1 / r for r in ranks if r is not None and r <= CUTOFF) / len(ranks),
    }


def run(german: Path, english: Path) -> dict[str, Any]:
    documents = _documents(german, "de") + _documents(english, "en")
    by_id = {d.id: d for d in documents}
    with tempfile.TemporaryDirectory(prefix="findling-similar-") as folder:
        index = open_index(folder)
        started = time.perf_counter()
        index.build_documents(documents)
        indexed = time.perf_counter() - started

        def twin_rank(document: Document, ask: Callable[..., Answer], among: str) -> int | None:
            other = "en" if document.id.startswith("de-") else "de"
            # among the other language's documents, or among all others (the paragraph itself
            # left out: similar(document_id=...) does that, a text is held to others)
            where = {"lang": other} if among == "other language" else {"id": {"$ne": document.id}}
            answer = ask(k=CUTOFF, filters=where, group="document")
            return _rank(answer, f"{other}-{document.id[3:]}")

        def first_sentence(document: Document) -> str:
            return split_document(document)[0].text

        methods: dict[str, Callable[[Document], Callable[..., Answer]]] = {
            "document": lambda d: lambda **o: index.similar(document_id=d.id, **o),
            "text": lambda d: lambda **o: index.similar(text=d.text[:2000], **o),
            "sentence": lambda d: lambda **o: index.similar(text=first_sentence(d), **o),
        }
        report: dict[str, Any] = {"documents": len(documents), "index_seconds": indexed}
        for among in ("other language", "all"):
            for name, ask in methods.items():
                for prompt in ("query", "passage") if name != "document" else ("stored",):
                    service.SIMILAR_TEXT_AS = prompt
                    ranks = [twin_rank(d, ask(d), among) for d in by_id.values()]
                    report[f"{among}: {name}/{prompt}"] = _metrics(ranks)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--german", type=Path, default=EVAL / "xquad-dev.de.json")
    parser.add_argument("--english", type=Path, default=EVAL / "xquad-dev.en.json")
    parser.add_argument("--json", action="store_true", help="print JSON")
    arguments = parser.parse_args()
    report = run(arguments.german, arguments.english)
    if arguments.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{report['documents']} documents indexed in {report['index_seconds']:.1f} s")
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"{key:35} R@1 {value['r1']:.3f}  MRR@10 {value['mrr10']:.3f}")


if __name__ == "__main__":
    main()
