"""SearchService on the hashing embedder with the real store and real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.defaults import LEXICAL_WEIGHT
from indexer.documents import Sentence
from indexer.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    InvalidRequestError,
    ModelMismatchError,
    SourceNotFoundError,
)
from indexer.manifest import Manifest
from indexer.model.embedder import HashingEmbedder
from indexer.options import SearchOptions
from indexer.recipe import VectorRecipe, pieces
from indexer.service import SearchService
from indexer.snapshot import SegmentCache, Snapshot
from tests.helpers import stored


def test_build_summary_and_manifest(built: SearchService) -> None:
    manifest = built.info()
    assert manifest.model == "hashing-256"
    assert manifest.dimension == 256
    assert (manifest.documents, manifest.passages) == (2, 9)
    assert manifest.format_version == 2
    assert manifest.metric == "inner_product" and manifest.normaliser == "l2"
    assert [(s.sentences, s.documents, s.vector_index) for s in manifest.segments] == [
        (9, 2, "flat")
    ]
    assert {Path(s.id).name for s in built.sources()} == {"rhein.txt", "cooking.md"}
    assert manifest.vectors.startswith("mean(")
    segment = built.index_dir / manifest.segments[0].name
    info = json.loads((segment / "segment.json").read_text(encoding="utf-8"))
    assert {"ids.npy", "sentences.npy", "vectors.npy", "documents.sqlite"} <= set(info["files"])
    assert all(len(checksum) == 64 for checksum in info["files"].values())


def test_search_returns_the_sentence_with_context_and_offsets(built: SearchService) -> None:
    response = built.search("  Bake the bread for 40 minutes  ", k=3)
    assert response.query == "Bake the bread for 40 minutes"
    top = response.results[0]
    assert top.text == "Bake the bread for 40 minutes."
    assert top.document_id.endswith("/docs/sub/cooking.md")
    assert top.context[top.context_start : top.context_end] == top.text
    source_text = Path(top.source).read_text(encoding="utf-8")
    assert source_text[top.start : top.end] == top.text
    assert (top.paragraph, top.sentence, top.rank) == (2, 1, 1)
    assert (
        top.context == "The oven must be preheated to 200 degrees. Bake the bread for 40 minutes."
    )
    assert [r.rank for r in response.results] == [1, 2, 3]
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)
    assert -1.0 <= scores[-1] <= scores[0] <= 1.0 + LEXICAL_WEIGHT


def test_results_are_one_per_paragraph(built: SearchService) -> None:
    results = built.search("Rhein", k=100, mode="dense").results
    assert len(results) == 5  # all paragraphs, each once
    assert len({(r.document_id, r.paragraph) for r in results}) == 5


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_every_mode_finds_an_exact_sentence(built: SearchService, mode: str) -> None:
    response = built.search("Drain it while it is still firm", k=2, mode=mode)
    assert response.mode == mode
    assert response.results[0].text == "Drain it while it is still firm."


def test_bm25_mode_returns_only_sentences_sharing_a_term(built: SearchService) -> None:
    results = built.search("Düsseldorf", k=10, mode="bm25").results
    assert [r.text for r in results] == ["Er fließt z. B. durch Köln und Düsseldorf."]
    assert results[0].dense_score is None
    assert results[0].lexical_score is not None and 0.5 < results[0].lexical_score <= 1.0
    assert built.search("zebra", mode="bm25").results == []


def test_hybrid_reports_both_legs(built: SearchService) -> None:
    top = built.search("Köln und Düsseldorf", k=1, mode="hybrid").results[0]
    assert top.dense_score is not None and top.lexical_score is not None
    assert 0.5 < top.lexical_score <= 1.0  # both words matched
    assert top.score == pytest.approx(
        top.dense_score + LEXICAL_WEIGHT * top.lexical_score, abs=1e-5
    )


def test_unknown_mode_is_refused(built: SearchService) -> None:
    with pytest.raises(InvalidRequestError, match="unknown search mode"):
        built.search("Rhein", mode="magic")


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_refused(built: SearchService, query: str) -> None:
    with pytest.raises(InvalidRequestError, match="empty"):
        built.search(query)


@pytest.mark.parametrize("k", [0, -1, 101, 10**9])
def test_k_out_of_range_is_refused(built: SearchService, k: int) -> None:
    with pytest.raises(InvalidRequestError, match="between 1 and 100"):
        built.search("Rhein", k=k)


def test_overlong_query_is_refused(built: SearchService) -> None:
    with pytest.raises(InvalidRequestError, match="characters"):
        built.search("x" * 2001)


def test_missing_index_says_how_to_build_one(service: SearchService) -> None:
    with pytest.raises(IndexNotFoundError) as caught:
        service.search("Rhein")
    assert "findling index" in caught.value.hint


def test_no_documents_is_a_clear_error(service: SearchService, tmp_path: Path) -> None:
    (tmp_path / "only.csv").write_text("a,b", encoding="utf-8")
    with pytest.raises(SourceNotFoundError, match=r"no readable documents"):
        service.build([tmp_path])


def test_index_of_another_model_is_refused_naming_both(built: SearchService) -> None:
    other = SearchService(built.index_dir, HashingEmbedder(128))
    with pytest.raises(ModelMismatchError) as caught:
        other.search("Rhein")
    assert "hashing-256" in str(caught.value) and "hashing-128" in str(caught.value)


def _segment(service: SearchService) -> Path:
    return service.index_dir / service.info().segments[0].name


def test_a_file_that_cannot_be_read_is_named(built: SearchService) -> None:
    (_segment(built) / "sentences.npy").write_bytes(b"\x93NUMPY broken")
    fresh = SearchService(built.index_dir, HashingEmbedder(256))
    with pytest.raises(IndexCorruptError, match=r"seg-\d+") as caught:
        fresh.search("Rhein")
    assert "findling verify" in caught.value.hint


def test_verify_finds_damage_that_reading_does_not(built: SearchService) -> None:
    assert built.verify() == []
    vectors = _segment(built) / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a vector: still readable, no longer what was written
    vectors.write_bytes(bytes(data))
    problems = built.verify()
    assert len(problems) == 1 and "vectors.npy is damaged" in problems[0]


def test_unknown_format_version_is_refused(built: SearchService) -> None:
    manifest = built.index_dir / f"{built.info().generation}.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**data, "format_version": 99}), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="format 99") as caught:
        SearchService(built.index_dir, HashingEmbedder(256)).search("Rhein")
    assert "--rebuild" in caught.value.hint


def test_a_running_service_picks_up_a_new_generation(built: SearchService, corpus: Path) -> None:
    top = built.search("Pasta salted water", k=1).results[0]
    assert top.document_id.endswith("cooking.md")
    (corpus / "sub" / "cooking.md").unlink()
    SearchService(built.index_dir, HashingEmbedder(256)).build([corpus])
    results = built.search("Pasta salted water", k=10).results
    assert {Path(r.source).name for r in results} == {"rhein.txt"}  # no ghosts of the removed file


def test_long_paragraph_context_is_a_window_of_sentences(
    service: SearchService, tmp_path: Path
) -> None:
    sentences = [
        f"Sentence number {i} talks about topic{i} in some detail here." for i in range(40)
    ]
    (tmp_path / "long.txt").write_text(" ".join(sentences), encoding="utf-8")
    service.build([tmp_path])
    hit = service.search("topic20", k=1).results[0]
    assert hit.text == sentences[20]
    assert hit.context == " ".join(sentences[18:23])
    assert hit.context[hit.context_start : hit.context_end] == hit.text


def test_progress_is_reported_in_documents(
    service: SearchService, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("indexer.service.EMBED_CHUNK_SENTENCES", 3)  # a chunk per document
    seen: list[tuple[int, int]] = []
    service.build([corpus], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]


def test_large_segments_are_searched_through_a_graph(index_dir: Path, corpus: Path) -> None:
    # the threshold is low here so a small corpus crosses it; results must not change
    exact = SearchService(
        index_dir.parent / "exact", HashingEmbedder(256), SearchOptions(ann_threshold=0)
    )
    approximate = SearchService(index_dir, HashingEmbedder(256), SearchOptions(ann_threshold=5))
    exact.build([corpus])
    approximate.build([corpus])
    assert exact.info().vector_index == "flat"
    assert approximate.info().vector_index == "hnsw32"
    for query in ("Bake the bread for 40 minutes", "Rhein", "Wie lang ist der Fluss?"):
        for mode in ("dense", "hybrid"):
            ours = approximate.search(query, k=5, mode=mode).results
            theirs = exact.search(query, k=5, mode=mode).results
            assert [(r.document_id, r.sentence, r.score) for r in ours] == [
                (r.document_id, r.sentence, r.score) for r in theirs
            ]
    # adding writes a new small segment; removing marks the old one's sentences deleted
    (corpus / "extra.txt").write_text("Der Rhein fließt durch Basel.", encoding="utf-8")
    approximate.build([corpus])
    assert approximate.info().vector_index == "hnsw32 + flat"
    top = approximate.search("fließt durch Basel", k=1, mode="dense").results[0]
    assert top.text == "Der Rhein fließt durch Basel."
    (corpus / "extra.txt").unlink()
    approximate.build([corpus])
    assert approximate.info().passages == exact.info().passages
    assert "Basel" not in approximate.search("fließt durch Basel", k=5).results[0].text


def _stored(service: SearchService) -> tuple[list[Sentence], np.ndarray]:
    """Every live sentence (in document order) and its stored vector."""
    found = stored(service.index_dir)
    return [s.sentence for s in found], np.stack([s.vector for s in found])


def _texts(service: SearchService) -> dict[str, str]:
    snapshot = Snapshot.open(service.index_dir, SegmentCache())
    return {
        d.id: d.text
        for part in snapshot.parts
        for d in (part.segment.document(r) for r in range(part.segment.info.documents))
    }


def _mean_with(embedder: HashingEmbedder, passages: list[Any], contexts: list[str]) -> np.ndarray:
    """What the store should hold: each sentence's embedding averaged with its context's."""
    sentences = embedder.embed_documents([p.text for p in passages])
    return np.asarray((sentences + embedder.embed_documents(contexts)) / 2)


def test_paragraph_context_stores_the_mean_with_the_paragraph(
    index_dir: Path, corpus: Path
) -> None:
    embedder = HashingEmbedder(256)
    service = SearchService(index_dir, embedder)  # the default recipe
    service.build([corpus])
    assert (service.info().recipe.kind, service.info().vectors[:5]) == ("paragraph", "mean(")
    passages, vectors = _stored(service)
    texts = _texts(service)
    paragraphs = [texts[p.doc_id][p.paragraph_start : p.paragraph_end].strip() for p in passages]
    assert any(
        len(p.text) < len(paragraph) for p, paragraph in zip(passages, paragraphs, strict=True)
    )
    np.testing.assert_allclose(vectors, _mean_with(embedder, passages, paragraphs), atol=1e-6)


def test_window_context_stores_the_mean_with_the_neighbours(index_dir: Path, corpus: Path) -> None:
    embedder = HashingEmbedder(256)
    service = SearchService(index_dir, embedder, SearchOptions(recipe=VectorRecipe("window", 1)))
    service.build([corpus])
    manifest = service.info()
    assert (manifest.recipe.kind, manifest.recipe.window) == ("window", 1)
    assert "up to 1 each side" in manifest.vectors
    passages, vectors = _stored(service)
    texts = _texts(service)

    def window(i: int) -> str:
        same = [j for j in (i - 1, i, i + 1) if 0 <= j < len(passages)]
        same = [j for j in same if passages[j].paragraph == passages[i].paragraph]
        same = [j for j in same if passages[j].doc_id == passages[i].doc_id]
        return texts[passages[i].doc_id][passages[same[0]].start : passages[same[-1]].end]

    windows = [window(i) for i in range(len(passages))]
    np.testing.assert_allclose(vectors, _mean_with(embedder, passages, windows), atol=1e-6)


def test_context_none_stores_bare_sentence_vectors(index_dir: Path, corpus: Path) -> None:
    embedder = HashingEmbedder(256)
    bare = SearchService(index_dir, embedder, SearchOptions(recipe=VectorRecipe("none")))
    bare.build([corpus])
    assert (bare.info().recipe.kind, bare.info().vectors) == ("none", "embed(sentence)")
    passages, vectors = _stored(bare)
    expected = embedder.embed_documents([p.text for p in passages])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)

    # an update keeps the index's own recipe whatever the service is set to; --rebuild changes it
    contextual = SearchService(index_dir, embedder, SearchOptions(recipe=VectorRecipe("paragraph")))
    (corpus / "extra.txt").write_text("Der Rhein fließt durch Basel. Er ist breit.", "utf-8")
    contextual.build([corpus])
    assert contextual.info().recipe.kind == "none"
    passages, vectors = _stored(contextual)
    extra = [i for i, p in enumerate(passages) if p.doc_id.endswith("extra.txt")]
    np.testing.assert_allclose(
        vectors[extra], embedder.embed_documents([passages[i].text for i in extra]), atol=1e-6
    )
    contextual.build([corpus], rebuild=True)
    assert contextual.info().recipe.kind == "paragraph"
    assert contextual.info().vectors.startswith("mean(")


def test_manifests_without_a_recipe_read_it_from_the_old_fields(built: SearchService) -> None:
    path = built.index_dir / f"{built.info().generation}.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["recipe"]
    # before the recipe was recorded whole, manifests named context and context_window ...
    data["context"], data["context_window"] = "paragraph", 1
    assert Manifest.from_json(data).recipe == VectorRecipe("paragraph", 1, 1200)
    # ... and before those existed, indexes were built with a window of one neighbour
    del data["context"], data["context_window"]
    assert Manifest.from_json(data).recipe == VectorRecipe("window", 1)


def _sentences(lengths: list[int]) -> list[Sentence]:
    passages, start = [], 0
    for i, length in enumerate(lengths):
        passages.append(Sentence("d", 0, i, start, start + length, 0, 0, "x" * length, "de"))
        start += length + 1  # one space between sentences
    return passages


@pytest.mark.parametrize(
    "lengths",
    [[50], [2000], [100] * 3, [100] * 30, [300, 20, 900, 40, 700, 80, 60], [1300, 10, 10, 1300]],
)
def test_long_paragraphs_are_cut_into_pieces_of_about_equal_length(lengths: list[int]) -> None:
    sentences = _sentences(lengths)
    runs = pieces(sentences, 1200)
    assert [s for piece in runs for s in piece] == sentences  # every sentence once, in order
    span = sentences[-1].end - sentences[0].start
    assert len(runs) <= -(-span // 1200)  # no more pieces than the limit needs
    for piece in runs:
        # within the limit, unless one sentence alone is longer, or a sentence that straddles
        # a piece's share overshoots it
        length = piece[-1].end - piece[0].start
        assert length <= 1200 or length - (piece[-1].end - piece[-1].start) < span / len(runs)
