"""Language means: ``python -m bench.centre [--write]`` (see README, "Retrieval quality").

Embeds the German and English XQuAD dev texts of articles 0-11 (the tuning half) as the default
recipe does (every sentence, the paragraph it is embedded with, every question with e5's query
prompt) and averages them per language and role. ``--write`` stores the means, with the strength
chosen on the same half by ``bench/centre_sweep.py``, in ``indexer/language_means.json``, where
new indexes of this model find them. Articles 12-23 are never read here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from indexer.documents import Document, split_document
from indexer.model.factory import make_embedder
from indexer.recipe import LANGUAGE_MEANS_FILE, VectorRecipe
from indexer.settings import Settings

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
TUNE = range(0, 12)
STRENGTH = 0.75  # chosen on articles 0-11 (bench/centre_sweep.py tune); 0.5-1.0 all within 0.01


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.centre", description=__doc__)
    parser.add_argument("--eval-dir", default=str(EVAL))
    parser.add_argument("--write", action="store_true", help="store the means for new indexes")
    args = parser.parse_args()
    settings = Settings()
    embedder = make_embedder(settings)
    recipe = VectorRecipe(settings.recipe, settings.recipe_window, centring="none")
    means: dict[str, dict[str, list[float]]] = {"sentence": {}, "context": {}, "query": {}}
    for language in ("de", "en"):
        data = json.loads((Path(args.eval_dir) / f"xquad-dev.{language}.json").read_text())
        documents, questions = [], []
        for a, article in enumerate(data["data"]):
            if a not in TUNE:
                continue
            for p, paragraph in enumerate(article["paragraphs"]):
                doc_id = f"{a}-{p}"
                text = paragraph["context"]
                documents.append(Document(doc_id, doc_id, text, "", language))
                questions += [qa["question"] for qa in paragraph["qas"]]
        sentences = [s for d in documents for s in split_document(d)]
        texts = {d.id: d.text for d in documents}
        contexts = recipe.context_texts(sentences, texts) or []
        bare = embedder.embed_documents([s.text for s in sentences])
        context = bare
        if contexts:  # one row per sentence: a long paragraph weighs as its sentences do
            unique = list(dict.fromkeys(contexts))
            row = {text: i for i, text in enumerate(unique)}
            context = embedder.embed_documents(unique)[[row[t] for t in contexts]]
        asked = np.stack([embedder.embed_query(q) for q in questions])
        for role, vectors in (("sentence", bare), ("context", context), ("query", asked)):
            means[role][language] = [round(float(x), 7) for x in vectors.mean(axis=0)]
        print(
            f"{language}: {len(sentences)} sentences, {len(set(contexts))} contexts, "
            f"{len(questions)} questions"
        )
    result = {
        "model": embedder.name,
        "strength": STRENGTH,
        "fitted_with": (
            f"{settings.backend}, recipe {recipe.kind}, XQuAD dev articles 0-11 in German and "
            "English (bench/centre)"
        ),
        "means": means,
    }
    if args.write:
        LANGUAGE_MEANS_FILE.write_text(json.dumps(result) + "\n", encoding="utf-8")
        print(f"written to {LANGUAGE_MEANS_FILE}")


if __name__ == "__main__":
    main()
