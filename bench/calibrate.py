"""Scores people can read: ``python -m bench.calibrate`` fits the map from a hit's score to the
probability that its paragraph answers the question (see README, "Retrieval quality").

Hits are the top 10 results of a search (one per paragraph) for every question of the XQuAD dev
split in the four directions (German and English questions on the German and English corpus).
A question the collection cannot answer is simulated by leaving out its relevant paragraphs:
without those, a map fitted on answerable questions alone rates a confident-looking wrong hit
far too high. The map is a logistic regression on the score, its gap to the first result's score,
whether the sentence is in the question's language, and that times the score; it is fitted on
the questions of articles 0-11 and judged on articles 12-23 (expected calibration error, and per
direction the precision and recall of the threshold 0.5). ``--write`` stores the coefficients in
``indexer/calibration.json``, where the service finds them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from indexer.defaults import Mode
from indexer.documents import detect_language, split_document
from indexer.evaluation import Question, load_corpus, load_questions
from indexer.model.factory import make_embedder
from indexer.options import SearchOptions
from indexer.ranking import CALIBRATION_FILE, calibration_features
from indexer.service import SearchService
from indexer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
TUNE, REPORT = range(0, 12), range(12, 24)
FEATURES = ("bias", "score", "gap", "same", "score x same")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate", description=__doc__)
    parser.add_argument("--eval-dir", default=str(EVAL))
    parser.add_argument("--modes", default="hybrid,dense")
    parser.add_argument("--write", action="store_true", help="store the fit for the service")
    args = parser.parse_args()
    settings = Settings()
    options = SearchOptions.from_settings(settings)
    embedder = make_embedder(settings)
    hits: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="findling-calibrate-") as tmp:
        for corpus_language in ("de", "en"):
            corpus_path = Path(args.eval_dir) / f"xquad-dev.{corpus_language}.json"
            corpus = load_corpus([corpus_path])
            split = {d.id: split_document(d) for d in corpus.documents}
            service = SearchService(Path(tmp) / corpus_language, embedder, options)
            service.build_documents(corpus.documents)
            for question_language in ("de", "en"):
                path = Path(args.eval_dir) / f"xquad-dev.{question_language}.json"
                questions = load_questions(path, corpus, split)
                direction = f"{question_language}>{corpus_language}"
                for mode in args.modes.split(","):
                    hits.setdefault(mode, {})[direction] = _hits(service, questions, mode)
    report: dict[str, Any] = {"model": embedder.name, "backend": settings.backend}
    fits = {}
    for mode, by_direction in hits.items():
        rows = [h for direction in by_direction.values() for h in direction]
        weights = _fit([h for h in rows if h["article"] in TUNE])
        fits[mode] = dict(zip(FEATURES, (round(float(w), 4) for w in weights), strict=True))
        report[mode] = {
            "coefficients": fits[mode],
            "report_half": {
                direction: _judge([h for h in rows if h["article"] in REPORT], weights)
                for direction, rows in by_direction.items()
            },
            "tuning_half": _judge([h for h in rows if h["article"] in TUNE], weights),
        }
    print(json.dumps(report, indent=2))
    if args.write:
        stored = {
            "model": embedder.name,
            "fusion": [options.fusion.lexical_weight, options.fusion.cross_language_weight],
            "fitted_with": f"{settings.backend}, fusion {options.fusion.lexical_weight:g}/"
            f"{options.fusion.cross_language_weight:g}, XQuAD dev articles 0-11 (bench/calibrate)",
            "features": list(FEATURES),
            "modes": fits,
        }
        CALIBRATION_FILE.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
        print(f"written: {CALIBRATION_FILE}")


def _hits(service: SearchService, questions: list[Question], mode: Mode) -> list[dict[str, Any]]:
    """The top 10 of every question, answerable, and with its relevant paragraphs left out."""
    rows = []
    for question in questions:
        language = detect_language(question.text)
        results = service.search(question.text, k=30, mode=mode).results
        for answerable in (True, False):
            kept = [r for r in results if answerable or r.document_id not in question.documents]
            top = kept[0].score if kept else 0.0
            for hit in kept[:10]:
                same = hit.language == language
                rows.append(
                    {
                        "article": question.article,
                        "features": calibration_features(hit.score, top, same),
                        "relevant": hit.document_id in question.documents,
                    }
                )
    return rows


def _fit(rows: list[dict[str, Any]]) -> np.ndarray:
    """Logistic regression by Newton's method (a small, well-conditioned problem)."""
    x = np.array([r["features"] for r in rows], dtype=np.float64)
    y = np.array([r["relevant"] for r in rows], dtype=np.float64)
    weights = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ weights)))
        gradient = x.T @ (p - y)
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + 1e-6 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return weights


def _judge(rows: list[dict[str, Any]], weights: np.ndarray) -> dict[str, float]:
    """Expected calibration error (10 bins), and precision / recall of p >= 0.5."""
    x = np.array([r["features"] for r in rows], dtype=np.float64)
    y = np.array([r["relevant"] for r in rows], dtype=bool)
    p = 1 / (1 + np.exp(-(x @ weights)))
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(
        abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).sum()
        for b in range(10)
        if (bins == b).any()
    ) / len(p)
    passed = p >= 0.5
    return {
        "hits": len(p),
        "ece": round(float(ece), 4),
        "precision_at_0.5": round(float(y[passed].mean()) if passed.any() else 0.0, 3),
        "recall_at_0.5": round(float((passed & y).sum() / max(y.sum(), 1)), 3),
    }


if __name__ == "__main__":
    main()
