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
