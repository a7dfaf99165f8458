"""Real model, real FAISS, real server: German and English questions about the seed article."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from indexer.catalog import create_service
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import SEEDS, running_server

pytestmark = pytest.mark.model

# (question, a fragment of the one sentence that answers it)
QUESTIONS = [
    ("Welche Außenminister führten Gespräche in Kiew?", "US-Außenminister Antony Blinken und der"),
    ("Wem wird vorgeworfen, Raketen an Moskau geliefert zu haben?", "beschuldigten den Iran"),
    ("Wie viele Zivilisten starben im August?", "184 Zivilisten"),
    ("Wie viele Studenten wurden in Poltawa getötet?", "55 Studenten"),
    ("Wie viel Geld gibt Großbritannien der Ukraine?", "600 Millionen Pfund"),
    ("Was hat Trump in der Debatte mit Harris gesagt?", "Donald Trump"),
    ("Wie steht das Pentagon zu dem Antrag?", "Pentagon skeptisch"),
    ("How much money did Blinken announce for the energy infrastructure?", "700 Millionen Dollar"),
    ("What is Zelensky hoping for?", "„starke Entscheidungen“"),
    ("Which missiles does Zelensky want to use against targets in Russia?", "Storm Shadow"),
    ("Whom will Biden meet in Washington on Friday?", "Keir Starmer"),
    ("Who is escalating, according to Blinken?", "scheint es Putin zu sein"),
    ("What did Joe Biden say on Tuesday about Kyiv's request?", "US-Präsident Joe Biden"),
    ("Is the Biden administration united on long-range missiles?", "gespalten"),
]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e") / "index"


@pytest.fixture(scope="module")
def real(index_dir: Path) -> SearchService:
    service = create_service(Settings(index_dir=index_dir, model="multilingual-e5-small"))
    summary = service.build([SEEDS])
    assert (summary.documents, summary.passages) == (1, 19)
    return service


def _rank(service: SearchService, question: str, fragment: str) -> int | None:
    results = service.search(question, k=5).results
    return next((r.rank for r in results if fragment in r.text), None)


def test_questions_in_both_languages_find_the_sentence(real: SearchService) -> None:
    ranks = {q: _rank(real, q, fragment) for q, fragment in QUESTIONS}
    print("\n".join(f"{rank}  {q}" for q, rank in ranks.items()))
    missed = [q for q, rank in ranks.items() if rank is None or rank > 3]
    assert not missed, f"not in the top 3: {missed}"
    first = sum(rank == 1 for rank in ranks.values())
    assert first / len(QUESTIONS) >= 0.8, f"only {first}/{len(QUESTIONS)} first"


def test_manifest_names_the_model(real: SearchService) -> None:
    manifest = real.info()
    assert (manifest.model, manifest.dimension) == ("multilingual-e5-small", 384)


def test_dense_scores_are_cosines_one_result_per_paragraph(real: SearchService) -> None:
    results = real.search("Wer ist Antony Blinken?", k=19, mode="dense").results
    assert len(results) == 9  # the article's paragraphs
    assert all(-1.0 <= r.score <= 1.0 for r in results)
    assert results[0].score > results[-1].score


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_every_mode_answers_a_german_question(real: SearchService, mode: str) -> None:
    assert (
        "55 Studenten" in real.search("Studenten Militärschule Poltawa", mode=mode).results[0].text
    )


@pytest.fixture(scope="module")
def server(real: SearchService, index_dir: Path) -> Iterator[str]:
    env = {"FINDLING_INDEX_DIR": str(index_dir), "FINDLING_MODEL": real.embedder.name}
    # /info answers only after lifespan loaded the model and the index
    with running_server(env, ready_path="/info") as url:
        yield url


def test_real_server_answers_over_http(server: str) -> None:
    english = httpx.get(
        f"{server}/search", params={"q": "How many civilians died in August?", "k": 3}
    )
    assert english.status_code == 200
    top = english.json()["results"][0]
    assert "184 Zivilisten" in top["text"]
    assert top["context"][top["context_start"] : top["context_end"]] == top["text"]
    german = httpx.post(f"{server}/search", json={"query": "Wer trifft Starmer?", "k": 3})
    assert "Keir Starmer" in german.json()["results"][0]["text"]
    empty = httpx.get(f"{server}/search", params={"q": " "})
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "invalid_request"


def test_hits_carry_a_calibrated_probability(real: SearchService) -> None:
    results = real.search("How many civilians died in August?", k=5).results
    probabilities = [r.probability for r in results]
    known = [p for p in probabilities if p is not None]
    assert len(known) == len(probabilities) and all(0.0 <= p <= 1.0 for p in known)
    assert known[0] == max(known)
    assert known[0] > 0.5  # the right answer, confidently
    assert real.search("Blinken", k=3, mode="bm25").results[0].probability is None
