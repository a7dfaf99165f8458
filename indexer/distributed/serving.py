"""Sharded serving on Ray: ``findling serve --ray ADDRESS|local [--replicas R]``.

The HTTP server is the one of ``findling serve``: the same FastAPI app, routes, keys, limits and
metrics, in this process (the driver), which also embeds every question, once. What differs is
its catalog: a sharded collection is searched by shard readers (scatter.ShardReader) in Ray
actors, R replicas of each shard spread over the cluster's nodes, each reading its shard from
the filesystem the index lives on. The driver reads only manifests and merges exactly
(scatter.ShardedSearch); an unsharded collection is searched in the driver as usual.

A replica that dies is restarted by Ray (a replica is a server: without limit). A request whose
replica fails goes to the shard's next replica; when a shard has no live replica left the search
fails with 503 naming it, or, with ``allow_partial``, is answered from the other shards and says
so in ``shards``.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.blas import answer_on_one_thread
from indexer.catalog import Catalog, check_name
from indexer.defaults import DEFAULT_COLLECTION
from indexer.model.embedder import Embedder
from indexer.options import SearchOptions
from indexer.ranking import Scored
from indexer.results import DocumentEntry, Hit, StoredDocument
from indexer.scatter import Proposal, ShardedService, ShardQuery, ShardReader
from indexer.service import SearchService

log = logging.getLogger(__name__)

ROUND_SECONDS = 10.0  # a round of a search waits this long for a shard's replicas at most
START_SECONDS = 120.0  # replicas have this long to start (a node may be busy)


def packed(value: Any) -> bytes:
    """A query or proposal as one buffer for the trip between driver and replica.

    Ray pickles arguments and results too, but hands each numpy array of a dataclass to its
    object store apart: a proposal (a dozen small arrays, about 15 KB) took 4.3 ms there and
    back, as one pickled buffer 1.1 ms. Both ends are findling's own processes.
    """
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpacked(buffer: bytes) -> Any:
    return pickle.loads(buffer)  # our own replica's answer or driver's query (see packed)


class ShardReplica:
    """A Ray actor: one replica of one shard (see scatter.ShardReader)."""

    def __init__(self, folder: str) -> None:
        self.reader = ShardReader(Path(folder))

    def ping(self) -> int:
        """The replica's process id (it answers: it is alive)."""
        return os.getpid()

    def propose(self, query: bytes) -> bytes:
        return packed(self.reader.propose(unpacked(query)))

    def hits(self, generation: str, wanted: list[tuple[int, int, Scored]]) -> list[Hit]:
        return self.reader.hits(generation, wanted)

    def like(
        self, generation: str, document_id: str | None, sentence_id: int | None
    ) -> tuple[np.ndarray, str] | None:
        return self.reader.like(generation, document_id, sentence_id)

    def document(self, generation: str, doc_id: str) -> StoredDocument | None:
        return self.reader.document(generation, doc_id)

    def listing(self, generation: str, offset: int, limit: int) -> list[DocumentEntry]:
        return self.reader.listing(generation, offset, limit)


