"""Cross-language with same-language distractors (experiment; dev data only).

Collection: the German paragraphs of some articles and the English paragraphs of the others, so
every question's answer stands in one language only. Dense paragraph ranking, the stored vector
as the paragraph recipe makes it. Compares raw vectors with per-language mean centering.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from indexer.documents import Document, split_document
from indexer.model.factory import make_embedder
from indexer.recipe import VectorRecipe
from indexer.settings import Settings

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
CACHE = Path("/tmp/xl-cache.npz")


def load(language: str) -> list[dict]:
    return json.loads((EVAL / f"xquad-dev.{language}.json").read_text())["data"]


def main() -> None:
    data = {lang: load(lang) for lang in ("de", "en")}
    embedder = make_embedder(Settings())
    recipe = VectorRecipe()
    # every paragraph in both languages, as documents
    docs = []
    for lang in ("de", "en"):
        for a, article in enumerate(data[lang]):
            for p, paragraph in enumerate(article["paragraphs"]):
                text = paragraph["context"]
                docs.append(Document(f"{lang}-{a}-{p}", f"{lang}-{a}-{p}", text, "", lang))
    sentences = [s for d in docs for s in split_document(d)]
    texts = {d.id: d.text for d in docs}
    questions = []
    for lang in ("de", "en"):
        for a, article in enumerate(data[lang]):
            for p, paragraph in enumerate(article["paragraphs"]):
                for qa in paragraph["qas"]:
                    questions.append((lang, a, p, qa["question"]))
    if CACHE.exists():
        z = np.load(CACHE)
        bare, ctx, qv = z["bare"], z["ctx"], z["q"]
    else:
        bare = embedder.embed_documents([s.text for s in sentences])
        contexts = recipe.context_texts(sentences, texts)
        assert contexts is not None
        unique = list(dict.fromkeys(contexts))
        emb = embedder.embed_documents(unique)
        row = {t: i for i, t in enumerate(unique)}
        ctx = emb[[row[t] for t in contexts]]
        qv = np.stack([embedder.embed_query(q[3]) for q in questions])
        np.savez(CACHE, bare=bare, ctx=ctx, q=qv)
    lang_of = np.array([s.doc_id[:2] for s in sentences])
    art_of = np.array([int(s.doc_id.split("-")[1]) for s in sentences])
    par_of = np.array([int(s.doc_id.split("-")[2]) for s in sentences])
    tune = range(0, 12)
    which = sys.argv[1] if len(sys.argv) > 1 else "tune"
    articles = range(0, 12) if which == "tune" else range(12, 24)

    def means(vectors: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        return {lang: vectors[mask & (lang_of == lang)].mean(axis=0) for lang in ("de", "en")}

    in_tune = np.isin(art_of, list(tune))
    mu_bare, mu_ctx = means(bare, in_tune), means(ctx, in_tune)
    q_lang = np.array([q[0] for q in questions])
    q_art = np.array([q[1] for q in questions])
    mu_q = {
        lang: qv[(q_lang == lang) & np.isin(q_art, list(tune))].mean(axis=0)
        for lang in ("de", "en")
    }

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    def stored(alpha: float, qmode: str) -> tuple[np.ndarray, np.ndarray]:
        b = bare.copy()
        c = ctx.copy()
        for lang in ("de", "en"):
            m = lang_of == lang
            b[m] = unit(b[m] - alpha * mu_bare[lang])
            c[m] = unit(c[m] - alpha * mu_ctx[lang])
        q = qv.copy()
        for lang in ("de", "en"):
            m = q_lang == lang
            mu = mu_q[lang] if qmode == "query" else mu_bare[lang]
            q[m] = unit(q[m] - alpha * mu)
        return (b + c) / 2, q

    results = {}
    for alpha in (0.0, 0.5, 0.75, 1.0):
        for qmode in ("query", "passage"):
            if alpha == 0 and qmode == "passage":
                continue
            vectors, q = stored(alpha, qmode)
            per: dict[str, list[float]] = {}
            for swap in (0, 1):
                half = len(articles) // 2
                first = set(articles[:half])
                # swap 0: German paragraphs for the first half, English for the second
                keep = np.isin(art_of, list(articles)) & (
                    (np.isin(art_of, list(first)) & (lang_of == ("de" if swap == 0 else "en")))
                    | (~np.isin(art_of, list(first)) & (lang_of == ("en" if swap == 0 else "de")))
                )
                idx = np.flatnonzero(keep)
                for i, (ql, a, p, _) in enumerate(questions):
                    if a not in articles:
                        continue
                    doc_lang = (
                        ("de" if swap == 0 else "en")
                        if a in first
                        else ("en" if swap == 0 else "de")
                    )
                    scores = vectors[idx] @ q[i]
                    order = idx[np.argsort(-scores)]
                    seen: list[tuple[int, int]] = []
                    rank = None
                    for r in order:
                        key = (art_of[r], par_of[r])
                        if key not in seen:
                            seen.append(key)
                            if key == (a, p):
                                rank = len(seen)
                                break
                        if len(seen) > 10:
                            break
                    pair = f"{ql}>{doc_lang}"
                    per.setdefault(pair, []).append(1 / rank if rank and rank <= 10 else 0.0)
            summary = {k: round(float(np.mean(v)), 3) for k, v in sorted(per.items())}
            results[f"{alpha}-{qmode}"] = summary
            print(which, alpha, qmode, summary, flush=True)


if __name__ == "__main__":
    main()
