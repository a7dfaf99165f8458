"""The FAISS store against a brute-force numpy oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.errors import IndexCorruptError, InvalidRequestError
from indexer.store import VectorStore


def _unit_vectors(n: int, d: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize(("n", "d", "k"), [(1, 8, 1), (50, 16, 5), (500, 384, 10), (30, 32, 30)])
def test_search_matches_brute_force(n: int, d: int, k: int) -> None:
    vectors = _unit_vectors(n, d, seed=n)
    ids = np.arange(1000, 1000 + n, dtype=np.int64)  # ids need not be row numbers
    store = VectorStore.build(vectors, ids)
    for query in _unit_vectors(20, d, seed=n + 1):
        hits = store.search(query, k)
        cosine = vectors @ query
        expected = np.argsort(-cosine, kind="stable")[:k]
        np.testing.assert_allclose(hits.scores, cosine[expected], rtol=1e-5, atol=1e-5)
        # ties aside, the same rows come back in the same order
        np.testing.assert_array_equal(np.sort(hits.ids), np.sort(ids[expected]))
        assert list(hits.scores) == sorted(hits.scores, reverse=True)


def test_k_larger_than_store_returns_all() -> None:
    store = VectorStore.build(_unit_vectors(3, 8, 0), np.arange(3))
    assert len(store.search(_unit_vectors(1, 8, 1)[0], 10).ids) == 3


def test_empty_store_returns_nothing() -> None:
    store = VectorStore.build(np.zeros((0, 8), dtype=np.float32), np.zeros(0, dtype=np.int64))
    assert len(store.search(_unit_vectors(1, 8, 1)[0], 5).ids) == 0


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    vectors = _unit_vectors(40, 16, 3)
    store = VectorStore.build(vectors, np.arange(40))
    store.save(tmp_path / "v.faiss")
    loaded = VectorStore.load(tmp_path / "v.faiss")
    query = vectors[7]
    assert loaded.search(query, 3).ids[0] == 7
    np.testing.assert_array_equal(loaded.search(query, 5).ids, store.search(query, 5).ids)


def test_wrong_dimension_is_refused() -> None:
    store = VectorStore.build(_unit_vectors(3, 8, 0), np.arange(3))
    with pytest.raises(InvalidRequestError, match="dimension"):
        store.search(np.ones(4, dtype=np.float32), 1)


def test_damaged_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "v.faiss").write_bytes(b"not a faiss index")
    with pytest.raises(IndexCorruptError, match="cannot read"):
        VectorStore.load(tmp_path / "v.faiss")


# -- approximate search (HNSW) above the threshold ------------------------------------------------


def _recall_at_10(
    store: VectorStore, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray
) -> float:
    found = 0
    for query in queries:
        expected = set(ids[np.argsort(-(vectors @ query), kind="stable")[:10]].tolist())
        found += len(expected & set(store.search(query, 10).ids.tolist()))
    return found / (10 * len(queries))


def test_threshold_switches_to_hnsw_and_recall_matches_brute_force() -> None:
    vectors = _unit_vectors(5000, 64, seed=3)
    ids = np.arange(5000, dtype=np.int64) * 7 + 11
    assert VectorStore.build(vectors, ids, ann_threshold=5001).kind == "flat"
    store = VectorStore.build(vectors, ids, ann_threshold=5000)
    assert store.kind == "hnsw32"
    queries = _unit_vectors(100, 64, seed=4)
    assert _recall_at_10(store, vectors, ids, queries) >= 0.95
    # scores are exact inner products of the returned ids
    hits = store.search(queries[0], 10)
    rows = np.searchsorted(ids, hits.ids)
    np.testing.assert_allclose(hits.scores, vectors[rows] @ queries[0], rtol=1e-5, atol=1e-5)


def test_hnsw_survives_save_and_load_and_reconstructs_vectors(tmp_path: Path) -> None:
    vectors = _unit_vectors(300, 16, seed=5)
    store = VectorStore.build(vectors, np.arange(300), ann_threshold=1)
    store.save(tmp_path / "v.faiss")
    loaded = VectorStore.load(tmp_path / "v.faiss")
    assert loaded.kind == "hnsw32"
    np.testing.assert_allclose(loaded.vectors(np.array([7, 299])), vectors[[7, 299]], atol=1e-6)


@pytest.mark.parametrize(("allowed_count", "exact_limit"), [(40, 100), (3000, 100)])
def test_hnsw_filtered_search_matches_brute_force(
    allowed_count: int, exact_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a selective filter is answered exactly; a broad one by the graph with an id selector
    monkeypatch.setattr("indexer.store.EXACT_FILTER_LIMIT", exact_limit)
    vectors = _unit_vectors(4000, 32, seed=6)
    ids = np.arange(4000, dtype=np.int64)
    store = VectorStore.build(vectors, ids, ann_threshold=1)
    allowed = np.random.default_rng(7).choice(ids, allowed_count, replace=False)
    found = 0
    for query in _unit_vectors(30, 32, seed=8):
        hits = store.search(query, 10, allowed)
        assert set(hits.ids.tolist()) <= set(allowed.tolist())
        scores = vectors[allowed] @ query
        expected = set(allowed[np.argsort(-scores, kind="stable")[:10]].tolist())
        found += len(expected & set(hits.ids.tolist()))
    assert found / 300 >= (1.0 if allowed_count == 40 else 0.95)


@pytest.mark.parametrize("ann_threshold", [0, 1])  # flat and HNSW
def test_extended_copy_matches_a_full_build_and_leaves_the_original(ann_threshold: int) -> None:
    vectors = _unit_vectors(1200, 32, seed=9)
    ids = np.arange(1200, dtype=np.int64) * 2
    base = VectorStore.build(vectors[:1000], ids[:1000], ann_threshold)
    grown = base.extended(vectors[1000:], ids[1000:])
    assert (len(base), len(grown), grown.kind) == (1000, 1200, base.kind)
    np.testing.assert_allclose(grown.vectors(ids[1000:1003]), vectors[1000:1003], atol=1e-6)
    queries = vectors[1000:1050]  # the added vectors must be found, themselves first
    assert [int(grown.search(q, 1).ids[0]) for q in queries] == ids[1000:1050].tolist()
    assert _recall_at_10(grown, vectors, ids, _unit_vectors(50, 32, seed=10)) >= 0.95
    with pytest.raises(InvalidRequestError):
        base.extended(_unit_vectors(2, 16, seed=11), np.array([5000, 5001]))


def test_hnsw_selective_filter_ignores_ids_the_store_does_not_hold() -> None:
    vectors = _unit_vectors(200, 16, seed=12)
    store = VectorStore.build(vectors, np.arange(200, dtype=np.int64) * 3, ann_threshold=1)
    allowed = np.array([-5, 0, 1, 3, 597, 598, 10_000], dtype=np.int64)  # 0, 3, 597 exist
    hits = store.search(vectors[1], 10, allowed)
    assert sorted(hits.ids.tolist()) == [0, 3, 597] and hits.ids[0] == 3
