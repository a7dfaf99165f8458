"""Language centring: stored vectors and questions moved away from their language's mean."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer import recipe as recipe_module
from indexer.errors import IndexCorruptError
from indexer.model.embedder import HashingEmbedder
from indexer.options import SearchOptions
from indexer.recipe import LanguageMeans, VectorRecipe, language_means
from indexer.service import SearchService
from tests.helpers import ENGLISH, GERMAN

DIMENSION = 64


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _means(model: str, seed: int = 7) -> LanguageMeans:
    rng = np.random.default_rng(seed)
    return LanguageMeans(
        model,
        0.75,
        {
            role: {lang: rng.normal(size=DIMENSION).astype(np.float32) / 8 for lang in ("de", "en")}
            for role in ("sentence", "context", "query")
        },
    )


def test_centre_is_the_unit_difference_and_unknown_languages_take_the_shared_mean() -> None:
    means = _means("m")
    vectors = _unit(np.random.default_rng(1).normal(size=(3, DIMENSION))).astype(np.float32)
    centred = means.centre(vectors, ["de", "en", "fr"], "sentence")
    known = means.means["sentence"]
    shared = (known["de"] + known["en"]) / 2
    expected = _unit(vectors - 0.75 * np.stack([known["de"], known["en"], shared]))
    np.testing.assert_allclose(centred, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(centred, axis=1), 1.0, atol=1e-6)


def test_shipped_means_fit_their_model_only() -> None:
    shipped = json.loads(recipe_module.LANGUAGE_MEANS_FILE.read_text(encoding="utf-8"))
    means = language_means(shipped["model"])
    assert means is not None and set(means.means) == {"sentence", "context", "query"}
    for role in means.means.values():
        assert set(role) == {"de", "en"}
        assert all(v.shape == (len(shipped["means"]["query"]["de"]),) for v in role.values())
    assert language_means("hashing-64") is None
    # a model without means gets plain vectors; an explicit "none" stays none
    assert VectorRecipe().for_model("hashing-64").centring == "none"
    assert VectorRecipe().for_model(shipped["model"]).centring == "language"
    assert VectorRecipe(centring="none").for_model(shipped["model"]).centring == "none"


def test_an_index_written_before_centring_keeps_plain_vectors() -> None:
    old = {"recipe": {"kind": "paragraph", "window": 1, "piece_chars": 1200}}
    assert VectorRecipe.from_manifest(old).centring == "none"


@pytest.fixture
def centred(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SearchService:
    embedder = HashingEmbedder(DIMENSION)
    means = _means(embedder.name)
    monkeypatch.setattr(recipe_module, "language_means", lambda model: means)
    (tmp_path / "de.txt").write_text(GERMAN, encoding="utf-8")
    (tmp_path / "en.md").write_text(ENGLISH, encoding="utf-8")
    options = SearchOptions(recipe=VectorRecipe("none"))
    service = SearchService(tmp_path / "index", embedder, options)
    service.build([tmp_path / "de.txt", tmp_path / "en.md"])
    return service


def test_stored_vectors_and_questions_are_centred(centred: SearchService) -> None:
    snapshot = centred._current()
    assert snapshot.recipe.centring == "language"
    assert "mean(model, language of x)" in snapshot.recipe.describe()
    means = recipe_module.language_means(centred.embedder.name)
    assert means is not None
    query = "Wo fließt der Rhein?"
    answer = centred.search(query, k=4, mode="dense")
    assert answer.results
    question = means.centre(centred.embedder.embed_query(query)[None, :], ["de"], "query")[0]
    for hit in answer.results:
        bare = centred.embedder.embed_documents([hit.text])
        stored = means.centre(bare, [hit.language], "sentence")[0]
        assert hit.dense_score == pytest.approx(float(stored @ question), abs=1e-5)


def test_an_index_whose_means_are_gone_is_refused_with_a_rebuild_hint(
    centred: SearchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recipe_module, "language_means", lambda model: None)
    with pytest.raises(IndexCorruptError, match="rebuild"):
        centred.search("Rhein", mode="dense")
