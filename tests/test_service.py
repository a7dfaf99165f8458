"""SearchService on the hashing embedder with the real store and real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.embedder import HashingEmbedder
from indexer.errors import (
    IndexCorruptError,
    IndexNotFoundError,
    InvalidRequestError,
    ModelMismatchError,
    SourceNotFoundError,
)
from indexer.generations import current_generation
from indexer.service import SearchService
from indexer.store import VectorStore


def test_build_summary_and_manifest(built: SearchService) -> None:
    manifest = built.info()
    assert manifest.model == "hashing-256"
    assert manifest.dimension == 256
    assert (manifest.documents, manifest.passages) == (2, 9)
    assert manifest.format_version == 1
    assert manifest.metric == "inner_product" and manifest.normaliser == "l2"
    assert {Path(s.id).name for s in manifest.sources} == {"rhein.txt", "cooking.md"}
    assert all(len(s.sha256) == 64 for s in manifest.sources)
    assert {"vectors.faiss", "passages.jsonl", "documents.jsonl"} <= set(manifest.files)
    assert "bm25/lexical.json" in manifest.files
    assert manifest.vectors.startswith("mean(")


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
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0


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
    assert top.score == pytest.approx(top.dense_score + 0.1 * top.lexical_score, abs=1e-5)


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


def test_damaged_file_is_named(built: SearchService) -> None:
    folder = current_generation(built.index_dir)
    with (folder / "passages.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{}\n")
    fresh = SearchService(built.index_dir, HashingEmbedder(256))
    with pytest.raises(IndexCorruptError, match=r"passages\.jsonl is damaged"):
        fresh.search("Rhein")


def test_unknown_format_version_is_refused(built: SearchService) -> None:
    manifest = current_generation(built.index_dir) / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**data, "format_version": 99}), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="format version 99"):
        SearchService(built.index_dir, HashingEmbedder(256)).search("Rhein")


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


def test_progress_is_reported(service: SearchService, corpus: Path) -> None:
    seen: list[tuple[int, int]] = []
    service.build([corpus], progress=lambda done, total: seen.append((done, total)), batch_size=4)
    # 9 sentences and the 4 distinct windows of the multi-sentence paragraphs
    assert seen == [(4, 13), (8, 13), (12, 13), (13, 13)]


def test_large_indexes_switch_to_approximate_search(
    index_dir: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the threshold is low here so a small corpus crosses it; results must not change
    exact = SearchService(index_dir.parent / "exact", HashingEmbedder(256), ann_threshold=0)
    approximate = SearchService(index_dir, HashingEmbedder(256), ann_threshold=5)
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
    # adding extends a copy of the graph; removing rebuilds it from the stored vectors
    builds: list[int] = []
    real_build = VectorStore.build

    def counting_build(*args: Any, **kwargs: Any) -> VectorStore:
        builds.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(VectorStore, "build", staticmethod(counting_build))
    (corpus / "extra.txt").write_text("Der Rhein fließt durch Basel.", encoding="utf-8")
    approximate.build([corpus])
    assert approximate.info().vector_index == "hnsw32" and builds == []
    top = approximate.search("fließt durch Basel", k=1, mode="dense").results[0]
    assert top.text == "Der Rhein fließt durch Basel."
    (corpus / "extra.txt").unlink()
    approximate.build([corpus])
    assert builds == [1] and approximate.info().passages == exact.info().passages
    assert "Basel" not in approximate.search("fließt durch Basel", k=5).results[0].text


def test_context_window_zero_stores_bare_sentence_vectors(index_dir: Path, corpus: Path) -> None:
    embedder = HashingEmbedder(256)
    bare = SearchService(index_dir, embedder, context_window=0)
    bare.build([corpus])
    manifest = bare.info()
    assert (manifest.context_window, manifest.vectors) == (0, "embed(sentence)")
    loaded = bare._current()
    pids = np.array(sorted(loaded.passages))
    expected = embedder.embed_documents([loaded.passages[int(i)].text for i in pids])
    np.testing.assert_allclose(loaded.store.vectors(pids), expected, atol=1e-6)

    # an update keeps the index's own recipe whatever the service is set to; --rebuild changes it
    windowed = SearchService(index_dir, embedder, context_window=1)
    (corpus / "extra.txt").write_text("Der Rhein fließt durch Basel.", encoding="utf-8")
    windowed.build([corpus])
    assert windowed.info().context_window == 0
    extra = [p for p in windowed._current().passages.items() if p[1].doc_id.endswith("extra.txt")]
    vector = windowed._current().store.vectors(np.array([extra[0][0]]))
    np.testing.assert_allclose(
        vector[0], embedder.embed_documents([extra[0][1].text])[0], atol=1e-6
    )
    windowed.build([corpus], rebuild=True)
    assert windowed.info().context_window == 1
    assert windowed.info().vectors.startswith("mean(")
