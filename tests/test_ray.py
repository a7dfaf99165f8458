"""Ray tier (findling[ray]): distributed indexing and sharded serving on a local cluster of
three nodes with one CPU each on loopback (ray.cluster_utils.Cluster), torn down here.

Exactness against one machine, faults while indexing (an embedding actor killed, a worker node
removed, the driver SIGKILLed) and while serving (a replica killed under load), and that the
single-machine commands never import Ray.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from indexer.catalog import create_service
from indexer.generations import current_name
from indexer.service import SearchService
from indexer.settings import Settings
from tests.helpers import (
    FINDLING,
    WORDS_DE,
    WORDS_EN,
    assert_same_hits,
    assert_same_results,
    modules_loaded_by_cli,
    random_document,
    running_server,
    stored,
)

pytestmark = pytest.mark.ray

# Ray's single-machine mode: every process of the test cluster listens on loopback only
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
NODE: dict[str, Any] = {
    "num_cpus": 1,
    "object_store_memory": 200 * 1024 * 1024,
    "node_ip_address": "127.0.0.1",
}
FILTERS: list[dict[str, str]] = [{}, {"lang": "de"}, {"team": "a"}, {"source": "*/0*"}]
SELECTIONS: list[dict[str, Any]] = [{"offset": 3}, {"group": "document"}, {"min_score": 0.3}]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Three nodes of one CPU each (the head and two workers); the test driver joins it."""
    os.environ.update(RAY_ENV)
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    for _ in range(2):
        nodes.add_node(**NODE)
    ray.init(address=nodes.address, namespace="findling", log_to_driver=False)
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


