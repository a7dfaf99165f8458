"""HNSW parameters on real-model vectors: ``python -m bench.graphs --index DIR --questions DIR``.

Which graph (``M`` links per node, ``efConstruction`` candidates while inserting) a collection
should get is a trade of build time against recall, and the synthetic vectors of ``bench.scale``
and ``bench.ann`` answer it differently, so it is decided on vectors the real model made of real
text. ``--index`` is a collection indexed with the default model and ``FINDLING_ANN_THRESHOLD=0``
(one flat segment: its vectors are read as stored). ``--questions`` is a folder of other
documents of the same kind, not indexed; 1,000 of their sentences (30 characters or more) are
embedded as questions. Each graph is built from the stored vectors; recall@10 against exact search
counts a hit when its score reaches the 10th exact score (ties are not misses). The questions are
split in two halves: choose on ``choose``, report ``report``, which you did not look at.

The run in the README used manual pages: Debian's ``manpages-de`` and ``manpages`` (``apt-get
download``, ``dpkg-deb -x``), each page rendered as
``zcat PAGE.gz | preconv -e utf-8 | groff -mandoc -Tutf8 -P-cbou -rLL=2000n -rHY=0``, its lines
joined into paragraphs (blank lines between), runs of spaces collapsed, the header and footer
lines dropped, and saved as ``NAME.de.txt`` or ``NAME.en.txt``. Every tenth page (in the order of
``ls`` over the German, then the English ones) was kept apart for questions (142 pages); of the
others, pages under 60 KB were taken in a shuffled order (``random.Random(3)``) until 2.6 MB of
text: 370 pages, 22,059 sentences::

    FINDLING_INDEX_DIR=/tmp/man-index FINDLING_ANN_THRESHOLD=0 findling index /tmp/man/pages
    python -m bench.graphs --index /tmp/man-index --questions /tmp/man/questions
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.scale import ROOT

OPTIONS = ["32/80", "32/80/fp16", "32/40", "24/60", "16/100", "16/64", "16/40", "16/32", "12/40"]
EF_SEARCH = (64, 128)
BUILDS = 3  # each graph is built this often; its time is the median (this machine is noisy)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.graphs", description=__doc__)
    parser.add_argument("--index", required=True, help="FINDLING_INDEX_DIR, one flat segment")
    parser.add_argument("--questions", required=True, help="documents to take questions from")
    parser.add_argument("--graphs", default=",".join(OPTIONS), help="M/efConstruction[/fp16],...")
    parser.add_argument("--out", default=str(ROOT / "bench" / "graphs.json"))
    args = parser.parse_args()
    stored, questions = _vectors(Path(args.index), Path(args.questions))
    halves = {"choose": questions[0::2], "report": questions[1::2]}
    rows = [_measure(stored, halves, spec) for spec in args.graphs.split(",")]
    report = {"vectors": len(stored), "questions": len(questions), "graphs": rows}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"{len(stored)} vectors, {len(questions)} questions")
    print("M/efC | CPU ms per vector | recall@10 choose efS 64/128 | report efS 64/128")
    for row in rows:
        print(
            f"{row['graph']} | {row['cpu_ms_per_vector']} | {row['choose'][0]} / "
            f"{row['choose'][1]} | {row['report'][0]} / {row['report'][1]}"
        )


def _vectors(index: Path, questions: Path) -> tuple[np.ndarray, np.ndarray]:
    from indexer.catalog import create_service
    from indexer.documents import read_documents, split_documents
    from indexer.settings import Settings

    service = create_service(Settings(index_dir=index))
    snapshot = service._current()
    if any(p.segment.store._graph is not None for p in snapshot.parts):
        raise SystemExit("index with FINDLING_ANN_THRESHOLD=0: the stored vectors are read")
    stored = np.concatenate(
        [p.segment.store.vectors(np.arange(len(p.segment))) for p in snapshot.parts]
    )
    documents = read_documents([questions]).documents
    sentences = [s for each in split_documents(documents) for s in each if len(s.text) >= 30]
    picked = np.random.default_rng(5).choice(len(sentences), 1000, replace=False)
    recipe = snapshot.manifest.recipe
    asked = [
        recipe.query_vector(service.embedder, sentences[i].text, sentences[i].language)
        for i in picked
    ]
    return np.ascontiguousarray(stored, dtype=np.float32), np.stack(asked).astype(np.float32)


def _measure(stored: np.ndarray, halves: dict[str, np.ndarray], spec: str) -> dict[str, Any]:
    """``M/efC``: a graph linked over the fp32 vectors (FAISS's own add); ``M/efC/fp16``:
    linked over fp16 copies, as findling's store builds its graphs (indexer.store.insert)."""
    import faiss

    from indexer.store import insert

    links, candidates, *linking = spec.split("/")
    cpu, wall = [], []
    for _ in range(BUILDS):
        graph = faiss.IndexHNSWFlat(stored.shape[1], int(links), faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = int(candidates)
        before, started = _cpu(), time.perf_counter()
        if linking == ["fp16"]:
            insert(graph, stored, int(candidates))
        else:
            graph.add(stored)
        cpu.append(_cpu() - before)
        wall.append(time.perf_counter() - started)
    row: dict[str, Any] = {
        "graph": spec,
        "cpu_ms_per_vector": round(statistics.median(cpu) / len(stored) * 1000, 4),
        "build_s": round(statistics.median(wall), 1),
    }
    for name, questions in halves.items():
        row[name] = [_recall(graph, stored, questions, ef) for ef in EF_SEARCH]
    return row


def _recall(graph: Any, stored: np.ndarray, questions: np.ndarray, ef: int, k: int = 10) -> float:
    import faiss

    exact = questions @ stored.T
    tenth = -np.partition(-exact, k - 1, axis=1)[:, k - 1]
    params: Any = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
    params.efSearch = ef
    _, found = graph.search(questions, k, params=params)
    hits = [int((exact[i, row[row >= 0]] >= tenth[i] - 1e-6).sum()) for i, row in enumerate(found)]
    return round(float(np.mean(hits)) / k, 4)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
