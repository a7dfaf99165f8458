"""Sharded serving on Ray: ``findling serve --ray ADDRESS|local [--replicas R]``.

The HTTP server is the one of ``findling serve``: the same FastAPI app, routes, keys, limits and
metrics, in this process (the driver), which also embeds every question, once. What differs is
its catalog: a sharded collection is searched by shard readers (scatter.ShardReader) in Ray
actors, R replicas of each shard spread over the cluster's nodes, each reading its shard from
the filesystem the index lives on. Ray starts, restarts and addresses the replicas; a search's
questions and answers go over direct lines to them (indexer.distributed.lines). The driver
reads only manifests and merges exactly (scatter.ShardedSearch); an unsharded collection is
searched in the driver as usual.

A replica that dies is restarted by Ray (a replica is a server: without limit). A request whose
replica fails goes to the shard's next replica; when a shard has no live replica left the search
fails with 503 naming it, or, with ``allow_partial``, is answered from the other shards and says
so in ``shards``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from indexer.blas import answer_on_one_thread
from indexer.catalog import Catalog, check_name
from indexer.defaults import DEFAULT_COLLECTION
from indexer.distributed.lines import (
    START_SECONDS,
    Address,
    Line,
    Switchboard,
    new_key,
    packed,
    unpacked,
)
from indexer.model.embedder import Embedder
from indexer.options import SearchOptions
from indexer.ranking import Scored
from indexer.results import DocumentEntry, Hit, StoredDocument
from indexer.scatter import Proposal, ShardedService, ShardQuery, ShardReader
from indexer.service import SearchService

log = logging.getLogger(__name__)

ROUND_SECONDS = 10.0  # a round of a search waits this long for a shard's replicas at most


ANSWERED_HERE = frozenset({"propose", "hits", "like", "document", "listing"})  # ShardReader's


class ShardReplica:
    """A Ray actor: one replica of one shard (see scatter.ShardReader). Ray starts, restarts
    and addresses it; the driver's questions come over the lines of its switchboard."""

    def __init__(self, folder: str, key: bytes) -> None:
        import ray

        self.reader = ShardReader(Path(folder))
        self.switchboard = Switchboard(ray.util.get_node_ip_address(), key, self.answer)

    def address(self) -> Address:
        """Where the replica takes the driver's lines."""
        return self.switchboard.address

    def ping(self) -> int:
        """The replica's process id (it answers: it is alive)."""
        return os.getpid()

    def answer(self, method: str, args: tuple[Any, ...]) -> Any:
        if method not in ANSWERED_HERE:
            raise ValueError(f"a shard replica does not answer {method!r}")
        return getattr(self.reader, method)(*args)


class RayShards:
    """A collection's shards as replicas in Ray actors; implements scatter.Shards."""

    def __init__(self, ray: Any, index_dir: Path, replicas: int) -> None:
        self.ray = ray
        self.index_dir = index_dir
        self.replicas = replicas
        # replicas are named for `ray list actors`, and uniquely: a second server of a
        # collection of the same name (another root, or a restart) must start its own
        self.tag = uuid.uuid4().hex[:8]
        self._key = new_key()
        self._lines: dict[str, list[Line]] = {}
        self._turn: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, shards: Sequence[str]) -> None:
        """Start the replicas of ``shards`` now and wait until each answers."""
        lines = [line for shard in shards for line in self._replicas(shard)]
        addresses = self.ray.get(
            [line.handle.address.remote() for line in lines], timeout=START_SECONDS
        )
        for line, address in zip(lines, addresses, strict=True):
            line.reached(address)
        cpus = int(self.ray.cluster_resources().get("CPU", 0))
        if len(lines) > cpus:
            # measured: 3 replicas on 2 cores add 2.9 ms to a hybrid search, 2 add 1.8 (bench.ray)
            log.warning(
                "%d shard replicas of %s on a cluster of %d CPUs: replicas wait for a core, "
                "which slows every search; serve fewer shards or replicas, or add nodes",
                len(lines),
                self.index_dir.name,
                cpus,
            )

    def _replicas(self, shard: str) -> list[Line]:
        with self._lock:
            if shard not in self._lines:
                actor = self.ray.remote(ShardReplica)
                self._lines[shard] = [
                    Line(
                        self.ray,
                        actor.options(
                            name=f"{self.index_dir.name}/{shard}/replica-{number}@{self.tag}",
                            num_cpus=0,  # readers wait on disk and the network more than compute
                            max_restarts=-1,
                            max_task_retries=0,  # this class retries on another replica instead
                            scheduling_strategy="SPREAD",  # replicas of a shard on other nodes
                        ).remote(str(self.index_dir / shard), self._key),
                        self._key,
                    )
                    for number in range(self.replicas)
                ]
                self._turn[shard] = 0
            return self._lines[shard]

    def _first(self, shard: str) -> int:
        """The replica a shard's next request goes to first (round robin)."""
        with self._lock:
            self._turn[shard] += 1
            return self._turn[shard]

    def propose(self, requests: Mapping[str, ShardQuery]) -> tuple[dict[str, Proposal], list[str]]:
        return self._round("propose", {s: (q,) for s, q in requests.items()})

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
        """Ask every shard at once, each on its next replica; a replica that is gone (or out
        while Ray restarts it) passes the question to the shard's next one. Shards none of
        whose replicas answered within ROUND_SECONDS are returned as failed."""
        answers: dict[str, Any] = {}
        failed: list[str] = []
        tries = dict.fromkeys(requests, 0)
        first = {shard: (self._replicas(shard), self._first(shard))[1] for shard in requests}
        messages = {shard: packed((method, args)) for shard, args in requests.items()}
        pending: dict[Connection, tuple[str, Line]] = {}

        def ask(shard: str) -> None:
            lines = self._replicas(shard)
            while tries[shard] < len(lines):
                line = lines[(first[shard] + tries[shard]) % len(lines)]
                tries[shard] += 1
                connection = line.connection()
                if connection is None:
                    continue
                try:
                    connection.send_bytes(messages[shard])
                except OSError:
                    line.lost(connection)
                    continue
                pending[connection] = (shard, line)
                return
            failed.append(shard)

        try:
            for shard in requests:
                ask(shard)
            deadline = time.monotonic() + ROUND_SECONDS
            while pending:
                ready = set(wait(list(pending), timeout=max(deadline - time.monotonic(), 0)))
                if not ready:
                    failed += [shard for shard, _ in pending.values()]
                    break
                for connection in [c for c in pending if c in ready]:
                    shard, line = pending.pop(connection)
                    try:
                        status, value = unpacked(connection.recv_bytes())
                    except (OSError, EOFError):  # this replica is gone
                        line.lost(connection)
                        ask(shard)
                        continue
                    line.done(connection)
                    if status == "error":  # the shard's own error (a damaged file, ...)
                        raise value
                    answers[shard] = value
        finally:
            for connection, (_, line) in pending.items():  # late, or the round failed
                line.close(connection)  # its answer would come unread
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