def _write_corpus(folder: Path, count: int, version: int = 0, seed: int = 11) -> Path:
    """``count`` random German and English documents as .txt files, and a JSONL file."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for n in range(count):
        document = random_document(rng, n, version)
        (folder / f"{n:03d}-{document.language}.txt").write_text(document.text, "utf-8")
        if n % 10 == 0:
            records.append({"id": f"r{n}", "text": document.text, "team": "ab"[n % 2]})
    (folder / "records.jsonl").write_text("\n".join(json.dumps(r) for r in records), "utf-8")
    return folder


def _settings(index_root: Path, **more: Any) -> Settings:
    return Settings(index_dir=index_root, model="hashing", **more)


def _ray_build(index_root: Path, corpus: Path, shards: int | None, **options: Any) -> Any:
    from indexer.distributed.indexing import Workers, build

    settings = _settings(index_root)
    service = create_service(settings)
    return build(service, settings, [corpus], Workers(actors=2), shards=shards, **options)


def _one_machine(index_root: Path, corpus: Path) -> SearchService:
    service = create_service(_settings(index_root))
    service.build([corpus])
    return service


def _same_collection(a: Path, b: Path) -> None:
    """Every live sentence once, with the same vector: nothing lost, nothing twice."""

    def rows(index_dir: Path) -> list[tuple[Any, ...]]:
        found = [
            (s.sentence.doc_id, s.sentence.start, s.sentence.end, s.sentence.text)
            for s in stored(index_dir)
        ]
        return sorted(found)

    assert rows(a) == rows(b)
    vectors_a = {(s.sentence.doc_id, s.sentence.start): s.vector for s in stored(a)}
    for s in stored(b):
        np.testing.assert_allclose(vectors_a[(s.sentence.doc_id, s.sentence.start)], s.vector)


def _served(index_dir: Path, replicas: int = 1) -> SearchService:
    import ray

    from indexer.distributed.serving import RayShards
    from indexer.model.embedder import HashingEmbedder
    from indexer.scatter import ShardedService

    shards = RayShards(ray, index_dir, replicas)
    return ShardedService(index_dir, HashingEmbedder(256), None, shards)


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_indexed_and_served_on_ray_as_on_one_machine(
    cluster: Any, tmp_path: Path, shards: int
) -> None:
    """Indexed by Ray Data and served by shard replicas in actors: the same sentences and
    vectors as one machine, and the same hits and scores for 200 queries in every mode."""
    corpus = _write_corpus(tmp_path / "corpus", 120)
    summary = _ray_build(tmp_path / "ray", corpus, shards)
    once = _one_machine(tmp_path / "once", corpus)
    assert (summary.documents, summary.passages) == (once.info().documents, once.info().passages)
    assert summary.embedded == summary.passages
    _same_collection(tmp_path / "ray" / "default", tmp_path / "once" / "default")
    served = _served(tmp_path / "ray" / "default")
    rng = random.Random(shards)
    queries = [" ".join(rng.choices(WORDS_DE + WORDS_EN, k=rng.randint(1, 4))) for _ in range(200)]
    for number, query in enumerate(queries):
        for mode in ("dense", "bm25", "hybrid"):
            assert_same_results(served, once, query, mode, FILTERS[number % len(FILTERS)])
    assert served.search(queries[0]).shards.total == shards  # type: ignore[union-attr]
    # #17 over the replicas: operators, paging, groups, whole documents, more like this
    where = {"$or": [{"lang": "de"}, {"team": {"$in": ["a"]}}]}
    for number, query in enumerate(queries[:30]):
        selection = SELECTIONS[number % len(SELECTIONS)]
        assert_same_results(served, once, query, ("bm25", "hybrid")[number % 2], where, **selection)
    listed, expected = served.documents(0, 1000), once.documents(0, 1000)
    assert listed.total == expected.total
    assert sorted(d.id for d in listed.documents) == sorted(d.id for d in expected.documents)
    for entry in expected.documents[:: max(1, len(expected.documents) // 5)]:
        assert served.document(entry.id) == once.document(entry.id)
    # more like this: a stored document's or sentence's vector from the shard holding it
    alone = create_service(_settings(tmp_path / "ray"))  # the same shards in one process
    hit = served.search("Rhein Fluss", k=1, mode="dense").results[0]
    likes: list[dict[str, Any]] = [{"document_id": d.id} for d in expected.documents[:6]]
    likes += [{"sentence_id": hit.sentence_id}, {"text": queries[1]}]
    for number, like in enumerate(likes):
        only = FILTERS[number % len(FILTERS)]
        ours = served.similar(k=5, filters=only, **like)
        assert ours.results == alone.similar(k=5, filters=only, **like).results
        if "sentence_id" not in like:
            theirs = once.similar(k=5, filters=only, **like).results
            assert_same_hits(ours.results, theirs, like)
    # unchanged files cost nothing; a changed one is embedded again, alone
    again = _ray_build(tmp_path / "ray", corpus, None)
    assert (again.unchanged, again.embedded) == (summary.added, 0)
    first = sorted(corpus.glob("*.txt"))[0]
    first.write_text("Der Rhein ist ein Fluss. Er fließt durch Köln.", "utf-8")
    changed = _ray_build(tmp_path / "ray", corpus, None)
    assert (changed.updated, changed.embedded) == (1, 2)


def _when_staged(
    index_dir: Path, then: Callable[[], None], timeout: float = 120
) -> threading.Thread:
    """Run ``then`` (once) as soon as the first stage of a run is complete."""

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if list(index_dir.glob("shard-*/stage-*/segment.json")):
                then()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def _pids(title: str) -> list[int]:
    """Processes whose title (Ray names its workers ray::<Class>) contains ``title``."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any(title in part for part in process.info["cmdline"] or []):
            found.append(process.info["pid"])
    return found


