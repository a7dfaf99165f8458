"""The ONNX backends: chosen by settings, close to torch, and torch-free at query time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from indexer.catalog import create_service
from indexer.defaults import DEFAULT_MODEL
from indexer.model.convert import default_model_folder
from indexer.model.embedder import HashingEmbedder, SentenceTransformerEmbedder
from indexer.model.factory import make_embedder
from indexer.model.onnx_backend import (
    TOKEN_BUDGET,
    OnnxEmbedder,
    ensure_onnx_model,
    onnx_dir,
    token_batches,
)
from indexer.settings import Settings
from tests.helpers import ROOT, SEEDS

TEXTS = [
    "Der Rhein ist ein Fluss in Europa.",
    "Wie viele Zivilisten starben im August?",
    "Am 3. Oktober feiert Deutschland den Tag der Deutschen Einheit. Dr. Müller hielt eine Rede.",
    "The oven must be preheated to 200 degrees.",
    "Who is the British foreign secretary?",
    "Pasta should be cooked in salted water. Drain it while it is still firm.",
]


# -- fast tier: which embedder the settings make (nothing is loaded) ---------------------------


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_backends_keep_the_model_identity(backend: Literal["onnx", "onnx-int8"]) -> None:
    embedder = make_embedder(Settings(model=DEFAULT_MODEL, backend=backend))
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.name == DEFAULT_MODEL  # indexes stay searchable across backends


def test_torch_backend_uses_sentence_transformers() -> None:
    embedder = make_embedder(Settings(model=DEFAULT_MODEL, backend="torch"))
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.name == DEFAULT_MODEL


def test_hub_names_and_hashing_ignore_the_onnx_backend() -> None:
    hub = make_embedder(Settings(model="some-org/some-model", backend="onnx-int8"))
    assert isinstance(hub, SentenceTransformerEmbedder)
    assert isinstance(make_embedder(Settings(model="hashing", backend="onnx")), HashingEmbedder)


def test_local_folders_use_the_onnx_backend(tmp_path: Path) -> None:
    embedder = make_embedder(Settings(model=str(tmp_path), backend="onnx"))
    assert isinstance(embedder, OnnxEmbedder)
    assert onnx_dir(tmp_path).parent == tmp_path.parent  # the cache sits next to the folder


def test_unknown_variant_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown ONNX variant"):
        OnnxEmbedder("m", lambda: tmp_path, "onnx-fp16")


@pytest.mark.parametrize(
    "lengths",
    [[], [7], [5] * 70, [3, 5, 8, 200, 300, 600, 1000, 1200, 3000], list(range(1, 400, 3))],
)
def testtoken_batches_cover_every_text_once_within_the_limits(lengths: list[int]) -> None:
    batches = token_batches(lengths, 32)
    assert [i for batch in batches for i in batch] == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= 32
        # over the budget only when one text alone is longer than it
        assert len(batch) * lengths[batch[-1]] <= TOKEN_BUDGET or len(batch) == 1


# -- model tier: the real model --------------------------------------------------------------


@pytest.fixture(scope="module")
def folder() -> Path:
    path = default_model_folder(Settings().model_cache_dir)
    for variant in ("onnx", "onnx-int8"):
        ensure_onnx_model(path, variant)
    return path


@pytest.fixture(scope="module")
def torch_vectors(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    embedder = SentenceTransformerEmbedder(DEFAULT_MODEL, str(folder))
    queries = np.stack([embedder.embed_query(t) for t in TEXTS])
    return embedder.embed_documents(TEXTS), queries


@pytest.mark.model
@pytest.mark.parametrize(("variant", "minimum"), [("onnx", 0.9999), ("onnx-int8", 0.99)])
def test_onnx_matches_torch(
    folder: Path, torch_vectors: tuple[np.ndarray, np.ndarray], variant: str, minimum: float
) -> None:
    embedder = OnnxEmbedder(DEFAULT_MODEL, lambda: folder, variant, batch_size=4)
    documents = embedder.embed_documents(TEXTS)
    queries = np.stack([embedder.embed_query(t) for t in TEXTS])
    assert documents.dtype == np.float32 and documents.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(documents, axis=1), 1.0, rtol=1e-5)
    reference_documents, reference_queries = torch_vectors
    assert (documents * reference_documents).sum(axis=1).min() >= minimum
    assert (queries * reference_queries).sum(axis=1).min() >= minimum


@pytest.mark.model
def test_long_passages_are_truncated_with_a_warning(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    embedder = OnnxEmbedder(DEFAULT_MODEL, lambda: folder, "onnx-int8")
    vectors = embedder.embed_documents(["Wort " * 2000, "kurz"])
    assert vectors.shape == (2, 384)
    assert "exceed the model's token limit" in caplog.text


_QUERY_WITHOUT_TORCH = """
import json, sys
from pathlib import Path
from indexer.catalog import create_service
from indexer.settings import Settings
service = create_service(Settings(index_dir=Path(sys.argv[1]), backend="onnx-int8"))
hits = service.search("Wie viele Zivilisten starben im August?", k=3, mode="dense").results
heavy = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
print(json.dumps({"heavy": heavy, "top": hits[0].text}))
"""


@pytest.mark.model
def test_onnx_query_path_does_not_import_torch(folder: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    create_service(Settings(index_dir=index_dir, backend="onnx-int8")).build([SEEDS])
    done = subprocess.run(
        [sys.executable, "-c", _QUERY_WITHOUT_TORCH, str(index_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    answer = json.loads(done.stdout)
    assert answer["heavy"] == []
    assert "184 Zivilisten" in answer["top"]