class RayShards:
    """A collection's shards as replicas in Ray actors; implements scatter.Shards."""

    def __init__(self, ray: Any, index_dir: Path, replicas: int) -> None:
        self.ray = ray
        self.index_dir = index_dir
        self.replicas = replicas
        # replicas are named for `ray list actors`, and uniquely: a second server of a
        # collection of the same name (another root, or a restart) must start its own
        self.tag = uuid.uuid4().hex[:8]
        self._actors: dict[str, list[Any]] = {}
        self._turn: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, shards: Sequence[str]) -> None:
        """Start the replicas of ``shards`` now and wait until each answers."""
        handles = [h for shard in shards for h in self._replicas(shard)]
        self.ray.get([h.ping.remote() for h in handles], timeout=START_SECONDS)
        cpus = int(self.ray.cluster_resources().get("CPU", 0))
        if len(handles) > cpus:
            # measured: 3 replicas on 2 cores add 6.6 ms to a search, 2 add 3.9 (bench.ray)
            log.warning(
                "%d shard replicas of %s on a cluster of %d CPUs: replicas wait for a core, "
                "which slows every search; serve fewer shards or replicas, or add nodes",
                len(handles),
                self.index_dir.name,
                cpus,
            )

    def _replicas(self, shard: str) -> list[Any]:
        with self._lock:
            if shard not in self._actors:
                actor = self.ray.remote(ShardReplica)
                self._actors[shard] = [
                    actor.options(
                        name=f"{self.index_dir.name}/{shard}/replica-{number}@{self.tag}",
                        num_cpus=0,  # readers wait on disk and the network more than compute
                        max_restarts=-1,
                        max_task_retries=0,  # this class retries on another replica instead
                        max_concurrency=8,
                        scheduling_strategy="SPREAD",  # replicas of a shard on other nodes
                    ).remote(str(self.index_dir / shard))
                    for number in range(self.replicas)
                ]
                self._turn[shard] = 0
            return self._actors[shard]

    def _first(self, shard: str) -> int:
        """The replica a shard's next request goes to first (round robin)."""
        with self._lock:
            self._turn[shard] += 1
            return self._turn[shard]

    def propose(self, requests: Mapping[str, ShardQuery]) -> tuple[dict[str, Proposal], list[str]]:
        answers, failed = self._round("propose", {s: (packed(q),) for s, q in requests.items()})
        return {s: unpacked(a) for s, a in answers.items()}, failed

    def hits(
        self, requests: Mapping[str, tuple[str, list[tuple[int, int, Scored]]]]
    ) -> tuple[dict[str, list[Hit]], list[str]]:
        return self._round("hits", {s: tuple(r) for s, r in requests.items()})

    def like(
        self, requests: Mapping[str, tuple[str, str | None, int | None]]
    ) -> tuple[dict[str, tuple[np.ndarray, str] | None], list[str]]:
        return self._round("like", {s: tuple(r) for s, r in requests.items()})

    def document(
        self, requests: Mapping[str, tuple[str, str]]
    ) -> tuple[dict[str, StoredDocument | None], list[str]]:
        return self._round("document", {s: tuple(r) for s, r in requests.items()})

    def listing(
        self, requests: Mapping[str, tuple[str, int, int]]
    ) -> tuple[dict[str, list[DocumentEntry]], list[str]]:
        return self._round("listing", {s: tuple(r) for s, r in requests.items()})

    def _round(
        self, method: str, requests: Mapping[str, tuple[Any, ...]]
    ) -> tuple[dict[str, Any], list[str]]:
        """Ask every shard at once, each on its next replica; a replica that is gone passes
        the question to the shard's next one. Shards none of whose replicas answered within
        ROUND_SECONDS are returned as failed."""
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        answers: dict[str, Any] = {}
        tries = dict.fromkeys(requests, 0)
        first = {shard: (self._replicas(shard), self._first(shard))[1] for shard in requests}
        pending: dict[Any, str] = {}

        def ask(shard: str) -> None:
            replicas = self._replicas(shard)
            replica = replicas[(first[shard] + tries[shard]) % len(replicas)]
            pending[getattr(replica, method).remote(*requests[shard])] = shard

        for shard in requests:
            ask(shard)
        failed: list[str] = []
        deadline = time.monotonic() + ROUND_SECONDS
        while pending:
            left = deadline - time.monotonic()
            ready, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=max(left, 0))
            if not ready:
                failed += pending.values()
                for ref in pending:
                    self.ray.cancel(ref, force=False)
                break
            for ref in ready:
                shard = pending.pop(ref)
                try:
                    answers[shard] = self.ray.get(ref)
                except RayTaskError as exc:  # the shard's own error (a damaged file, ...)
                    raise exc.cause from None
                except (RayActorError, GetTimeoutError):  # this replica is gone
                    tries[shard] += 1
                    if tries[shard] < self.replicas:
                        ask(shard)
                    else:
                        failed.append(shard)
        return answers, failed


class RayCatalog(Catalog):
    """The collections under ``root``, their sharded ones searched by replicas on Ray."""

    def __init__(
        self,
        root: Path,
        embedder: Embedder,
        options: SearchOptions | None,
        ray: Any,
        replicas: int,
    ) -> None:
        super().__init__(root, embedder, options)
        self.ray = ray
        self.replicas = replicas

    def service(self, name: str = DEFAULT_COLLECTION) -> SearchService:
        check_name(name)
        with self._lock:
            if name not in self._services:
                shards = RayShards(self.ray, self.root / name, self.replicas)
                self._services[name] = ShardedService(
                    self.root / name, self.embedder, self.options, shards
                )
            return self._services[name]


def ray_catalog(settings: Any, address: str, replicas: int) -> RayCatalog:
    """The catalog `findling serve --ray` serves: joins (or starts) the cluster."""
    from indexer.distributed.cluster import connect
    from indexer.model.factory import make_embedder

    ray = connect(address)
    answer_on_one_thread()  # this driver shares its cores with replicas (see indexer.blas)
    return RayCatalog(
        settings.index_dir,
        make_embedder(settings),
        SearchOptions.from_settings(settings),
        ray,
        replicas,
    )