def test_an_embedding_actor_killed_once(cluster: Any, tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus", 150)
    killed: list[int] = []

    def kill_one_actor() -> None:
        pids = _pids("StageWriter")
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    index_dir = tmp_path / "ray" / "default"
    thread = _when_staged(index_dir, kill_one_actor)
    summary = _ray_build(tmp_path / "ray", corpus, 3)
    thread.join(timeout=5)
    assert killed, "no embedding actor was running when the first stage was written"
    assert summary.skipped == []
    _same_collection(index_dir, _one_machine(tmp_path / "once", corpus).index_dir)
    assert not list(index_dir.glob("shard-*/stage-*"))  # stages are gone once committed


def test_a_worker_node_removed_mid_run(cluster: Any, tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "corpus", 150)
    worker = next(iter(cluster.worker_nodes))
    index_dir = tmp_path / "ray" / "default"
    removed: list[bool] = []

    def remove() -> None:
        cluster.remove_node(worker, allow_graceful=False)
        removed.append(True)

    thread = _when_staged(index_dir, remove)
    try:
        summary = _ray_build(tmp_path / "ray", corpus, 3)
        thread.join(timeout=30)
    finally:
        if removed:
            cluster.add_node(**NODE)
    assert removed and summary.skipped == []
    _same_collection(index_dir, _one_machine(tmp_path / "once", corpus).index_dir)


def test_a_killed_driver_keeps_the_generation_and_the_rerun_embeds_what_is_missing(
    cluster: Any, tmp_path: Path
) -> None:
    corpus = _write_corpus(tmp_path / "corpus", 200)
    index_root = tmp_path / "ray"
    index_dir = index_root / "default"
    _ray_build(index_root, corpus, 3)
    before = current_name(index_dir)
    _write_corpus(corpus, 200, version=1)  # every file changes
    env = {
        **os.environ,
        **RAY_ENV,
        "FINDLING_MODEL": "hashing",
        "FINDLING_INDEX_DIR": str(index_root),
    }
    command = [str(FINDLING), "index", str(corpus), "--ray", cluster.address, "--json"]
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not list(index_dir.glob("shard-*/stage-*/segment.json")):
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, "no stage was written"
        time.sleep(0.005)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert current_name(index_dir) == before  # the previous generation stays current
    time.sleep(5)  # the dead driver's actors are stopped by Ray; what they finished stays
    staged = _staged_sentences(index_dir)
    assert staged > 0
    rerun = _ray_build(index_root, corpus, None)
    total = rerun.passages
    print(
        f"\nkilled driver: {staged} of {total} sentences were staged; "
        f"the rerun embedded {rerun.embedded}"
    )
    assert rerun.embedded == total - staged, (rerun.embedded, total, staged)
    assert rerun.embedded < total
    _same_collection(index_dir, _one_machine(tmp_path / "once", corpus).index_dir)


def _staged_sentences(index_dir: Path) -> int:
    total = 0
    for meta in index_dir.glob("shard-*/stage-*/segment.json"):
        total += json.loads(meta.read_text())["sentences"]
    return total


def test_a_document_that_keeps_failing_is_skipped_with_a_reason(
    cluster: Any, tmp_path: Path
) -> None:
    corpus = _write_corpus(tmp_path / "corpus", 20)
    (corpus / "binary.txt").write_bytes(b"\xff\xfe not utf-8")
    summary = _ray_build(tmp_path / "ray", corpus, 2)
    assert [s.path for s in summary.skipped] == [str(corpus / "binary.txt")]
    assert summary.documents == 22


# -- serving ------------------------------------------------------------------------------------


def _load(url: str, seconds: float, clients: int = 4) -> list[tuple[float, int, str]]:
    """``clients`` clients searching one request at a time for ``seconds``: (time, status,
    body) of every response."""
    results: list[tuple[float, int, str]] = []
    rng = random.Random(3)
    queries = [" ".join(rng.choices(WORDS_DE + WORDS_EN, k=3)) for _ in range(50)]
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            i = number
            while time.monotonic() < stop:
                response = http.get("/search", params={"q": queries[i % len(queries)], "k": 3})
                results.append((time.monotonic(), response.status_code, response.text))
                i += clients
                time.sleep(0.02)  # bounded load

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _kill_replica(name: str) -> None:
    """SIGKILL the replica ``name`` of the one server running (its name ends @server-tag)."""
    import ray

    [named] = [n for n in ray.util.list_named_actors() if n.startswith(f"{name}@")]
    replica: Any = ray.get_actor(named, namespace="findling")
    pid: Any = ray.get(replica.ping.remote())
    os.kill(int(pid), signal.SIGKILL)


@pytest.fixture(scope="module")
def served_collection(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("served")
    corpus = _write_corpus(root / "corpus", 80)
    _ray_build(root / "index", corpus, 3)
    return root / "index"


@pytest.mark.parametrize("replicas", [2, 1])
def test_a_replica_killed_under_load(cluster: Any, served_collection: Path, replicas: int) -> None:
    env = {**RAY_ENV, "FINDLING_MODEL": "hashing", "FINDLING_INDEX_DIR": str(served_collection)}
    arguments = ["--ray", cluster.address, "--replicas", str(replicas)]
    with running_server(env, *arguments, ready_path="/ready") as url:
        killer = threading.Timer(3.0, _kill_replica, args=("default/shard-01/replica-0",))
        killer.start()
        killed_at = time.monotonic() + 3.0
        results = _load(url, seconds=12)
        killer.join()
        partial = httpx.get(f"{url}/search", params={"q": "Rhein", "allow_partial": "true"})
        metrics = httpx.get(f"{url}/metrics").text
        hit = httpx.get(f"{url}/search", params={"q": "Rhein", "k": 1}).json()["results"][0]
        like = httpx.post(f"{url}/similar", json={"sentence_id": hit["sentence_id"], "k": 3})
    statuses = [status for _, status, _ in results]
    failed = [t for t, status, _ in results if status != 200]
    after = [t for t, status, _ in results if status == 200 and failed and t > failed[-1]]
    print(
        f"\nR={replicas}: {len(results)} searches by 4 clients, {len(failed)} failed"
        + (
            f" over {failed[-1] - failed[0]:.1f} s; served again {after[0] - killed_at:.1f} s "
            "after the kill"
            if failed and after
            else ""
        )
    )
    assert len(results) > 100 and "findling_requests_total" in metrics
    if replicas == 2:
        assert set(statuses) == {200}, [body for _, s, body in results if s != 200][:3]
    else:
        failures = [(t, body) for t, status, body in results if status != 200]
        assert failures, "no request saw the shard without its replica"
        assert all(json.loads(b)["error"]["code"] == "shard_unavailable" for _, b in failures)
        assert all("shard-01" in json.loads(b)["error"]["message"] for _, b in failures)
        assert {s for _, s, _ in results} == {200, 503}
        recovered = [t for t, status, _ in results if status == 200 and t > failures[-1][0]]
        assert recovered, "the shard did not come back"
        assert min(t for t, _ in failures) >= killed_at - 0.5
    assert partial.status_code == 200
    assert partial.json()["shards"]["total"] == 3
    assert like.status_code == 200, like.text
    assert like.json()["results"] and like.json()["shards"]["successful"] == 3
    assert hit["document_id"] not in {r["document_id"] for r in like.json()["results"]}


def test_more_replicas_than_cpus_are_served_with_a_warning(
    cluster: Any, served_collection: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """3 shards on the cluster's 3 CPUs: quiet with one replica each, a warning with two."""
    for replicas, warned in ((1, False), (2, True)):
        caplog.clear()
        service = _served(served_collection / "default", replicas)
        with caplog.at_level("WARNING", logger="indexer.distributed.serving"):
            service.load()
        assert ("replicas wait for a core" in caplog.text) == warned, caplog.text
        assert service.search("Rhein", k=1).results
        _stop(service)


def test_collections_of_one_name_in_two_roots_keep_their_own_replicas(
    cluster: Any, served_collection: Path, tmp_path: Path
) -> None:
    """Replicas are named by collection and shard; a second server of another "default" (or
    a restart of one) must start its own, not search the first one's folder."""
    corpus = _write_corpus(tmp_path / "corpus", 30, seed=5)
    other = create_service(_settings(tmp_path / "index"))
    other.build([corpus], shards=3)
    first = _served(served_collection / "default")
    second = _served(tmp_path / "index" / "default")
    once = _one_machine(tmp_path / "once", corpus)
    try:
        first.load()
        rng = random.Random(5)
        for _ in range(20):
            query = " ".join(rng.choices(WORDS_DE + WORDS_EN, k=2))
            assert_same_results(second, once, query, "hybrid", {})
        assert first.search("Rhein").results != second.search("Rhein").results
    finally:
        _stop(first)
        _stop(second)


def _stop(service: SearchService) -> None:
    import ray

    for lines in service.shards._lines.values():  # type: ignore[attr-defined]
        for line in lines:
            ray.kill(line.handle)


def test_the_driver_of_serve_ray_keeps_numpy_blas_on_one_thread(
    cluster: Any, hashing_env: Settings
) -> None:
    """OpenBLAS's idle threads would spin on the cores the replicas need (indexer/blas.py)."""
    import threadpoolctl

    from indexer.distributed.serving import ray_catalog

    # two threads, as a fresh process on two cores has them; restored afterwards
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if max((i["num_threads"] for i in threadpoolctl.threadpool_info()), default=1) < 2:
            pytest.skip("this machine's BLAS runs one thread anyway")
        ray_catalog(hashing_env, cluster.address, 1)
        blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)


# -- lightness ----------------------------------------------------------------------------------


def test_single_machine_commands_never_import_ray(hashing_env: Settings, corpus: Path) -> None:
    runs = [
        ["--help"],
        ["index", str(corpus), "--shards", "2"],  # a sharded collection, on one machine
        ["search", "Rhein"],
        ["info"],
        ["serve", "--help"],
    ]
    assert modules_loaded_by_cli(runs, ["ray"]) == []


# -- the real model -----------------------------------------------------------------------------

MORE_QUESTIONS = [
    "Wer beschuldigte den Iran?",
    "Welche Waffen liefert der Iran an Russland?",
    "Was kündigte Lammy in Kiew an?",
    "Wie viel Geld ist für humanitäre Hilfe vorgesehen?",
    "Wann trifft Biden den britischen Premierminister?",
    "Was hofft Selenskyj?",
    "Wo wurde eine Militärschule angegriffen?",
    "Seit wann läuft die russische Invasion?",
    "Was sagt das Außenministerium zu Kiews Antrag?",
    "Mit wem debattierte Trump?",
    "What did Trump say about the conflict?",
    "Where were 55 students killed?",
    "Why does Zelensky want to use western weapons against Russia?",
    "Who met Ukrainian officials in Kyiv?",
    "What does the US want in the war?",
    "Which missile system is made in the UK and France?",
]


@pytest.mark.model
def test_the_real_model_gives_the_same_top_three_on_ray(cluster: Any, tmp_path: Path) -> None:
    """multilingual-e5-small in fp32 ONNX (its vectors do not depend on batching), indexed by
    Ray actors into 3 shards and served by replicas, against one machine: the seed article
    and the held-out documents, 30 questions about the article."""
    import ray

    from indexer.distributed.indexing import Workers, build
    from indexer.distributed.serving import RayShards
    from indexer.model.factory import make_embedder
    from indexer.options import SearchOptions
    from indexer.scatter import ShardedService
    from tests.helpers import ROOT, SEEDS
    from tests.test_e2e_model import QUESTIONS

    folders = [SEEDS, ROOT / "bench" / "holdout" / "docs"]
    settings = Settings(index_dir=tmp_path / "ray", backend="onnx")
    service = create_service(settings)
    summary = build(service, settings, folders, Workers(actors=2), shards=3)
    once = create_service(Settings(index_dir=tmp_path / "once", backend="onnx"))
    once.build(folders)
    assert summary.passages == once.info().passages
    served = ShardedService(
        service.index_dir,
        make_embedder(settings),
        SearchOptions.from_settings(settings),
        RayShards(ray, service.index_dir, 1),
    )
    questions = [q for q, _ in QUESTIONS] + MORE_QUESTIONS
    assert len(questions) == 30
    same = 0
    for question in questions:
        ours = [
            (r.document_id, r.paragraph, r.sentence) for r in served.search(question, 3).results
        ]
        theirs = [
            (r.document_id, r.paragraph, r.sentence) for r in once.search(question, 3).results
        ]
        same += ours == theirs
    print(f"\nreal model on Ray: {same} of 30 questions with the same top 3 as one machine")
    assert same >= 29
